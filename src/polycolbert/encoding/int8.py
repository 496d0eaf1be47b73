"""Smoothed int8 linear layers: the int8 VNNI path for CPUs without bf16 units.

A plain int8 GEMM with one activation scale per call loses the default model's FFN activations, whose few
outlier channels set the scale for every other channel (docs/benchmarks.md, "Encoding precision"). Two
changes keep it close to float32:

* SmoothQuant's per-channel smoothing: for each input channel ``j`` of a linear layer,
  ``s_j = max|X_j| ** alpha / max|W_j| ** (1 - alpha)`` moves the outliers' range from the activations
  into the weights (``X W^T = (X / s) (W s)^T``, exact before rounding). ``max|X_j|`` comes from a
  calibration pass over shipped public-domain text (``assets/calibration/udhr.json``: the Universal
  Declaration of Human Rights in 43 languages, a training-side text, never an evaluation set);
* one activation scale per token row, not per batch, so a text's vectors never depend on the texts it is
  batched with (and a padding row cannot widen another row's scale).

The GEMM is ``torch._int_mm`` (int8 x int8 -> int32, oneDNN's VNNI kernel on x86); the int32 result is
scaled back per token and per output channel. Linear layers named in ``keep_float`` stay float32.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from importlib import resources

import torch
from torch import nn

SMOOTHING_ALPHA = 0.5
CALIBRATION_TEXTS = "udhr.json"


class SmoothInt8Linear(nn.Module):
    """``nn.Linear`` as a per-token int8 x per-channel int8 GEMM on smoothed operands (module docstring)."""

    inv_smooth: torch.Tensor  # [in]: 1 / s
    weight_scale: torch.Tensor  # [out]
    weight_int8: torch.Tensor  # [in, out]: (W s)^T, per output channel
    bias: torch.Tensor  # [out], zeros where the layer had none

    def __init__(self, linear: nn.Linear, input_max: torch.Tensor, alpha: float = SMOOTHING_ALPHA):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        smooth = (input_max.float().clamp_min(1e-5) ** alpha) / (
            weight.abs().amax(dim=0).clamp_min(1e-5) ** (1 - alpha)
        )
        smoothed = weight * smooth  # [out, in]: column j scaled by s_j
        scale = smoothed.abs().amax(dim=1).clamp_min(1e-8) / 127
        self.register_buffer("inv_smooth", (1 / smooth).contiguous())
        self.register_buffer("weight_scale", scale.contiguous())
        self.register_buffer(
            "weight_int8",
            (smoothed / scale[:, None]).round().clamp(-127, 127).to(torch.int8).t().contiguous(),
        )
        bias = linear.bias.detach().float() if linear.bias is not None else torch.zeros(self.out_features)
        self.register_buffer("bias", bias.contiguous())

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        rows = input.reshape(-1, self.in_features).float() * self.inv_smooth
        scale = rows.abs().amax(dim=1, keepdim=True).clamp_min(1e-8) / 127
        quantised = (rows / scale).round_().to(torch.int8)
        out = torch.addcmul(
            self.bias, torch._int_mm(quantised, self.weight_int8).float(), scale * self.weight_scale
        )
        return out.reshape(*input.shape[:-1], self.out_features)


def linear_layers(module: nn.Module) -> dict[str, nn.Linear]:
    return {name: child for name, child in module.named_modules() if isinstance(child, nn.Linear)}


@torch.inference_mode()
def input_maxima(
    module: nn.Module, run: Callable[[], object], names: Iterable[str]
) -> dict[str, torch.Tensor]:
    """Per input channel, the largest ``|x|`` each named linear layer sees while ``run()`` runs."""
    maxima: dict[str, torch.Tensor] = {}
    layers = dict(module.named_modules())
    hooks = []
    for name in names:

        def record(_: nn.Module, args: tuple, name: str = name) -> None:
            seen = args[0].detach().reshape(-1, args[0].shape[-1]).abs().amax(dim=0).float()
            maxima[name] = torch.maximum(maxima[name], seen) if name in maxima else seen

        hooks.append(layers[name].register_forward_pre_hook(record))
    try:
        run()
    finally:
        for hook in hooks:
            hook.remove()
    return maxima


def smooth_int8_layers(
    module: nn.Module, maxima: dict[str, torch.Tensor], keep_float: tuple[str, ...] = ()
) -> nn.Module:
    """``module`` with each calibrated ``nn.Linear`` swapped, in place, for a :class:`SmoothInt8Linear`;
    a layer whose name ends with one of ``keep_float`` stays as it is."""
    for name, linear in linear_layers(module).items():
        if name not in maxima or name.endswith(keep_float):
            continue
        parent_name, _, child = name.rpartition(".")
        parent = module.get_submodule(parent_name) if parent_name else module
        setattr(parent, child, SmoothInt8Linear(linear, maxima[name]))
    return module


def calibration_texts() -> list[str]:
    """The shipped calibration texts (module docstring)."""
    path = resources.files("polycolbert") / "assets" / "calibration" / CALIBRATION_TEXTS
    return list(json.loads(path.read_text(encoding="utf-8")))
