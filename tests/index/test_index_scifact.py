"""Recall on scifact with the default model: the index (nbits=2) against exhaustive fp32 MaxSim.

Slow: encoding 5,183 documents takes most of an hour on 2 cores the first time (then the vectors come
from the evaluation cache, ``$POLYCOLBERT_CACHE/eval``), and building the index about two minutes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polycolbert.eval.metrics import evaluate
from polycolbert.index import Index
from polycolbert.scoring import maxsim_buckets


@pytest.fixture(scope="module")
def scifact_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not Path("/work/shared/data/scifact/corpus.jsonl.gz").exists():
        pytest.fail("scifact data missing at /work/shared/data/scifact")
    from scifact_vectors import load_scifact_vectors

    corpus = load_scifact_vectors(dims=(128,))
    dataset: Any = corpus.dataset
    docs, queries, ids = corpus.documents[128], corpus.queries[128], dataset.corpus_ids
    scores = maxsim_buckets(queries, docs)
    reference = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    with Index.create(tmp_path_factory.mktemp("scifact") / "ix", dimensions=128, nbits=2) as index:
        index.add([""] * len(docs), ids=ids, vectors=docs)
        assert index.check() == []
        hits = index.search(query_vectors=queries, k=10)
    return {
        "qrels": dataset.qrels,
        "reference": {
            q: {ids[i]: float(scores[n, i]) for i in top}
            for n, (q, top) in enumerate(zip(dataset.query_ids, reference, strict=True))
        },
        "index": {q: {h.id: h.score for h in r} for q, r in zip(dataset.query_ids, hits, strict=True)},
        "overlap": float(
            np.mean(
                [
                    len({h.id for h in r} & {ids[i] for i in top}) / 10
                    for r, top in zip(hits, reference, strict=True)
                ]
            )
        ),
        "complete": all(len(r) == 10 for r in hits),
    }


@pytest.mark.slow
def test_scifact_ndcg_within_0005_of_exhaustive(scifact_runs: dict[str, Any]) -> None:
    ndcg = evaluate(scifact_runs["qrels"], scifact_runs["index"])["nDCG@10"]
    reference = evaluate(scifact_runs["qrels"], scifact_runs["reference"])["nDCG@10"]
    print(f"nDCG@10 index {ndcg:.4f} exhaustive {reference:.4f} overlap@10 {scifact_runs['overlap']:.4f}")
    assert scifact_runs["complete"]
    assert abs(ndcg - reference) <= 0.005


@pytest.mark.slow
@pytest.mark.xfail(
    strict=True,
    reason="2-bit product-quantised residuals keep ~0.93 of the fp32 top-10 even scoring every document "
    "(0.928; staged 0.915; docs/benchmarks.md); the issue's 0.95 needs ~4 bits (0.98)",
)
def test_scifact_top10_overlap_at_least_095(scifact_runs: dict[str, Any]) -> None:
    assert scifact_runs["overlap"] >= 0.95
