"""Smoothed int8 linear layers against float32 ``nn.Linear`` (the reference) on outlier-heavy inputs."""

from __future__ import annotations

import torch
from torch import nn

from polycolbert.encoding.int8 import (
    SmoothInt8Linear,
    calibration_texts,
    input_maxima,
    linear_layers,
    smooth_int8_layers,
)


def _inputs(rows: int = 64) -> torch.Tensor:
    """Activations like a transformer's: most channels small, three channels 50x larger."""
    torch.manual_seed(0)
    x = torch.randn(rows, 48)
    x[:, [3, 17, 40]] *= 50
    return x


def _mlp() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(48, 96), nn.GELU(), nn.Sequential(nn.Linear(96, 16, bias=False)))


def test_smoothing_holds_outlier_channels_that_a_per_row_scale_alone_loses():
    torch.manual_seed(2)
    linear = nn.Linear(48, 32)
    x = _inputs()
    reference = linear(x).detach()
    smoothed = SmoothInt8Linear(linear, x.abs().amax(dim=0))
    plain = SmoothInt8Linear(linear, torch.ones(48), alpha=0.0)  # s = 1 / max|W|: no activation smoothing
    with torch.inference_mode():
        error_smoothed = (smoothed(x) - reference).norm() / reference.norm()
        error_plain = (plain(x) - reference).norm() / reference.norm()
    assert error_smoothed < 0.01 and error_smoothed < error_plain


def test_a_row_gets_the_same_output_alone_and_in_a_batch():
    torch.manual_seed(3)
    layer = SmoothInt8Linear(nn.Linear(48, 32), _inputs().abs().amax(dim=0))
    x = _inputs()
    x[5] *= 100  # a loud neighbour would widen a per-batch scale
    with torch.inference_mode():
        together = layer(x.reshape(4, 16, 48)).reshape(64, 32)
        alone = layer(x[:1])
    assert torch.equal(together[:1], alone)


def test_calibrated_swap_replaces_every_linear_and_stays_close():
    reference, quantised = _mlp(), _mlp()
    x = _inputs(256)
    maxima = input_maxima(quantised, lambda: quantised(x), list(linear_layers(quantised)))
    assert set(maxima) == {"0", "2.0"} and maxima["0"].shape == (48,) and maxima["2.0"].shape == (96,)
    smooth_int8_layers(quantised, maxima)
    assert not linear_layers(quantised)
    with torch.inference_mode():
        cosine = torch.nn.functional.cosine_similarity(reference(x), quantised(x), dim=-1)
    assert cosine.min() > 0.99


def test_keep_float_leaves_the_named_layers_alone():
    module = _mlp()
    maxima = input_maxima(module, lambda: module(_inputs()), list(linear_layers(module)))
    smooth_int8_layers(module, maxima, keep_float=("2.0",))
    assert isinstance(module[0], SmoothInt8Linear) and type(module[2][0]) is nn.Linear


def test_calibration_texts_are_shipped_and_multilingual():
    texts = calibration_texts()
    assert len(texts) >= 80 and any("人" in t for t in texts) and any("Menschen" in t for t in texts)
