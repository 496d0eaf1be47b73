"""Which arithmetic the encoder runs in, chosen once per process from what the CPU has.

Three precisions. ``auto`` picks one only where it is both faster than float32 on the hardware and close
enough to it (per-token cosine >= 0.99 and nDCG@10 within 0.002 of float32 on real evaluation sets;
docs/benchmarks.md, "Encoding precision"):

* ``float32``: the reference, everywhere;
* ``bfloat16``: autocast to bf16 matmuls, where the CPU has bf16 dot-product units (AVX512-BF16 or AMX);
  elsewhere the CPU emulates them and bf16 is slower than float32;
* ``int8``: the backbone's linear layers run as int8 VNNI GEMMs on SmoothQuant-smoothed operands with one
  activation scale per token (``encoding/int8.py``); it passes the gate on the default model, and ``auto``
  picks it where the CPU has int8 dot-product units (AVX512-VNNI, AVX-VNNI, AMX-INT8) but no bf16 ones.

``auto`` on a GPU picks bf16 where the device supports it. ``POLYCOLBERT_CPU_FLAGS`` (a space-separated
flag list) replaces ``/proc/cpuinfo`` for the choice, so the picker can be told it is on another CPU
(benchmarks measure "no bf16 units" that way).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

Precision = Literal["float32", "bfloat16", "int8"]
DType = Literal["auto", "float32", "bfloat16", "int8"]
PRECISIONS: tuple[Precision, ...] = ("float32", "bfloat16", "int8")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
CPU_FLAGS_ENV = "POLYCOLBERT_CPU_FLAGS"


@dataclass(frozen=True)
class CpuUnits:
    """The matrix units that decide the precision: bf16 and int8 dot products."""

    bf16: bool
    int8: bool

    def describe(self) -> str:
        units = [name for name, present in (("bf16", self.bf16), ("int8 VNNI", self.int8)) if present]
        return ", ".join(units) if units else "no bf16 or int8 dot-product units"


def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (``POLYCOLBERT_CPU_FLAGS`` when set, else ``/proc/cpuinfo``)."""
    override = os.environ.get(CPU_FLAGS_ENV)
    if override is not None:
        return frozenset(override.split())
    return _proc_cpuinfo_flags()


@functools.cache
def _proc_cpuinfo_flags() -> frozenset[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def cpu_units(flags: frozenset[str] | None = None) -> CpuUnits:
    flags = cpu_flags() if flags is None else flags
    return CpuUnits(bf16=any(f in flags for f in BF16_FLAGS), int8=any(f in flags for f in INT8_FLAGS))


def cpu_supports_bf16() -> bool:
    """True where bf16 matmuls run natively (AVX512-BF16 or AMX); elsewhere bf16 is slower than fp32."""
    return cpu_units().bf16


def choose_precision(dtype: str, device: torch.device, units: CpuUnits | None = None) -> Precision:
    """The precision ``dtype`` asks for; ``auto`` reads the hardware (module docstring)."""
    if dtype in PRECISIONS:
        if dtype == "int8" and device.type != "cpu":
            raise ValueError("int8 encoding runs on the CPU only; use bfloat16 or float32 on a GPU")
        return dtype  # type: ignore[return-value]
    if dtype != "auto":
        raise ValueError(f"dtype must be auto, float32, bfloat16 or int8; got {dtype!r}")
    if device.type == "cuda":
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
    units = cpu_units() if units is None else units
    if units.bf16:
        return "bfloat16"
    return "int8" if units.int8 else "float32"


def autocast_dtype(precision: Precision) -> torch.dtype:
    """The dtype the forward pass is autocast to (int8 layers take and give float32)."""
    return torch.bfloat16 if precision == "bfloat16" else torch.float32


def precision_line(precision: Precision, device: torch.device) -> str:
    """What start-up logs say: the precision and why it was chosen."""
    if device.type != "cpu":
        return f"encoding precision {precision} on {device.type}"
    return f"encoding precision {precision} (CPU: {cpu_units().describe()})"


class OneDnnLinear(nn.Linear):
    """``nn.Linear`` whose float32 inference GEMM runs in oneDNN instead of the default BLAS.

    PyTorch's CPU builds send float32 ``F.linear`` to MKL, which on AMD CPUs runs well below the
    oneDNN kernel (docs/benchmarks.md, "Encoding throughput"). With gradients on, under autocast or for
    other dtypes it is plain ``nn.Linear``, so training and bf16 are untouched; the parameters are the
    same tensors (memory-mapped weights stay mapped, ``state_dict`` names do not change).
    """

    @classmethod
    def wrap(cls, linear: nn.Linear) -> OneDnnLinear:
        wrapped = cls.__new__(cls)
        nn.Module.__init__(wrapped)
        wrapped.in_features, wrapped.out_features = linear.in_features, linear.out_features
        wrapped.weight = linear.weight
        wrapped.bias = linear.bias
        return wrapped

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if (
            torch.is_grad_enabled()
            or torch.is_autocast_enabled("cpu")
            or input.dtype != torch.float32
            or self.weight.dtype != torch.float32
            or input.device.type != "cpu"
        ):
            return super().forward(input)
        return torch.ops.mkldnn._linear_pointwise(input, self.weight, self.bias, "none", [], "")


def onednn_linear_layers(module: nn.Module) -> nn.Module:
    """``module`` with every ``nn.Linear`` made a :class:`OneDnnLinear`, in place (where oneDNN exists)."""
    if not torch.backends.mkldnn.is_available():
        return module
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear:
                setattr(parent, name, OneDnnLinear.wrap(child))
    return module
