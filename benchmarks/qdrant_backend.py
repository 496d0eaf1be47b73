"""What the Qdrant backend's single-vector prefetch costs, and what a document costs to store.

For each Matryoshka size, scifact (5,183 documents, 300 test queries) encoded by the packaged default
model is written to a qdrant-client local-mode collection; then every query is answered

* exhaustively (``prefetch_limit=0``: exact MaxSim over every point, the reference),
* with the mean-token-vector prefetch and with the MUVERA prefetch, at several candidate counts,

and nDCG@10 (ir-measures) plus the top-10 overlap with exhaustive MaxSim (computed independently by
``polycolbert.eval.exhaustive``) are printed.

``--engine numpy`` runs the same pipeline without Qdrant: the backend's own prefetch vectors
(``single_vector``: cosine of the mean vector, or MUVERA's dot product), the top candidates by that score,
then exact MaxSim over only those candidates (``maxsim_packed``, timed per query). qdrant-client's local
mode stores points pickled in SQLite and scores them in pure Python, so on a 2-core CPU it does not finish
1,200 long scifact documents in useful time; the numpy engine gives local mode's rankings in minutes
(``tests/backends/test_qdrant.py`` checks the backend returns exactly prefetch-then-MaxSim). Its prefetch
is an exact nearest-neighbour search, as in local mode; a server's HNSW is approximate and can only lose
candidates, so server numbers may be slightly lower.

Storage per document is measured, not assumed (Qdrant engine only): token rows per document, the
float32 vector bytes they imply, the payload's JSON bytes, and the local-mode folder's bytes on disk;
docs/scaling.md scales them to 100M documents.

``--bm25-bytes DATASET...`` measures only what BM25 fusion adds per document (no vectors, no model): the
sparse vector's entries (one per distinct term; a u32 index and an f32 weight each, as Qdrant stores them,
and the same again as postings of a server's inverted index), the script in the payload, and the
local-mode folder's growth with and without the BM25 vectors (same points, 4-dim stand-in vectors).

    .venv/bin/python benchmarks/qdrant_backend.py --out docs/assets/qdrant_backend
    .venv/bin/python benchmarks/qdrant_backend.py --engine numpy --sample 1200 --limits 50 100 200 300 500
    .venv/bin/python benchmarks/qdrant_backend.py --bm25-bytes scifact xquad-de xquad-zh jaquad-ja arcd-ar

``--bm25-quality DATASET...`` asks what the fixed average length costs: nDCG@10 of ColBERT-128 alone
(exhaustive MaxSim), and of the fusion the backend runs over MaxSim's best 100 (``fuse_bm25``, the script
gate) with the backend's BM25 at ``AVG_LENGTH``, with the same BM25 at the corpus's true average length,
and with the evaluation's BM25 (bm25s, stemmed in the dataset's language: what the weight was chosen
with). numpy, no Qdrant (``tests/backends/test_qdrant_fusion.py`` checks the backend computes this rule).

    .venv/bin/python benchmarks/qdrant_backend.py --bm25-quality xquad-de xquad-zh arcd-ar scifact
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # scifact_vectors, shared with tests

from polycolbert.backends.muvera import Muvera
from polycolbert.backends.qdrant import QdrantBackend, bm25, default_prefetch_limit, single_vector
from polycolbert.backends.qdrant.bm25 import document_vector, query_vector
from polycolbert.backends.qdrant.layout import collection_settings, vectors_config
from polycolbert.eval.exhaustive import ranked_runs
from polycolbert.eval.metrics import evaluate
from polycolbert.fusion import script_of
from polycolbert.lexical import tokenize
from polycolbert.scoring import maxsim_buckets, maxsim_packed, top_k, without_padding_rows
from scifact_vectors import load_scifact_vectors


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dims", type=int, nargs="+", default=[128, 96, 64])
    parser.add_argument("--limits", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--sample", type=int, default=None, help="documents (all relevant ones kept)")
    parser.add_argument("--out", type=Path, default=None, help="folder for results.json and a plot")
    parser.add_argument(
        "--engine", choices=["qdrant", "numpy"], default="qdrant", help="numpy: same pipeline without Qdrant"
    )
    parser.add_argument(
        "--bm25-bytes", nargs="+", metavar="DATASET", help="only BM25's bytes per document, these datasets"
    )
    parser.add_argument(
        "--bm25-quality", nargs="+", metavar="DATASET", help="only nDCG@10 of BM25 fusion, these datasets"
    )
    args = parser.parse_args()
    if args.bm25_quality:
        print(quality_table({name: bm25_quality(name) for name in args.bm25_quality}))
        return
    if args.bm25_bytes:
        print(bm25_table({name: bm25_storage(name) for name in args.bm25_bytes}))
        return

    corpus = load_scifact_vectors(dims=tuple(args.dims), sample=args.sample)
    dataset = corpus.dataset
    ids, texts = dataset.corpus_ids, dataset.corpus_texts  # type: ignore[attr-defined]
    qids, qrels = dataset.query_ids, dataset.qrels  # type: ignore[attr-defined]
    results: dict[str, object] = {"documents": len(ids), "queries": len(qids), "dims": {}}
    for dim in args.dims:
        docs, queries = corpus.documents[dim], corpus.queries[dim]
        exact_scores = maxsim_buckets(queries, docs)
        exact_top = [set(top_k(row, 10).tolist()) for row in exact_scores]
        tokens = np.array([len(d) for d in docs])
        payload_bytes = np.mean(
            [
                len(json.dumps({"id": i, "text": t, "metadata": {}, "n_tokens": 0}))
                for i, t in zip(ids, texts, strict=True)
            ]
        )
        row: dict[str, object] = {
            "mean_tokens": float(tokens.mean()),
            "vector_bytes_per_doc_fp32": float(tokens.mean() * dim * 4),
            "payload_bytes_per_doc": float(payload_bytes),
            "runs": [],
        }
        if args.engine == "numpy":
            row["runs"] = numpy_runs(docs, queries, exact_scores, exact_top, qids, ids, qrels, args.limits)
            results["dims"][dim] = row  # type: ignore[index]
            continue
        for prefetch in ("mean", "muvera"):
            with tempfile.TemporaryDirectory() as tmp:
                store = QdrantBackend.create(
                    f"qdrant+local://{tmp}/scifact", model="default", dimensions=dim, prefetch=prefetch
                )
                t0 = time.perf_counter()
                store.add(texts=texts, ids=ids, vectors=docs)
                row[f"add_seconds_{prefetch}"] = time.perf_counter() - t0
                row[f"local_mode_bytes_per_doc_{prefetch}"] = folder_bytes(Path(tmp)) / len(ids)
                for limit in ([0] if prefetch == "mean" else []) + args.limits:
                    t0 = time.perf_counter()
                    # Qdrant never prefetches fewer than k: below 100 candidates only nDCG@10 is measured.
                    k = 100 if limit == 0 or limit >= 100 else 10
                    hits = store.search(query_vectors=queries, k=k, prefetch_limit=limit)
                    seconds = time.perf_counter() - t0
                    run = {q: {h.id: h.score for h in found} for q, found in zip(qids, hits, strict=True)}
                    position = {doc_id: i for i, doc_id in enumerate(ids)}
                    overlap = np.mean(
                        [
                            len(exact & {position[h.id] for h in found[:10]}) / 10
                            for exact, found in zip(exact_top, hits, strict=True)
                        ]
                    )
                    metrics = evaluate(qrels, run)
                    entry = {
                        "prefetch": "none (exhaustive)" if limit == 0 else prefetch,
                        "candidates": limit,
                        "nDCG@10": metrics["nDCG@10"],
                        "Recall@100": metrics["Recall@100"] if k == 100 else None,
                        "top10_overlap_with_exhaustive": float(overlap),
                        "ms_per_query_local_mode": 1000 * seconds / len(qids),
                    }
                    row["runs"].append(entry)  # type: ignore[attr-defined]
                    print(dim, json.dumps(entry), flush=True)
                store.close()
        results["dims"][dim] = row  # type: ignore[index]
        print(dim, {k: v for k, v in row.items() if k != "runs"}, flush=True)
    if args.engine == "qdrant":
        print(storage_table(results))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
        plot(results, args.out / "prefetch_ndcg.png")


def numpy_runs(
    docs: list[np.ndarray],
    queries: list[np.ndarray],
    exact_scores: np.ndarray,
    exact_top: list[set[int]],
    qids: list[str],
    ids: list[str],
    qrels: dict,
    limits: list[int],
) -> list[dict]:
    """Prefetch then exact MaxSim, as the backend asks Qdrant for it, computed with numpy."""
    dim = docs[0].shape[1]
    queries = [without_padding_rows(q) for q in queries]  # as the backend sends them
    exhaustive_run = dict(zip(qids, ranked_runs(exact_scores, ids, 100), strict=True))
    runs = [
        {
            "prefetch": "none (exhaustive)",
            "candidates": 0,
            "nDCG@10": evaluate(qrels, exhaustive_run)["nDCG@10"],
            "top10_overlap_with_exhaustive": 1.0,
        }
    ]
    print(dim, json.dumps(runs[0]), flush=True)
    for prefetch in ("mean", "muvera"):
        muvera = Muvera(dim) if prefetch == "muvera" else None
        stored = np.stack([single_vector(prefetch, muvera, d, document=True) for d in docs])
        asked = np.stack([single_vector(prefetch, muvera, q, document=False) for q in queries])
        if prefetch == "mean":  # the collection's cosine distance
            stored /= np.linalg.norm(stored, axis=1, keepdims=True)
            asked /= np.linalg.norm(asked, axis=1, keepdims=True)
        single_scores = asked @ stored.T
        for limit in limits:
            run, overlaps, seconds = {}, [], []
            for q, query, row, exact in zip(qids, queries, single_scores, exact_top, strict=True):
                candidates = top_k(row, limit)
                t0 = time.perf_counter()
                scores = maxsim_packed(query, [docs[i] for i in candidates])
                seconds.append(time.perf_counter() - t0)
                order = top_k(scores)
                ranked = candidates[order]
                run[q] = {ids[i]: float(s) for i, s in zip(ranked, scores[order], strict=True)}
                overlaps.append(len(exact & set(ranked[:10].tolist())) / 10)
            entry = {
                "prefetch": prefetch,
                "candidates": limit,
                "default_for_k10": limit == default_prefetch_limit(prefetch, 10),
                "nDCG@10": evaluate(qrels, run)["nDCG@10"],
                "top10_overlap_with_exhaustive": float(np.mean(overlaps)),
                "median_ms_maxsim_per_query_numpy": 1000 * float(np.median(seconds)),
            }
            runs.append(entry)
            print(dim, json.dumps(entry), flush=True)
    return runs


def bm25_storage(name: str, root: Path = Path("/work/shared/data")) -> dict[str, float]:
    """What BM25 fusion adds to each document of one dataset, computed from its format and measured in
    local mode (the folder with the sparse vectors and scripts minus the folder without them)."""
    from polycolbert.eval.datasets import load_beir

    texts = load_beir(root / name).corpus_texts
    entries = float(np.mean([len(document_vector(t)[0]) for t in texts]))
    # the payload's ', "script": "LATIN"' (one byte less than its own JSON object's)
    script = float(np.mean([len(json.dumps({"script": script_of(t)})) - 1 for t in texts]))
    measured = {}
    vectors = [np.full((1, 4), 0.5, np.float32)] * len(texts)
    for with_bm25 in (True, False):
        with tempfile.TemporaryDirectory() as tmp:
            store = QdrantBackend.create(f"qdrant+local://{tmp}/c", model="stand-in", dimensions=4)
            if not with_bm25:  # the layout before BM25: no sparse vector, no script
                settings = collection_settings("stand-in", 4, "cosine", None, "mean", {})
                del settings["bm25"]
                store.client.delete_collection("c")
                store.client.create_collection(
                    "c", vectors_config=vectors_config(settings, False), metadata={"polycolbert": settings}
                )
                store.close()
                store = QdrantBackend.open(f"qdrant+local://{tmp}/c")
            store.add(texts=texts, ids=[str(i) for i in range(len(texts))], vectors=vectors)
            store.close()
            measured[with_bm25] = folder_bytes(Path(tmp))
    return {
        "documents": len(texts),
        "sparse_entries_per_doc": entries,
        "sparse_vector_bytes_per_doc": 8 * entries,
        "server_postings_bytes_per_doc": 8 * entries,
        "script_payload_bytes_per_doc": script,
        "local_mode_bytes_per_doc_added": (measured[True] - measured[False]) / len(texts),
    }


def bm25_quality(name: str, root: Path = Path("/work/shared/data"), dim: int = 128) -> dict[str, float]:
    """nDCG@10 of MaxSim alone and fused with three BM25s (see the module docstring)."""
    from rich.console import Console

    from polycolbert import ColBERT
    from polycolbert.eval.cache import default_cache_dir
    from polycolbert.eval.datasets import load_beir
    from polycolbert.eval.systems import ColBERTEncoder, _progress, encode_cached, run_bm25
    from polycolbert.fusion import CHOSEN, dominant, fuse_bm25, query_passes

    dataset = load_beir(root / name)
    texts, ids = dataset.corpus_texts, dataset.corpus_ids
    encoder = ColBERTEncoder(ColBERT.load(), (dim,))
    with _progress(Console(stderr=True)) as progress:
        wanted = [f"colbert-{dim}"]
        docs = encode_cached(encoder, texts, "document", wanted, default_cache_dir(), progress)[wanted[0]]
        queries = encode_cached(encoder, dataset.query_texts, "query", wanted, default_cache_dir(), progress)
    maxsim = maxsim_buckets([without_padding_rows(q) for q in queries[wanted[0]]], docs)
    depth = CHOSEN["bm25"].depth
    candidates = [top_k(row, depth) for row in maxsim]
    script = dominant([script_of(t) for t in texts])
    gates = [query_passes(q, script) for q in dataset.query_texts]
    evaluation = run_bm25(dataset, k=depth, keep_scores=True).scores
    assert evaluation is not None

    def qdrant_bm25(avg_length: float) -> np.ndarray:
        """The backend's BM25 (its sparse vectors, Qdrant's IDF) of each query's candidates."""
        params = {"k1": 1.2, "b": 0.75, "avg_length": avg_length}
        vectors = [dict(zip(*document_vector(t, params), strict=True)) for t in texts]
        with_terms = sum(bool(v) for v in vectors)
        df: dict[int, int] = {}
        for v in vectors:
            for term in v:
                df[term] = df.get(term, 0) + 1
        out = np.zeros((len(candidates), depth))
        for i, (query, chosen) in enumerate(zip(dataset.query_texts, candidates, strict=True)):
            for term in query_vector(query)[0]:
                idf = np.log((with_terms - df.get(term, 0) + 0.5) / (df.get(term, 0) + 0.5) + 1)
                out[i, : len(chosen)] += [idf * vectors[d].get(term, 0.0) for d in chosen]
        return out

    true_length = float(np.mean([len(tokenize(t, None)) for t in texts]))
    signals = {
        f"fused, backend BM25 (avg length {bm25.AVG_LENGTH})": qdrant_bm25(bm25.AVG_LENGTH),
        f"fused, backend BM25 (true avg length {true_length:.0f})": qdrant_bm25(true_length),
        "fused, evaluation BM25 (bm25s, stemmed)": np.stack(
            [row[chosen] for row, chosen in zip(evaluation, candidates, strict=True)]
        ),
    }
    result = {"queries": len(dataset.query_ids), "gate open": float(np.mean(gates))}
    plain = {
        q: {ids[d]: float(row[d]) for d in chosen}
        for q, row, chosen in zip(dataset.query_ids, maxsim, candidates, strict=True)
    }
    result["ColBERT-128 alone"] = evaluate(dataset.qrels, plain)["nDCG@10"]
    for label, lexical in signals.items():
        run = {}
        for q, row, chosen, scores, gate in zip(
            dataset.query_ids, maxsim, candidates, lexical, gates, strict=True
        ):
            fused = fuse_bm25(row[chosen], scores[: len(chosen)], gate)
            run[q] = {ids[d]: float(f) for d, f in zip(chosen, fused, strict=True)}
        result[label] = evaluate(dataset.qrels, run)["nDCG@10"]
    print(name, json.dumps(result), flush=True)
    return result


