"""Embedded index vs exhaustive fp32 MaxSim on the same token vectors: size, latency, quality.

Run:  .venv/bin/python benchmarks/index.py --corpus scifact [--nbits 2] [--synthetic-tokens 0]

Encodings of scifact (default model) are cached under ``$POLYCOLBERT_CACHE/eval`` (the eval cache), so
reruns skip the minutes of encoding. Peers (Stanford PLAID, FastPlaid) need a separate venv with
fast-plaid's pinned torch and are not run here; their numbers on a held-out corpus are quoted in
docs/benchmarks.md from the issue.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path("/work/shared/data")


def scifact_vectors(dims: int = 128) -> tuple[Any, list[np.ndarray], list[np.ndarray]]:
    """The scifact dataset and its document / query token vectors from the default model (cached)."""
    from rich.console import Console

    from polycolbert import ColBERT
    from polycolbert.eval.cache import default_cache_dir
    from polycolbert.eval.datasets import load_beir
    from polycolbert.eval.systems import ColBERTEncoder, _progress, encode_cached

    dataset = load_beir(DATA / "scifact")
    encoder = ColBERTEncoder(ColBERT.load("polycolbert-e5-small"), dims=(dims,))
    name = f"colbert-{dims}"
    with _progress(Console(stderr=True)) as progress:
        docs = encode_cached(encoder, dataset.corpus_texts, "document", [name], default_cache_dir(), progress)
        queries = encode_cached(encoder, dataset.query_texts, "query", [name], default_cache_dir(), progress)
    as32 = lambda vs: [np.asarray(v, np.float32) for v in vs]  # noqa: E731
    return dataset, as32(docs[name]), as32(queries[name])


def exhaustive_top(queries: list[np.ndarray], docs: list[np.ndarray], k: int) -> tuple[np.ndarray, float]:
    """fp32 MaxSim over every document (the reference), and its p50 latency per query in ms."""
    from polycolbert.scoring import maxsim_many

    tops, times = [], []
    for q in queries:
        t0 = time.perf_counter()
        s = maxsim_many(q, docs)
        tops.append(np.argsort(-s, kind="stable")[:k])
        times.append(time.perf_counter() - t0)
    return np.array(tops), float(np.percentile(times, 50) * 1000)


def bench_index(
    docs: list[np.ndarray], queries: list[np.ndarray], ids: list[str], nbits: int, dims: int
) -> dict[str, Any]:
    from polycolbert.index import Index

    out: dict[str, Any] = {"nbits": nbits}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        index = Index.create(Path(tmp) / "ix", dimensions=dims, nbits=nbits)
        index.add([""] * len(docs), ids=ids, vectors=docs)
        out["build_s"] = time.perf_counter() - t0
        info = index.info()
        out["bytes_per_token"] = info["bytes_per_token"]
        out["vector_bytes_per_token"] = info["vector_bytes_per_token"]
        index.search(query_vectors=queries[:2], k=10)  # load + warm caches
        for k in (10, 100):
            times, runs = [], []
            for q in queries:
                t0 = time.perf_counter()
                runs.append(index.search(query_vectors=[q], k=k)[0])
                times.append(time.perf_counter() - t0)
            out[f"k{k}_p50_ms"] = float(np.percentile(times, 50) * 1000)
            out[f"k{k}_p99_ms"] = float(np.percentile(times, 99) * 1000)
            out[f"k{k}_qps_single"] = len(queries) / sum(times)
            t0 = time.perf_counter()
            batched = []
            for s in range(0, len(queries), 32):
                batched += index.search(query_vectors=queries[s : s + 32], k=k)
            out[f"k{k}_qps_batched"] = len(queries) / (time.perf_counter() - t0)
            if k == 10:
                out["runs"] = runs
        index.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default="scifact", choices=["scifact"])
    parser.add_argument("--nbits", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--dims", type=int, default=128)
    args = parser.parse_args()
    from polycolbert.eval.metrics import evaluate

    dataset, docs, queries = scifact_vectors(args.dims)
    tokens = sum(len(d) for d in docs)
    print(f"scifact: {len(docs)} docs, {tokens} tokens, {len(queries)} queries, {args.dims} dims")
    ref_top, ref_ms = exhaustive_top(queries, docs, 10)
    ids = dataset.corpus_ids
    ref_run = {
        q: {ids[i]: 10.0 - r for r, i in enumerate(top)}
        for q, top in zip(dataset.query_ids, ref_top, strict=True)
    }
    ref_ndcg = evaluate(dataset.qrels, ref_run)["ndcg@10"]
    rows = [
        {
            "system": "exhaustive fp32 MaxSim",
            "k10_p50_ms": ref_ms,
            "ndcg@10": ref_ndcg,
            "overlap@10": 1.0,
            "vector_bytes_per_token": args.dims * 4,
        }
    ]
    for nbits in args.nbits:
        res = bench_index(docs, queries, ids, nbits, args.dims)
        runs = res.pop("runs")
        run = {q: {h.id: h.score for h in hits} for q, hits in zip(dataset.query_ids, runs, strict=True)}
        res["ndcg@10"] = evaluate(dataset.qrels, run)["ndcg@10"]
        res["overlap@10"] = float(
            np.mean(
                [
                    len({h.id for h in hits} & {ids[i] for i in top}) / 10
                    for hits, top in zip(runs, ref_top, strict=True)
                ]
            )
        )
        res["system"] = f"polycolbert index nbits={nbits}"
        rows.append(res)
    for row in rows:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}))


if __name__ == "__main__":
    main()
