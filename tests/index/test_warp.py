"""The cluster scan (``index/warp.py``) against independent references: decoded vectors, exhaustive MaxSim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from index_helpers import clustered_docs, unit

from polycolbert.index import Index
from polycolbert.index import params as P
from polycolbert.index.search import distinct_rows
from polycolbert.index.warp import candidates


def topical_docs(n: int, dims: int = 32, topics: int = 64, seed: int = 11) -> list[np.ndarray]:
    """Documents whose tokens sit near a few of many topic directions (clustered like real token clouds;
    ``index_helpers.clustered_docs`` adds so much noise that its tokens barely cluster)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(topics, dims)))
    docs = []
    for _ in range(n):
        mine = rng.choice(topics, size=3, replace=False)
        picks = centres[mine[rng.integers(0, 3, size=int(rng.integers(4, 25)))]]
        docs.append(unit(picks + 0.08 * rng.normal(size=picks.shape)))
    return docs


@pytest.fixture
def built(tmp_path: Path) -> tuple[Index, list[str], list[np.ndarray]]:
    docs = topical_docs(900)
    ids = [f"d{i:04d}" for i in range(len(docs))]
    ix = Index.create(tmp_path / "ix", dimensions=32, nbits=2)
    ix.add(ids[:500], ids=ids[:500], vectors=docs[:500])
    ix.add(ids[500:], ids=ids[500:], vectors=docs[500:])  # two segments: the scan walks both
    assert ix.info()["centroids"] > 0
    return ix, ids, docs


def queries(docs: list[np.ndarray], n: int = 24, seed: int = 200) -> list[np.ndarray]:
    """Noisy copies of a few tokens of random documents: each query is about something in the corpus."""
    rng = np.random.default_rng(seed)
    picks = [docs[i][:6] + 0.2 * rng.normal(size=docs[i][:6].shape) for i in rng.choice(len(docs), n)]
    return [(q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32) for q in picks]


def test_scan_of_every_cluster_is_maxsim_over_the_unnormalised_tokens(built: tuple) -> None:
    """With every cluster probed, no similarity is imputed: the estimate must equal MaxSim over each
    token's centroid plus its residual codewords (the scan skips decoding's final normalisation),
    computed here with numpy from the stored codes and bytes, for every document."""
    ix, _, docs = built
    snap = ix._reader.current()
    assert snap.codec is not None
    qs = queries(docs, 6)
    distinct = [(snap.codec.to_search_frame(r), w) for r, w in map(distinct_rows, qs)]
    allowed = snap.live.copy()
    got = candidates(snap.codec, snap.token_lists, distinct, allowed, len(snap.codec.centroids))
    books = snap.codec.codebooks
    for (rows, weights), row in zip(distinct, got, strict=True):
        for e in range(len(allowed)):
            codes, packed = snap.tokens.gather(snap.positions(np.array([e])))
            words = np.concatenate([books[g, packed[:, g]] for g in range(packed.shape[1])], axis=1)
            tokens = snap.codec.search_centroids[codes] + words
            want = float(weights @ (rows @ tokens.T).max(axis=1))
            assert row[e] == pytest.approx(want, abs=1e-4)


def test_scan_of_a_few_clusters_imputes_like_the_numpy_reference(built: tuple) -> None:
    """With 3 of the clusters probed per row: per row, a document's best token among the row's 3
    best-scoring centroids, else the weakest of those 3 scores; ``-inf`` where no row found the
    document. Checked against numpy for a batch (one unit per query) and for each query alone (rows
    split over two units), with one document filtered out."""
    ix, _, docs = built
    snap = ix._reader.current()
    assert snap.codec is not None
    qs = queries(docs, 5, seed=7)
    distinct = [(snap.codec.to_search_frame(r), w) for r, w in map(distinct_rows, qs)]
    allowed = snap.live.copy()
    allowed[17] = False
    books, centroids = snap.codec.codebooks, snap.codec.search_centroids
    tokens = []
    for e in range(len(allowed)):
        codes, packed = snap.tokens.gather(snap.positions(np.array([e])))
        words = np.concatenate([books[g, packed[:, g]] for g in range(packed.shape[1])], axis=1)
        tokens.append((codes, centroids[codes] + words))
    batch = candidates(snap.codec, snap.token_lists, distinct, allowed, 3)
    for k, (rows, weights) in enumerate(distinct):
        alone = candidates(snap.codec, snap.token_lists, [(rows, weights)], allowed, 3)[0]
        scores = rows @ centroids.T
        probed = np.argsort(-scores, axis=1)[:, :3]
        imputed = np.take_along_axis(scores, probed, axis=1).min(axis=1)
        for e in range(len(allowed)):
            codes, vecs = tokens[e]
            sims = rows @ vecs.T
            inside = np.array([[c in set(p) for c in codes] for p in probed])
            best = np.where(inside, sims, -np.inf).max(axis=1, initial=-np.inf)
            want = (
                -np.inf
                if not allowed[e] or not np.isfinite(best).any()
                else float(weights @ np.where(np.isfinite(best), best, imputed))
            )
            for got in (batch[k, e], alone[e]):
                assert got == pytest.approx(want, abs=1e-4) if np.isfinite(want) else got == -np.inf


