"""End-to-end behaviour of ``Index``: encoding through a model, filters, hybrid, readers, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from index_helpers import HashEncoder, clustered_docs, reference_top

from polycolbert.index import Index
from polycolbert.index import params as P

TEXTS = [
    "the cat sat on the mat",
    "dogs chase cats in the park",
    "quantum chromodynamics describes quarks",
    "a recipe for apple pie with cinnamon",
    "zebrafish regenerate heart tissue",
    "the stock market fell on monday",
]


@pytest.fixture
def index(tmp_path: Path) -> Index:
    ix = Index.create(tmp_path / "ix", model=HashEncoder(), dimensions=32)
    ix.add(
        TEXTS,
        ids=[f"t{i}" for i in range(len(TEXTS))],
        metadata=[{"n": i, "even": i % 2 == 0} for i in range(6)],
    )
    return ix


def test_text_search_finds_the_matching_document(index: Index) -> None:
    hits = index.search(["zebrafish heart"], k=3)[0]
    assert hits[0].id == "t4" and len(hits) == 3
    assert hits[0].text == TEXTS[4] and hits[0].metadata == {"n": 4, "even": True}


def test_filter_is_applied_before_scoring(index: Index) -> None:
    hits = index.search(["zebrafish heart"], k=10, filter={"even": False})[0]
    assert sorted(h.id for h in hits) == ["t1", "t3", "t5"]  # all odd docs, even though t4 scores best
    assert index.search(["cat"], k=2, filter={"n": {"$gte": 4}})[0][0].id in {"t4", "t5"}
    assert index.search(["cat"], k=5, filter={"n": {"$gt": 100}})[0] == []


def test_hybrid_fuses_keyword_and_dense_ranks(index: Index) -> None:
    dense = index.search(["market cinnamon"], k=6)[0]
    hybrid = index.search(["market cinnamon"], k=6, hybrid=True)[0]
    assert {h.id for h in hybrid} == {h.id for h in dense}
    top2 = {h.id for h in hybrid[:2]}
    assert top2 == {"t3", "t5"}  # the only two documents with a keyword match
    assert all(0 < h.score <= 2 / 61 for h in hybrid)  # RRF scores: sum of 1 / (60 + rank)


def test_delete_and_update_are_visible_to_another_reader(index: Index) -> None:
    reader = Index.open(index.path, model=HashEncoder())
    assert reader.search(["zebrafish"], k=1)[0][0].id == "t4"
    index.delete(["t4"])
    assert "t4" not in {h.id for h in reader.search(["zebrafish"], k=6)[0]}
    index.update(["t0"], ["zebrafish everywhere"])
    assert reader.search(["zebrafish"], k=1)[0][0].id == "t0"
    assert len(reader) == 5 and reader.check() == []


@pytest.mark.parametrize("nbits", [1, 2, 4])
def test_staged_search_matches_exhaustive_on_clustered_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nbits: int
) -> None:
    docs = clustered_docs(800, dims=32, seed=nbits)
    ix = Index.create(tmp_path / "ix", dimensions=32, nbits=nbits)
    ids = [f"d{i}" for i in range(len(docs))]
    ix.add(ids, ids=ids, vectors=docs)
    assert ix.info()["centroids"] > 0  # compressed (past MIN_CODEC_TOKENS), so the staged path applies
    queries = [d[:4] for d in clustered_docs(20, dims=32, seed=100)]
    exhaustive = ix.search(query_vectors=queries, k=10, exhaustive=True)
    monkeypatch.setattr(P, "BRUTE_FORCE_TOKENS", 0)
    # With a budget that covers the corpus, every stage must hand the exact stage the same documents:
    # the staged ranking then IS the exhaustive one over the compressed vectors (scores included).
    derive = P.derive
    monkeypatch.setattr(P, "derive", lambda k, *a: P.SearchParams(P.CLUSTERS, 4, len(docs)))
    full = ix.search(query_vectors=queries, k=10)
    for a, b in zip(full, exhaustive, strict=True):
        assert [h.id for h in a] == [h.id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)
    # With the real budget (pruning by centroid interaction), the documents found still carry nearly
    # the best possible true (fp32) MaxSim: overlap alone is noisy on this near-tied data.
    monkeypatch.setattr(P, "derive", derive)
    staged = ix.search(query_vectors=queries, k=10)
    assert all(len(r) == 10 for r in staged)
    by_id = dict(zip(ids, docs, strict=True))

    def true(q: np.ndarray, i: str) -> float:
        return float((q @ by_id[i].T).max(axis=1).sum())

    best = sum(true(q, i) for q in queries for i in reference_top(q, by_id, 10))
    for run, bar in (
        (exhaustive, {1: 0.9, 2: 0.95, 4: 0.98}[nbits]),
        (staged, {1: 0.85, 2: 0.9, 4: 0.9}[nbits]),
    ):
        got = sum(true(q, h.id) for q, r in zip(queries, run, strict=True) for h in r)
        assert got / best >= bar


def test_bad_input_gets_clear_errors(index: Index, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no index"):
        Index.open(tmp_path / "missing")
    with pytest.raises(ValueError, match="already exists"):
        Index.create(index.path, dimensions=32)
    with pytest.raises(ValueError, match="needs \\[tokens, 32\\]"):
        index.add(["x"], ids=["x"], vectors=[np.ones((3, 16), np.float32)])
    with pytest.raises(ValueError, match="needs \\[tokens, 32\\]"):
        index.search(query_vectors=[np.ones((3, 64), np.float32)])
    with pytest.raises(ValueError, match="already in the index"):
        index.add(["again"], ids=["t1"])
    with pytest.raises(ValueError, match="duplicate ids"):
        index.add(["a", "b"], ids=["n1", "n1"])
    with pytest.raises(ValueError, match="unknown ids"):
        index.update(["nope"], ["text"])
    for bad_k in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            index.search(["cat"], k=bad_k)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dimensions must be one of"):
        Index.create(tmp_path / "other", model=HashEncoder(), dimensions=24)
    assert len(index) == 6 and index.check() == []  # nothing half-applied


def test_info_reports_sizes(index: Index) -> None:
    info = index.info()
    assert info["documents"] == 6 and info["tokens"] == sum(len(t.split()) for t in TEXTS)
    # below MIN_CODEC_TOKENS the vectors are kept exact: 32 float16 per token, plus one .npy header
    assert info["bytes_on_disk"]["vectors"] == info["tokens"] * 32 * 2 + 128 and info["centroids"] == 0
    assert info["bytes_on_disk"]["total"] > 0 and info["model"] == "hash-test-encoder"


def test_compressed_sizes_once_the_codec_is_trained(tmp_path: Path) -> None:
    docs = clustered_docs(800, dims=32, seed=3)
    tokens = sum(len(d) for d in docs)
    assert tokens >= P.MIN_CODEC_TOKENS
    with Index.create(tmp_path / "ix", dimensions=32, nbits=2) as index:
        index.add([""] * len(docs), ids=[str(i) for i in range(len(docs))], vectors=docs)
        info = index.info()
    # 32 dims x 2 bits = 8 bytes of residual + a 2-byte code per token, plus two 128-byte .npy headers
    assert info["bytes_on_disk"]["vectors"] == tokens * (8 + 2) + 2 * 128 and info["centroids"] > 0


def test_zero_padding_rows_change_no_result(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Queries of a ``query_padding="zero"`` model end in zero rows: they score 0 against every token,
    so staged and exhaustive search must return exactly what the real rows alone return."""
    docs = clustered_docs(800, dims=32, seed=7)
    ix = Index.create(tmp_path / "ix", dimensions=32, nbits=2)
    ids = [f"d{i}" for i in range(len(docs))]
    ix.add(ids, ids=ids, vectors=docs)
    monkeypatch.setattr(P, "BRUTE_FORCE_TOKENS", 0)  # the staged path, which probes centroids per row
    real = [d[:5] for d in clustered_docs(20, dims=32, seed=101)]
    padded = [np.vstack([q, np.zeros((32 - len(q), 32), np.float32)]) for q in real]
    for exhaustive in (False, True):
        a = ix.search(query_vectors=real, k=10, exhaustive=exhaustive)
        b = ix.search(query_vectors=padded, k=10, exhaustive=exhaustive)
        for x, y in zip(a, b, strict=True):
            assert [h.id for h in x] == [h.id for h in y]
            assert [h.score for h in x] == pytest.approx([h.score for h in y], abs=1e-5)
