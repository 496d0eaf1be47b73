"""How close each encoder runs to this CPU's arithmetic limit: GEMM peaks per precision and achieved FLOP/s.

    .venv/bin/python benchmarks/encode.py roofline --workdir /tmp/encode-bench [--races race-*.json]

Part one times the GEMM kernels torch and ONNX Runtime offer on the encoder's own shapes (the four
linear layers of an XLM-R layer: Q/K/V/attention-output ``h x h``, FFN up ``h x 4h``, FFN down ``4h x h``,
at batch rows ``M`` = the tokens in one forward pass), 2 threads, median of ``--calls`` after a warm-up:

* float32: MKL (``F.linear``, what torch's default path calls) and oneDNN (``mkldnn._linear_pointwise``);
* bfloat16: oneDNN (``F.linear`` on bf16 tensors, AVX512-BF16 where the CPU has it);
* int8: ``torch._int_mm`` (oneDNN, VNNI) alone and with the per-token / per-channel dequantisation in
  plain torch; oneDNN's ``qlinear_pointwise`` with one static (calibrated) activation scale, quantising the
  input and dequantising in the kernel; torch's dynamic quantised linear (fbgemm, one scale per call); ONNX
  Runtime's dynamically quantised MatMul and its float32 MatMul (in ``.venv-bench``, ``encode_peers.py
  gemm``).

``mix`` is the layer's GEMM throughput: all six GEMMs of one layer, FLOPs over summed time.

Part two counts the encoder's FLOPs per token from the model config (six GEMMs per layer, attention's two
batched products at each text's length, the 128-d head; padding not counted) for each race profile,
separately for an engine that cuts at 512 tokens (PyLate, ONNX Runtime) and for polycolbert's windows (every
forward token, overlap included), and turns each engine's tokens/s from race JSONs (``encode.py race
--output``) into achieved GFLOP/s and a fraction of the GEMM peak of its precision.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER_PYTHON = ROOT / ".venv-bench" / "bin" / "python"
PEER_SCRIPT = ROOT / "benchmarks" / "encode_peers.py"
THREADS = 2
ROWS = (1024, 4096)  # tokens per forward pass: sentence batches ~1,400, long windows 4,096
PEAK_KERNEL = {  # which kernel's "mix" is the peak each race row is compared with
    "float32": "fp32 oneDNN",
    "bfloat16": "bf16 oneDNN",
    "int8": "ORT int8 dynamic MatMul",  # the fastest int8 kernel with its dequantisation, here
}


def layer_shapes(hidden: int, intermediate: int) -> list[tuple[str, int, int, int]]:
    """(name, in, out, how many per layer) of the GEMMs in one transformer layer."""
    return [
        ("QKV/out h x h", hidden, hidden, 4),
        ("FFN up", hidden, intermediate, 1),
        ("FFN down", intermediate, hidden, 1),
    ]


def _median_seconds(call: Callable[[], object], calls: int) -> float:
    call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def torch_kernels(m: int, k: int, n: int) -> dict[str, Callable[[], object]]:
    """Each kernel on float32 input ``[m, k]`` and a weight ``[n, k]`` (a Linear's layout), output float."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    x = torch.randn(m, k)
    w = torch.randn(n, k) / k**0.5
    b = torch.randn(n)
    xb, wb, bb = x.bfloat16(), w.bfloat16(), b.bfloat16()
    w_scale = w.abs().amax(dim=1) / 127
    wq_t = (w / w_scale[:, None]).round().to(torch.int8).t().contiguous()  # [k, n]
    x_scale = x.abs().amax(dim=1, keepdim=True) / 127
    xq = (x / x_scale).round().to(torch.int8)

    def int8_dequant() -> torch.Tensor:
        scale = x.abs().amax(dim=1, keepdim=True) / 127
        q = (x / scale).round_().to(torch.int8)
        return torch.addcmul(b, torch._int_mm(q, wq_t).float(), scale * w_scale)

    packed = torch.ops.onednn.qlinear_prepack(wq_t.t().contiguous(), [m, k])
    static_scale = float(x.abs().max()) / 127
    w_zero = torch.zeros(n, dtype=torch.long)

    def int8_static() -> torch.Tensor:
        q = torch.quantize_per_tensor(x, static_scale, 128, torch.quint8).int_repr()  # int8 input: slow path
        return torch.ops.onednn.qlinear_pointwise(
            q, static_scale, 128, packed, w_scale, w_zero, b, 1.0, 0, torch.float32, "none", [], ""
        )

    dynamic = torch.ao.nn.quantized.dynamic.Linear(k, n, dtype=torch.qint8)
    dynamic.set_weight_bias(
        torch.quantize_per_channel(w, w_scale, torch.zeros(n, dtype=torch.long), 0, torch.qint8), b
    )
    return {
        "fp32 MKL": lambda: F.linear(x, w, b),
        "fp32 oneDNN": lambda: torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], ""),
        "bf16 oneDNN": lambda: F.linear(xb, wb, bb),
        "int8 _int_mm": lambda: torch._int_mm(xq, wq_t),
        "int8 _int_mm + dequant": int8_dequant,
        "int8 oneDNN qlinear, static scale": int8_static,
        "int8 dynamic (fbgemm)": lambda: dynamic(x),
    }