def test_tokens_come_back_from_the_clustered_files_as_stored(built: tuple) -> None:
    """Every document's tokens read through the layout's map decode to what its vectors were encoded
    from: each given token has a decoded one within the codec's error, and the counts agree."""
    ix, ids, docs = built
    for i in (0, 321, 899):
        decoded = ix.get_vectors(ids[i])
        similar = decoded @ docs[i].T
        assert decoded.shape == docs[i].shape
        assert similar.max(axis=1).min() > 0.9 and similar.max(axis=0).min() > 0.9


def test_cluster_path_agrees_with_exhaustive(built: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    ix, _, docs = built
    qs = queries(docs)
    exhaustive = ix.search(query_vectors=qs, k=10, exhaustive=True)
    monkeypatch.setattr(P, "BRUTE_FORCE_TOKENS", 0)
    assert P.derive(10, 10**6, 64).path == P.CLUSTERS
    scanned = ix.search(query_vectors=qs, k=10)
    overlap = np.mean(
        [len({h.id for h in a} & {h.id for h in b}) / 10 for a, b in zip(scanned, exhaustive, strict=True)]
    )
    assert overlap >= 0.9, overlap
    assert sum(a[0].id == b[0].id for a, b in zip(scanned, exhaustive, strict=True)) >= len(qs) - 1
    for a, b in zip(scanned, exhaustive, strict=True):  # scores come from the exact stage
        same = {h.id: h.score for h in b}
        assert all(h.score == pytest.approx(same[h.id], abs=1e-5) for h in a if h.id in same)
    # One query at a time and a batch scan the same clusters: same results.
    one = [ix.search(query_vectors=[q], k=10)[0] for q in qs]
    assert [[h.id for h in r] for r in one] == [[h.id for h in r] for r in scanned]


def test_cluster_path_respects_deletes_updates_and_filters(
    built: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    ix, ids, docs = built
    monkeypatch.setattr(P, "BRUTE_FORCE_TOKENS", 0)
    q = docs[123][:5]
    assert ix.search(query_vectors=[q], k=1)[0][0].id == ids[123]
    ix.delete([ids[123]])
    assert ids[123] not in {h.id for h in ix.search(query_vectors=[q], k=50)[0]}
    ix.update([ids[7]], [""], vectors=[docs[123]])  # d0007 now holds d0123's tokens
    assert ix.search(query_vectors=[q], k=1)[0][0].id == ids[7]
    kept = set(ids[600:620])
    ix.update(ids[600:620], [""] * 20, metadata=[{"tag": "x"}] * 20, vectors=docs[600:620])
    hits = ix.search(query_vectors=[q], k=10, filter={"tag": "x"})[0]
    assert len(hits) == 10 and {h.id for h in hits} <= kept


def test_equal_scores_fall_back_to_the_document_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = clustered_docs(700, dims=32, seed=5)
    ids = [f"d{i:04d}" for i in range(len(docs))]
    twins = ["z-twin", "a-twin", "m-twin"]
    with Index.create(tmp_path / "ix", dimensions=32) as ix:
        ix.add(ids + twins, ids=ids + twins, vectors=docs + [docs[42]] * 3)
        monkeypatch.setattr(P, "BRUTE_FORCE_TOKENS", 0)
        hits = ix.search(query_vectors=[docs[42]], k=4)[0]
    assert [h.id for h in hits[:3]] == ["a-twin", "d0042", "m-twin"]


def test_info_names_the_search_path(built: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    ix, _, _ = built
    assert ix.info()["search"]["path"] == P.EXHAUSTIVE  # small: every token is scored
    monkeypatch.setattr(P, "BRUTE_FORCE_TOKENS", 0)
    info = ix.info()["search"]
    assert info["path"] == P.CLUSTERS and info["nprobe"] == min(P.NPROBE, ix.info()["centroids"])


def test_compiled_maxsim_matches_numpy_over_decoded_vectors() -> None:
    """The re-rank kernel (decode in registers, score, max) against numpy on ``decode_for_search``'s
    output, for (query, document) pairs (one document asked for by both queries, one by none: it is not
    scored) and for all-against-all; empty documents score 0."""
    from polycolbert.index.codec import Codec
    from polycolbert.index.warp import maxsim

    rng = np.random.default_rng(3)
    codec = Codec.train(unit(rng.normal(size=(4000, 32))).astype(np.float32), 2, n_centroids=32)
    codes, packed, _ = codec.encode(unit(rng.normal(size=(240, 32))).astype(np.float32))
    lengths = np.array([10, 0, 50, 40, 140])
    q = codec.to_search_frame(unit(rng.normal(size=(7, 32))).astype(np.float32))
    weights = np.arange(1, 8, dtype=np.float32)
    decoded = codec.decode_for_search(codes, packed)
    docs = np.split(decoded, np.cumsum(lengths)[:-1])
    spans = [(0, 3), (3, 7)]

    def want(rows: np.ndarray, w: np.ndarray, doc: np.ndarray) -> float:
        return 0.0 if len(doc) == 0 else float(((rows @ doc.T).max(axis=1) * w).sum())

    full = maxsim(codec, q, [3, 4], weights, codes, packed, lengths)
    assert full.shape == (2, 5)
    for d, doc in enumerate(docs):
        for k, (a, b) in enumerate(spans):
            assert full[k, d] == pytest.approx(want(q[a:b], weights[a:b], doc), abs=1e-4)
    query = np.array([1, 0, 1, 0, 1])
    doc_of = np.array([4, 2, 1, 4, 2])  # document 4 twice (both queries), document 3 never
    own = maxsim(codec, q, [3, 4], weights, codes, packed, lengths, pairs=(query, doc_of))
    assert own.shape == (5,)
    for x, (k, d) in enumerate(zip(query, doc_of, strict=True)):
        a, b = spans[k]
        assert own[x] == pytest.approx(want(q[a:b], weights[a:b], docs[d]), abs=1e-4)
    assert own[0] != own[3]  # the shared document, scored against each query's own rows


def test_distinct_rows_counts_repeats_and_drops_zero_rows() -> None:
    rng = np.random.default_rng(4)
    q = rng.normal(size=(10, 8)).astype(np.float32)
    q[6:8] = q[1]
    q[8:] = 0.0
    rows, weights = distinct_rows(q)
    assert len(rows) == 6 and weights.sum() == 8
    for row, w in zip(rows, weights, strict=True):
        assert w == sum(np.array_equal(row, r) for r in q[:8])


def test_int32_entries_search_as_uint16_ones(
    built: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment of more than 65,536 documents numbers its entries in int32: the same index written that
    way stores int32 entries and answers the same, by the scan and by brute force."""
    from polycolbert.index import layout

    ix, ids, docs = built
    monkeypatch.setattr(layout, "UINT16_ENTRIES", 0)
    wide = Index.create(tmp_path / "wide", dimensions=32, nbits=2)
    wide.add(ids[:500], ids=ids[:500], vectors=docs[:500])
    wide.add(ids[500:], ids=ids[500:], vectors=docs[500:])
    assert {s.entries.dtype for s in wide._reader.current().tokens.segments} == {np.dtype(np.int32)}
    assert {s.entries.dtype for s in ix._reader.current().tokens.segments} == {np.dtype(np.uint16)}
    qs = queries(docs)
    monkeypatch.setattr(P, "BRUTE_FORCE_TOKENS", 0)
    for a, b in zip(wide.search(query_vectors=qs, k=10), ix.search(query_vectors=qs, k=10), strict=True):
        assert [h.id for h in a] == [h.id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)
