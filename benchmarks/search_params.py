"""Choose the cluster scan's ``NPROBE`` / ``NDECODE`` on scifact's TRAINING queries (never evaluation ones).

Why training queries: the parameters trade overlap with exhaustive MaxSim against latency, and a choice
made on the queries a benchmark then reports would flatter it. scifact's training questions share the
test corpus but none of its queries; the first ``--queries`` of them (by qrels order) are encoded once
by the current default model and cached beside the corpus's vectors.

For every (nprobe, ndecode) pair: top-10 overlap and top-1 agreement with ``exhaustive=True`` on the
same index (the compressed vectors, so only the candidate stage's loss shows), and p50 latency at one
query per call (time it under ``/work/bin/bench``).

    .venv/bin/python benchmarks/search_params.py --corpus scifact --nprobe 4 8 12 16 --ndecode 16 32 64
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

BENCH = Path.home() / ".cache" / "polycolbert" / "bench"
DATA = Path("/work/shared/data/scifact")


def training_queries(n: int) -> np.ndarray:
    path = BENCH / "scifact" / f"train_query_tokens_{n}.npy"
    if path.exists():
        return np.load(path).astype(np.float32)
    from polycolbert import ColBERT

    with open(DATA / "qrels" / "train.tsv", encoding="utf-8") as handle:
        next(handle)
        ids = list(dict.fromkeys(line.split("\t")[0] for line in handle))[:n]
    texts = {}
    for line in (DATA / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        texts[row["_id"]] = row["text"]
    vectors = ColBERT.load().encode_queries([texts[i] for i in ids], dimensions=128)
    out = np.stack(vectors).astype(np.float16)
    np.save(path, out)
    return out.astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", default="scifact", help="a search_speed.py --build index")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--nprobe", type=int, nargs="+", default=[4, 8, 12, 16, 24])
    parser.add_argument("--ndecode", type=int, nargs="+", default=[16, 32, 64])
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    from polycolbert.index import Index
    from polycolbert.index import params as P

    queries = list(training_queries(args.queries))
    rows = []
    with Index.open(BENCH / args.corpus / "polycolbert-nbits2") as index:
        reference = [[h.id for h in r] for r in index.search(query_vectors=queries, k=10, exhaustive=True)]
        for nprobe in args.nprobe:
            for ndecode in args.ndecode:
                P.NPROBE, P.NDECODE = nprobe, ndecode
                index.search(query_vectors=queries[:2], k=10)
                times, got = [], []
                for q in queries:
                    t0 = time.perf_counter()
                    got.append([h.id for h in index.search(query_vectors=[q], k=10)[0]])
                    times.append(time.perf_counter() - t0)
                overlap = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, reference, strict=True)])
                top1 = np.mean([a[0] == b[0] for a, b in zip(got, reference, strict=True)])
                row = {"nprobe": nprobe, "ndecode": ndecode, "overlap@10": float(overlap)}
                row.update({"top1": float(top1), "p50_ms": float(np.percentile(times, 50) * 1000)})
                rows.append(row)
                print(row, flush=True)
    if args.output:
        args.output.write_text(json.dumps({"queries": len(queries), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
