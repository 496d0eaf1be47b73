"""BM25 fusion through the product paths: what it costs per query and what it does to nDCG@10.

For each dataset spec (a BEIR folder, ``DIR@en`` or ``DIR@mixed``, as ``polycolbert eval`` reads them) the
packaged default model's ``colbert-128`` vectors come from the evaluation cache (encoded once if missing).
Then, on one embedded index holding the texts and those vectors:

* every query is answered with ``fusion="none"`` and ``fusion="bm25"`` (k=10), one query per call, timed
  (p50/p99 ms); nDCG@10 of both runs (ir-measures); the lexicon's bytes per document (``index info``);
* the library rerank (``/v1/rerank``'s path, ``polycolbert.rerank``) ranks each query's 100 best
  documents by MaxSim from vectors, with and without ``bm25_over`` (BM25 over those 100 texts), timed.

The index's BM25 is FTS5's over ``polycolbert.lexical`` terms without stemming (the language of an indexed
text is unknown); ``polycolbert eval``'s fused systems stem each text in its dataset's language, so the two
nDCG columns here and the eval's ``colbert-128+bm25`` column differ by what stemming adds.

    .venv/bin/python benchmarks/fusion.py --datasets ../shared/data/xquad-de ../shared/data/xquad-zh \\
        ../shared/data/xquad-de@en ../shared/data/xquad-de@mixed ../shared/data/scifact \\
        --output docs/assets/fusion/fusion-latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console

from polycolbert import ColBERT
from polycolbert.eval.cache import default_cache_dir
from polycolbert.eval.crosslingual import load_spec
from polycolbert.eval.metrics import evaluate
from polycolbert.eval.systems import ColBERTEncoder, _progress, encode_cached
from polycolbert.index import Index
from polycolbert.rerank import bm25_over, rerank
from polycolbert.scoring import maxsim_packed, top_k

DIMS = 128
RERANK_CANDIDATES = 100


def vectors(spec: str) -> tuple[object, list[np.ndarray], list[np.ndarray]]:
    dataset = load_spec(spec)
    encoder = ColBERTEncoder(ColBERT.load(), (DIMS,))
    name = f"colbert-{DIMS}"
    with _progress(Console(stderr=True)) as progress:
        docs = encode_cached(encoder, dataset.corpus_texts, "document", [name], default_cache_dir(), progress)
        queries = encode_cached(encoder, dataset.query_texts, "query", [name], default_cache_dir(), progress)
    as32 = [np.asarray(v, np.float32) for v in docs[name]]
    return dataset, as32, [np.asarray(v, np.float32) for v in queries[name]]


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = np.array(times) * 1000
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def run_dataset(spec: str, work: Path) -> dict[str, object]:
    dataset, doc_vectors, query_vectors = vectors(spec)
    ds = dataset  # typed as object above; the Dataset fields are read below
    corpus_ids: list[str] = ds.corpus_ids  # type: ignore[attr-defined]
    corpus_texts: list[str] = ds.corpus_texts  # type: ignore[attr-defined]
    query_ids: list[str] = ds.query_ids  # type: ignore[attr-defined]
    query_texts: list[str] = ds.query_texts  # type: ignore[attr-defined]
    qrels = ds.qrels  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    index = Index.create(work / spec.replace("/", "_").replace("@", "_at_"), dimensions=DIMS)
    index.add(corpus_texts, ids=corpus_ids, vectors=doc_vectors)
    build_s = time.perf_counter() - t0
    info = index.info()
    out: dict[str, object] = {
        "dataset": spec,
        "documents": len(corpus_ids),
        "queries": len(query_ids),
        "tokens": info["tokens"],
        "build_s": build_s,
        "lexicon_bytes_per_document": info["fusion"]["lexicon_bytes_per_document"],
        "corpus_script": info["fusion"]["corpus_script"],
    }
    for fusion in ("none", "bm25"):
        index.search([query_texts[0]], query_vectors=[query_vectors[0]], k=10, fusion=fusion)  # warm
        run: dict[str, dict[str, float]] = {}
        times = []
        for qid, text, qv in zip(query_ids, query_texts, query_vectors, strict=True):
            t = time.perf_counter()
            hits = index.search([text], query_vectors=[qv], k=10, fusion=fusion)[0]
            times.append(time.perf_counter() - t)
            run[qid] = {h.id: h.score for h in hits}
        p50, p99 = percentiles(times)
        out[f"index_{fusion}"] = {"ndcg@10": evaluate(qrels, run)["nDCG@10"], "p50_ms": p50, "p99_ms": p99}
    # The library rerank over each query's 100 best documents by MaxSim, with and without BM25.
    sample = list(range(0, len(query_ids), max(1, len(query_ids) // 200)))[:200]
    plain_t, fused_t = [], []
    for i in sample:
        scores = maxsim_packed(query_vectors[i], doc_vectors)
        chosen = top_k(scores, min(RERANK_CANDIDATES, len(doc_vectors)))
        candidates = [doc_vectors[j] for j in chosen]
        texts = [corpus_texts[j] for j in chosen]
        t = time.perf_counter()
        rerank(query_vectors[i], candidates, top_n=10)
        plain_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        rerank(query_vectors[i], candidates, top_n=10, bm25=bm25_over(query_texts[i], texts))
        fused_t.append(time.perf_counter() - t)
    out["rerank_100_none"] = dict(zip(("p50_ms", "p99_ms"), percentiles(plain_t), strict=True))
    out["rerank_100_bm25"] = dict(zip(("p50_ms", "p99_ms"), percentiles(fused_t), strict=True))
    index.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", required=True)
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for spec in args.datasets:
            row = run_dataset(spec, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    header = (
        "| dataset | docs | tokens | nDCG@10 none | nDCG@10 bm25 | change | search p50 none / bm25 ms "
        "| p99 none / bm25 ms | rerank-100 p50 none / bm25 ms | lexicon B/doc |"
    )
    print(header)
    print("|" + " --- |" * 10)
    for r in rows:
        none, bm25 = r["index_none"], r["index_bm25"]  # type: ignore[index]
        rn, rb = r["rerank_100_none"], r["rerank_100_bm25"]  # type: ignore[index]
        print(
            f"| {r['dataset']} | {r['documents']} | {r['tokens']} | {none['ndcg@10']:.4f} | "
            f"{bm25['ndcg@10']:.4f} | {bm25['ndcg@10'] - none['ndcg@10']:+.4f} | "
            f"{none['p50_ms']:.1f} / {bm25['p50_ms']:.1f} | {none['p99_ms']:.1f} / {bm25['p99_ms']:.1f} | "
            f"{rn['p50_ms']:.2f} / {rb['p50_ms']:.2f} | {r['lexicon_bytes_per_document']:.0f} |"
        )
    meta = {"load_average": os.getloadavg(), "machine": platform.processor() or platform.machine()}
    print(json.dumps(meta))
    if args.output is not None:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"rows": rows, **meta}, indent=1))


if __name__ == "__main__":
    main()
