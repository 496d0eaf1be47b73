"""The precision picker and the kernels it selects, against plain float32 PyTorch as the reference."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from polycolbert.encoding.precision import (
    CPU_FLAGS_ENV,
    CpuUnits,
    OneDnnLinear,
    choose_precision,
    cpu_units,
    onednn_linear_layers,
    precision_line,
)

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("units", "expected"),
    [
        (CpuUnits(bf16=True, int8=True), "bfloat16"),
        (CpuUnits(bf16=False, int8=True), "int8"),  # smoothed int8 passes the gate (encoding/int8.py)
        (CpuUnits(bf16=False, int8=False), "float32"),
    ],
)
def test_auto_follows_the_cpu_units(units, expected):
    assert choose_precision("auto", CPU, units) == expected


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "int8"])
def test_an_explicit_precision_is_kept(dtype):
    assert choose_precision(dtype, CPU, CpuUnits(bf16=False, int8=False)) == dtype


def test_bad_dtype_and_int8_off_the_cpu_are_refused():
    with pytest.raises(ValueError, match="dtype must be auto, float32, bfloat16 or int8"):
        choose_precision("float16", CPU)
    with pytest.raises(ValueError, match="CPU only"):
        choose_precision("int8", torch.device("cuda"))


def test_flags_from_the_environment_replace_cpuinfo(monkeypatch):
    monkeypatch.setenv(CPU_FLAGS_ENV, "avx512f avx512_vnni")
    assert cpu_units() == CpuUnits(bf16=False, int8=True)
    assert choose_precision("auto", CPU) == "int8"
    assert "int8 VNNI" in precision_line("int8", CPU)
    monkeypatch.setenv(CPU_FLAGS_ENV, "avx2 amx_bf16")
    assert choose_precision("auto", CPU) == "bfloat16"


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(24, 48), nn.GELU(), nn.Sequential(nn.Linear(48, 16, bias=False)))


def test_onednn_linear_matches_nn_linear_and_keeps_the_same_tensors():
    reference = _mlp()
    routed = onednn_linear_layers(_mlp())
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch build has no oneDNN")
    assert isinstance(routed[0], OneDnnLinear) and isinstance(routed[2][0], OneDnnLinear)
    assert routed.state_dict().keys() == reference.state_dict().keys()
    x = torch.randn(3, 5, 24)
    with torch.inference_mode():
        assert torch.allclose(routed(x), reference(x), atol=1e-5)


def test_onednn_linear_trains_like_nn_linear():
    routed = onednn_linear_layers(_mlp())
    reference = _mlp()
    x = torch.randn(4, 24)
    routed(x).sum().backward()
    reference(x).sum().backward()
    assert torch.allclose(routed[0].weight.grad, reference[0].weight.grad, atol=1e-5)
