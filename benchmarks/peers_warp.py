"""Benchmark XTR-WARP (``xtr-warp-rs``) on token vectors given in files, in the PLAID peers' environment.

Why a script of its own: like the PLAID peers, XTR-WARP's Rust extension is built against one exact torch
(2.11.0), so it runs in ``.venv-plaid`` (see benchmarks/README.md) and imports nothing from polycolbert.
Building (k-means, compression) is slow and CPU-heavy, so it is a separate step (``--build``, run under
in the background) from the timed search (run under ``benchmarks/bench.sh``, which pauses builds).

Input folder (``--vectors``): the layout ``benchmarks/corpora.py`` writes (and ``peers_plaid.py`` reads):
``doc_tokens.npy`` ([T, d], float16 or float32), ``doc_lengths.npy``, ``query_tokens.npy`` ([n, 32, d]).

    .venv-plaid/bin/python benchmarks/peers_warp.py --vectors DIR --workdir IDX --build --output b.json
    .venv-plaid/bin/python benchmarks/peers_warp.py --vectors DIR --workdir IDX --threads 2 --output s.json

Output JSON: ``build`` {seconds, index_bytes, bytes_per_token, n_tokens} (build mode), or ``search``
{p50_ms, p99_ms, qps (one query per call), batched_qps (all queries, one call), rss_bytes,
search_params (the library's defaults: ``None`` = its own choice)} and ``ranked_ids`` (document numbers,
best first) plus the load average before and after (search mode).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vectors", type=Path, required=True)
    parser.add_argument("--workdir", type=Path, required=True, help="the index folder")
    parser.add_argument("--nbits", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=0, help="the first N queries only (0: all)")
    parser.add_argument("--build", action="store_true", help="build the index (else: time search on it)")
    parser.add_argument(
        "--kmeans-sample-docs",
        type=int,
        default=None,
        help="documents k-means samples (the library's own choice if absent; a smaller sample only shortens "
        "the build, at the centroid count the library picks)",
    )
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    import numpy as np
    import torch
    from xtr_warp import XTRWarp

    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"system": f"XTR-WARP nbits={args.nbits}", "loadavg_start": os.getloadavg()}
    if args.build:
        tokens = np.load(args.vectors / "doc_tokens.npy").astype(np.float32)
        lengths = np.load(args.vectors / "doc_lengths.npy")
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        docs = [torch.from_numpy(tokens[a:b]) for a, b in itertools.pairwise(bounds)]
        t0 = time.perf_counter()
        XTRWarp(str(args.workdir)).create(
            docs,
            device="cpu",
            nbits=args.nbits,
            n_samples_kmeans=args.kmeans_sample_docs,
            show_progress=False,
        )
        seconds = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in args.workdir.rglob("*") if f.is_file())
        out["build"] = {
            "seconds": seconds,
            "index_bytes": size,
            "bytes_per_token": size / len(tokens),
            "n_tokens": len(tokens),
            "kmeans_sample_docs": args.kmeans_sample_docs,
        }
    else:
        queries = torch.from_numpy(np.load(args.vectors / "query_tokens.npy").astype(np.float32))
        if args.queries:
            queries = queries[: args.queries]
        index = XTRWarp(str(args.workdir)).load(device="cpu")
        index.search(queries[:2], top_k=args.k, num_threads=args.threads, show_progress=False)  # warm
        times, ranked = [], []
        for q in queries:
            t0 = time.perf_counter()
            hits = index.search(q[None], top_k=args.k, num_threads=args.threads, show_progress=False)[0]
            times.append(time.perf_counter() - t0)
            ranked.append([int(d) for d, _ in hits])
        t0 = time.perf_counter()
        index.search(queries, top_k=args.k, num_threads=args.threads, show_progress=False)
        batched = time.perf_counter() - t0
        rss = 0
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
        out["search"] = {
            "p50_ms": float(np.percentile(times, 50) * 1000),
            "p99_ms": float(np.percentile(times, 99) * 1000),
            "qps": len(times) / sum(times),
            "batched_qps": len(queries) / batched,
            "rss_bytes": rss,
            "threads": args.threads,
        }
        out["ranked_ids"] = ranked
    out["loadavg_end"] = os.getloadavg()
    args.output.write_text(json.dumps(out))
    print(json.dumps({k: v for k, v in out.items() if k != "ranked_ids"}))


if __name__ == "__main__":
    main()
