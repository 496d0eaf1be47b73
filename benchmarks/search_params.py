"""Choose the cluster scan's ``NPROBE`` / ``NDECODE`` on scifact's TRAINING queries (never evaluation ones).

Why training queries: the parameters trade overlap with exhaustive MaxSim against latency, and a choice
made on the queries a benchmark then reports would flatter it. scifact's training questions share the
test corpus but none of its queries; the first ``--queries`` of them (by qrels order) are encoded once
by the current default model and cached beside the corpus's vectors.

For every (nprobe, ndecode) pair: top-10 overlap and top-1 agreement with ``exhaustive=True`` on the
same index (the compressed vectors, so only the candidate stage's loss shows), and p50 latency at one
query per call (time it under ``benchmarks/bench.sh``).

    .venv/bin/python benchmarks/search_params.py --corpus scifact --nprobe 4 8 12 16 --ndecode 16 32 64

``--crossover`` measures where brute force stops paying (``params.BRUTE_FORCE_TOKENS``): indexes of the
first documents of ``--corpus`` up to each token count, p50 of one query per call by brute force (every
token decoded once per snapshot and scored with BLAS) and by the cluster scan, same queries:

    .venv/bin/python benchmarks/search_params.py --corpus xquad-de@mixed --crossover 10000 20000 50000 \
        100000 200000 --queries 100
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
    parser.add_argument("--crossover", type=int, nargs="+", help="token counts: brute force vs scan")
    args = parser.parse_args()
    if args.crossover:
        crossover(args.corpus, args.crossover, args.queries, args.output)
        return
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


def p50_ms(index: object, queries: list[np.ndarray], exhaustive: bool) -> float:
    index.search(query_vectors=queries[:2], k=10, exhaustive=exhaustive)  # type: ignore[attr-defined]
    times = []
    for q in queries:
        t0 = time.perf_counter()
        index.search(query_vectors=[q], k=10, exhaustive=exhaustive)  # type: ignore[attr-defined]
        times.append(time.perf_counter() - t0)
    return float(np.percentile(times, 50) * 1000)


def crossover(corpus: str, sizes: list[int], n_queries: int, output: Path | None) -> None:
    import shutil
    import tempfile

    from polycolbert.index import Index
    from polycolbert.index import params as P

    tokens = np.load(BENCH / corpus / "doc_tokens.npy")
    lengths = np.load(BENCH / corpus / "doc_lengths.npy")
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    queries = list(np.load(BENCH / corpus / "query_tokens.npy")[:n_queries].astype(np.float32))
    rows = []
    for size in sizes:
        n_docs = int(np.searchsorted(bounds, size, side="right")) - 1
        docs = [tokens[bounds[i] : bounds[i + 1]].astype(np.float32) for i in range(n_docs)]
        folder = Path(tempfile.mkdtemp()) / "ix"
        with Index.create(folder, dimensions=docs[0].shape[1], nbits=2) as index:
            index.add([""] * n_docs, ids=[str(i) for i in range(n_docs)], vectors=docs)
            P.BRUTE_FORCE_TOKENS = (
                10**12
            )  # brute force at any size (its float32 copy kept, as below the constant)
            brute = p50_ms(index, queries, exhaustive=False)
            P.BRUTE_FORCE_TOKENS = 0  # the cluster scan at any size
            scan = p50_ms(index, queries, exhaustive=False)
            row = {"tokens": int(bounds[n_docs]), "documents": n_docs, "centroids": index.info()["centroids"]}
            rows.append({**row, "brute_force_p50_ms": brute, "scan_p50_ms": scan})
            print(rows[-1], flush=True)
        shutil.rmtree(folder.parent)
    if output:
        output.write_text(json.dumps({"corpus": corpus, "queries": len(queries), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
