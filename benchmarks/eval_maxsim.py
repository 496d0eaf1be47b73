"""Exhaustive MaxSim over a corpus: bucketed GEMM (scoring.maxsim_buckets) vs per-query packed scoring.

Random unit vectors shaped like real workloads (XQuAD: 1,190 queries x 32 rows against 240 paragraphs
of ~170 rows; SciFact: 300 queries against 5,183 abstracts of ~300 rows). Prints seconds and the largest
score difference between the two methods.

    .venv/bin/python benchmarks/eval_maxsim.py [--dims 128] [--set xquad|scifact|both]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from polycolbert.scoring import maxsim_buckets

SHAPES = {"xquad": (1190, 240, 170), "scifact": (300, 5183, 300)}


def unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    v = rng.standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def per_query_packed(queries: list[np.ndarray], docs: list[np.ndarray]) -> np.ndarray:
    """Baseline: one packed matmul + scatter_reduce(amax) per query (the shape of a per-request scorer)."""
    packed = torch.from_numpy(np.concatenate(docs))
    lengths = torch.tensor([len(d) for d in docs])
    segment = torch.repeat_interleave(torch.arange(len(docs)), lengths)
    out = np.zeros((len(queries), len(docs)), np.float32)
    for i, q in enumerate(queries):
        sims = torch.from_numpy(q) @ packed.T
        best = torch.full((q.shape[0], len(docs)), float("-inf"))
        best.scatter_reduce_(1, segment.expand(q.shape[0], -1), sims, reduce="amax")
        out[i] = best.sum(0).numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dims", type=int, default=128)
    parser.add_argument("--set", choices=[*SHAPES, "both"], default="both")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"torch threads: {torch.get_num_threads()}, dims {args.dims}")
    for name in SHAPES if args.set == "both" else [args.set]:
        n_q, n_d, mean_len = SHAPES[name]
        queries = [unit(rng, 32, args.dims) for _ in range(n_q)]
        docs = [unit(rng, int(n), args.dims) for n in rng.integers(mean_len // 3, mean_len * 5 // 3, n_d)]
        tokens = sum(len(d) for d in docs)
        t0 = time.perf_counter()
        fast = maxsim_buckets(queries, docs)
        t1 = time.perf_counter()
        base = per_query_packed(queries, docs)
        t2 = time.perf_counter()
        gflop = 2 * n_q * 32 * tokens * args.dims / 1e9
        print(
            f"{name}: {n_q} queries x {n_d} docs ({tokens:,} doc rows): bucketed GEMM {t1 - t0:.2f} s "
            f"({gflop / (t1 - t0):.0f} GFLOP/s), per-query packed {t2 - t1:.2f} s, "
            f"max |diff| {np.abs(fast - base).max():.2e}"
        )


if __name__ == "__main__":
    main()