def gemm_table(hidden: int, intermediate: int, calls: int) -> dict[str, dict[str, float]]:
    """GFLOP/s per kernel and shape (and ``mix``) at each ``ROWS``; ONNX Runtime's rows from .venv-bench."""
    import torch

    torch.set_num_threads(THREADS)
    results: dict[str, dict[str, float]] = {}
    shapes = layer_shapes(hidden, intermediate)
    for m in ROWS:
        seconds: dict[str, float] = {}
        for name, k, n, count in shapes:
            for kernel, call in torch_kernels(m, k, n).items():
                try:
                    t = _median_seconds(call, calls)
                except RuntimeError as error:  # a kernel this build lacks
                    print(f"({kernel} {name} M={m}: {error})", file=sys.stderr)
                    continue
                results.setdefault(kernel, {})[f"{name} M={m}"] = 2 * m * k * n / t / 1e9
                seconds[kernel] = seconds.get(kernel, 0.0) + count * t
        flops = sum(2 * m * k * n * count for _, k, n, count in shapes)
        for kernel, total in seconds.items():
            results[kernel][f"mix M={m}"] = flops / total / 1e9
    if PEER_PYTHON.exists():
        command = [str(PEER_PYTHON), str(PEER_SCRIPT), "gemm", "--hidden", str(hidden)]
        command += ["--intermediate", str(intermediate), "--calls", str(calls), "--rows", *map(str, ROWS)]
        env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
        peer = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        results.update(json.loads(peer.stdout))
    return results


# -- FLOPs per token and achieved throughput -----------------------------------------------------------
def forward_flops(length: int, hidden: int, intermediate: int, layers: int, head: int) -> float:
    """FLOPs of one sequence of ``length`` tokens (no padding): GEMMs, attention's QK^T and PV, the head."""
    gemms = 2 * (4 * hidden * hidden + 2 * hidden * intermediate)
    attention = 2 * 2 * length * hidden  # per token: scores against every key, then the weighted values
    return length * (layers * (gemms + attention) + 2 * hidden * head)


def profile_flops(workdir: Path, config: dict, head: int) -> dict[str, dict[str, float]]:
    """Per profile: returned tokens and FLOPs per returned token, cut at 512 and as polycolbert windows."""
    from polycolbert import ColBERT

    model = ColBERT.load(workdir / "e5-pylate", dtype="float32", doc_maxlen=8192)
    args = (config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"], head)
    out = {}
    for path in sorted(workdir.glob("*.json")):
        if path.stem not in ("sentences", "paragraphs", "documents"):
            continue
        tokenized = model.tokenize(json.loads(path.read_text(encoding="utf-8")), "document")
        cut = [min(t.n_tokens, 512) for t in tokenized]
        windows = [len(w.ids) for t in tokenized for w in t.windows]
        covered = sum(t.n_tokens for t in tokenized)
        out[path.stem] = {
            "tokens": covered,
            "forward_tokens": sum(windows),
            "flops_per_token_cut": sum(forward_flops(n, *args) for n in cut) / sum(cut),
            "flops_per_token_windows": sum(forward_flops(n, *args) for n in windows) / covered,
        }
    return out


def achieved(
    races: list[Path], flops: dict[str, dict[str, float]], peaks: dict[str, dict[str, float]]
) -> None:
    """Achieved GFLOP/s of each race row and its fraction of its precision's GEMM peak (best ``mix``)."""
    print("\n| profile | engine | tokens/s | GFLOP/token | GFLOP/s | of GEMM peak | peak kernel |")
    print("| --- | --- | ---: | ---: | ---: | ---: | --- |")
    for path in races:
        race = json.loads(path.read_text(encoding="utf-8"))
        profile = flops[race["profile"]]
        for label, row in race["rows"].items():
            per_token = profile[
                "flops_per_token_windows" if label.startswith("polycolbert") else "flops_per_token_cut"
            ]
            rate = row["tokens_per_s"] * per_token / 1e9
            precision = row.get("precision", "float32")
            kernel = PEAK_KERNEL.get(precision, "fp32 oneDNN")
            peak = (
                max(v for k, v in peaks.get(kernel, {}).items() if k.startswith("mix"))
                if kernel in peaks
                else 0
            )
            share = f"{rate / peak:.0%}" if peak else "-"
            print(
                f"| {race['profile']} | {label} | {row['tokens_per_s']:,.0f} | {per_token / 1e9:.4f} | "
                f"{rate:,.0f} | {share} | {kernel} |"
            )


def roofline(workdir: Path, races: list[Path], calls: int) -> None:
    config = json.loads((workdir / "e5-pylate" / "config.json").read_text(encoding="utf-8"))
    head = json.loads((workdir / "e5-pylate" / "1_Dense" / "config.json").read_text(encoding="utf-8"))[
        "out_features"
    ]
    print(f"load average before {os.getloadavg()}; {THREADS} threads, median of {calls} calls", flush=True)
    peaks = gemm_table(config["hidden_size"], config["intermediate_size"], calls)
    columns = sorted({c for row in peaks.values() for c in row}, key=lambda c: (c.startswith("mix"), c))
    print("\nGEMM GFLOP/s (rows M = tokens per forward pass)\n")
    print("| kernel | " + " | ".join(columns) + " |")
    print("| --- | " + " | ".join("---:" for _ in columns) + " |")
    for kernel, row in peaks.items():
        print(f"| {kernel} | " + " | ".join(f"{row[c]:,.0f}" if c in row else "-" for c in columns) + " |")
    flops = profile_flops(workdir, config, head)
    print(
        "\n| profile | tokens | forward tokens (windows) | GFLOP/token, cut at 512 | GFLOP/token, windows |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for profile, f in flops.items():
        print(
            f"| {profile} | {f['tokens']:,} | {f['forward_tokens']:,} | "
            f"{f['flops_per_token_cut'] / 1e9:.4f} | {f['flops_per_token_windows'] / 1e9:.4f} |"
        )
    if races:
        achieved(races, flops, peaks)
    print(f"\nload average after {os.getloadavg()}")
    (workdir / "roofline.json").write_text(json.dumps({"gemm": peaks, "flops": flops}, indent=2))