def quality_table(rows: dict[str, dict[str, float]]) -> str:
    columns = [c for c in next(iter(rows.values())) if c != "queries"]
    lines = ["| dataset | queries | " + " | ".join(columns) + " |", "|---|" + "---:|" * (len(columns) + 1)]
    for name, row in rows.items():
        values = " | ".join(f"{row[c]:.4f}" if c != "gate open" else f"{row[c]:.2f}" for c in columns)
        lines.append(f"| {name} | {row['queries']:.0f} | {values} |")
    return "\n".join(lines)


def bm25_table(rows: dict[str, dict[str, float]]) -> str:
    lines = [
        "| dataset | documents | distinct terms / doc | sparse vector / doc | + server postings "
        "| script in payload | local-mode file growth / doc (measured) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['documents']} | {row['sparse_entries_per_doc']:.0f} "
            f"| {row['sparse_vector_bytes_per_doc']:.0f} B | {row['server_postings_bytes_per_doc']:.0f} B "
            f"| {row['script_payload_bytes_per_doc']:.0f} B | {row['local_mode_bytes_per_doc_added']:.0f} B |"
        )
    return "\n".join(lines)


def storage_table(results: dict) -> str:
    """Markdown: measured bytes per document at each size, scaled to 100M documents (1 TB = 1e12 bytes)."""
    scale = 1e8 / 1e12
    lines = [
        "| dims | token rows / doc | fp32 multivector / doc | + mean prefetch | payload / doc "
        "| 100M docs: vectors + mean prefetch | + int8 copy in RAM | + binary copy in RAM "
        "| local-mode file / doc (measured) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for dim, row in results["dims"].items():
        rows = row["mean_tokens"]
        multi = row["vector_bytes_per_doc_fp32"]
        mean_vec = int(dim) * 4
        total = multi + mean_vec
        lines.append(
            f"| {dim} | {rows:.0f} | {multi / 1e3:.1f} kB | {mean_vec} B "
            f"| {row['payload_bytes_per_doc']:.0f} B | {total * scale:.1f} TB "
            f"| +{rows * int(dim) * scale:.1f} TB | +{rows * int(dim) / 8 * scale:.2f} TB "
            f"| {row['local_mode_bytes_per_doc_mean'] / 1e3:.1f} kB |"
        )
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for dim, row in results["dims"].items():
        exhaustive = next(r["nDCG@10"] for r in row["runs"] if r["candidates"] == 0)
        for prefetch, style in (("mean", "-o"), ("muvera", "--s")):
            runs = [r for r in row["runs"] if r["prefetch"] == prefetch]
            ax.plot(
                [r["candidates"] for r in runs],
                [r["nDCG@10"] - exhaustive for r in runs],
                style,
                label=f"{dim} dims, {prefetch} prefetch",
            )
    ax.axhline(0, color="grey", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("prefetch candidates")
    ax.set_ylabel("nDCG@10 minus exhaustive MaxSim")
    ax.set_title("scifact: cost of the single-vector prefetch (Qdrant backend)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
