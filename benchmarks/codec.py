"""Residual quantisers at equal bytes: which one keeps MaxSim rankings, on scifact's real token vectors.

Why this exists: the index's codec (``polycolbert.index.codec``) replaced PLAID-style per-dimension
2-bit buckets with faiss product quantisation after a variance-balanced PCA rotation, at the same bytes
per token. This script shows the choice on the same centroids, brute force over every decoded token (so
the search stages play no part): reconstruction error, top-10 overlap with fp32 MaxSim, nDCG@10 and
training time, for

* ``buckets``: per-dimension quantile buckets (the previous codec, PLAID's scheme with per-dimension
  cutoffs), written out here as the reference;
* ``pq``: faiss ``ProductQuantizer`` on the raw residual (no rotation);
* ``pq+pca``: the shipped codec (``Codec.train``: balanced PCA rotation, then PQ);
* ``pq+opq``: faiss' iterative ``OPQMatrix`` rotation instead (minutes of training).

Run (idle machine; the first run encodes scifact through the evaluation cache):

    .venv/bin/python benchmarks/codec.py --nbits 1 2 4 --output docs/assets/index/codec.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from index import Corpus, exhaustive, quality, scifact  # benchmarks/index.py
from polycolbert.scoring import maxsim_segments, top_k


def scalar_buckets(residual: np.ndarray, sample: np.ndarray, nbits: int) -> np.ndarray:
    """The previous codec's residual: quantile cutoffs per dimension, each bucket decoding to its mean."""
    levels = 2**nbits
    cutoffs = np.quantile(sample, np.arange(1, levels) / levels, axis=0)  # [levels-1, d]

    def bucketize(values: np.ndarray) -> np.ndarray:
        out = np.zeros(values.shape, np.uint8)
        for row in cutoffs:  # one comparison at a time: a [levels, T, d] mask would not fit at 4 bits
            out += values > row[None, :]
        return out

    buckets, sample_buckets = bucketize(residual), bucketize(sample)
    values = np.stack(
        [
            np.where(sample_buckets == b, sample, 0).sum(0) / np.maximum((sample_buckets == b).sum(0), 1)
            for b in range(levels)
        ]
    )  # [levels, d]
    return np.take_along_axis(values, buckets.astype(np.intp), axis=0)


def product_quantised(residual: np.ndarray, sample: np.ndarray, nbits: int, rotation: str) -> np.ndarray:
    import faiss

    from polycolbert.index.codec import balanced_rotation

    dims = residual.shape[1]
    groups = dims * nbits // 8
    if rotation == "pca":
        r = balanced_rotation(sample, groups)
    elif rotation == "opq":
        opq = faiss.OPQMatrix(dims, groups)
        opq.niter = 20
        opq.train(np.ascontiguousarray(sample))
        r = faiss.vector_to_array(opq.A).reshape(dims, dims).T.astype(np.float32)
    else:
        r = np.eye(dims, dtype=np.float32)
    pq = faiss.ProductQuantizer(dims, groups, 8)
    pq.cp.niter = 12
    pq.train(np.ascontiguousarray(sample @ r))
    return pq.decode(pq.compute_codes(np.ascontiguousarray(residual @ r))) @ r.T


def rank_decoded(corpus: Corpus, decoded: np.ndarray, depth: int = 10) -> list[list[int]]:
    lengths = np.array([len(d) for d in corpus.docs])
    starts = np.concatenate([[0], np.cumsum(lengths)])[:-1]
    out = []
    for q in corpus.queries:
        scores = np.empty(len(lengths), np.float32)
        for a in range(0, len(lengths), 512):
            b = min(a + 512, len(lengths))
            lo, hi = starts[a], starts[b - 1] + lengths[b - 1]
            scores[a:b] = maxsim_segments(q @ decoded[lo:hi].T, lengths[a:b])[0]
        out.append(top_k(scores, depth).tolist())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--nbits", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--methods", nargs="+", default=["buckets", "pq", "pq+pca", "pq+opq"])
    parser.add_argument(
        "--centroids", type=int, help="centroid count (default: the index's own rule, choose_n_centroids)"
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    from polycolbert.index.codec import assign_nearest, choose_n_centroids, kmeans

    corpus = scifact()
    flat = np.concatenate(corpus.docs).astype(np.float32)
    reference, _ = exhaustive(corpus, 10)
    n_centroids = args.centroids or choose_n_centroids(len(flat))
    print(f"{len(flat)} tokens, {n_centroids} centroids")
    centroids = kmeans(flat, n_centroids).astype(np.float16).astype(np.float32)
    base = centroids[assign_nearest(flat, centroids)]
    residual = flat - base
    rng = np.random.default_rng(1)
    sample = np.ascontiguousarray(residual[rng.choice(len(flat), 65_536, replace=False)])
    rows: list[dict[str, Any]] = []
    print(f"{'nbits':>5} {'method':<8} {'MSE':>8} {'overlap@10':>10} {'nDCG@10':>8} {'train+encode s':>14}")
    for nbits in args.nbits:
        for method in args.methods:
            t0 = time.perf_counter()
            if method == "buckets":
                quantised = scalar_buckets(residual, sample, nbits)
            else:
                quantised = product_quantised(residual, sample, nbits, method.partition("+")[2])
            seconds = time.perf_counter() - t0
            decoded = base + quantised
            mse = float(((decoded - flat) ** 2).sum(1).mean())
            decoded /= np.linalg.norm(decoded, axis=1, keepdims=True)
            q = quality(corpus, rank_decoded(corpus, decoded), reference)
            rows.append({"nbits": nbits, "method": method, "mse": mse, "seconds": seconds, **q})
            print(
                f"{nbits:>5} {method:<8} {mse:8.5f} {q['overlap@10']:10.3f} {q['ndcg@10']:8.4f} "
                f"{seconds:14.1f}"
            )
            if args.output:
                args.output.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
