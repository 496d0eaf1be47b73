"""What only the Qdrant backend has, in qdrant-client's local mode (no server): the prefetch (mean and
MUVERA) checked against exhaustive MaxSim, retried idempotent upserts, collection settings, reaching a
server. What every backend promises is in ``test_contract.py``.

A real server is exercised only when ``QDRANT_URL`` is set (``QDRANT_API_KEY`` optional).
"""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

from polycolbert.backends import Backend, open_backend
from polycolbert.backends.muvera import Muvera
from polycolbert.backends.qdrant import QdrantBackend, point_id, to_qdrant_filter
from polycolbert.scoring import maxsim_packed

DIM = 16


def unit_rows(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def store(tmp_path: Path):
    backend = QdrantBackend.create(f"qdrant+local://{tmp_path}/docs", model="toy", dimensions=DIM)
    yield backend
    backend.close()


def make_docs(n: int, seed: int = 0) -> tuple[list[str], list[str], list[dict], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    ids = [f"doc-{i}" for i in range(n)]
    texts = [f"text {i}" for i in range(n)]
    metadata = [
        {"lang": ["de", "en", "fr"][i % 3], "year": 2000 + i, "score": i / 2, "nested": {"tag": f"t{i % 2}"}}
        for i in range(n)
    ]
    vectors = [unit_rows(rng, int(rng.integers(3, 12))) for _ in range(n)]
    return ids, texts, metadata, vectors


def test_protocol_open_and_reopen(tmp_path: Path) -> None:
    location = f"qdrant+local://{tmp_path}/docs"
    first = QdrantBackend.create(location, model="toy", dimensions=DIM, prefetch="muvera")
    assert isinstance(first, Backend)
    ids, texts, metadata, vectors = make_docs(5)
    first.add(texts=texts, ids=ids, metadata=metadata, vectors=vectors)
    first.close()
    again = open_backend(location)
    assert isinstance(again, QdrantBackend)
    assert (again.model_name, again.dimensions, again.prefetch) == ("toy", DIM, "muvera")
    info = again.info()
    assert info.documents == 5
    assert info.tokens == sum(len(v) for v in vectors)
    assert info.bytes_on_disk is not None and info.bytes_on_disk["total"] > 0
    assert info.settings["prefetch"] == "muvera"
    again.close()


def test_open_backend_create_flag_len_and_exhaustive(tmp_path: Path) -> None:
    location = f"qdrant+local://{tmp_path}/made"
    store = open_backend(location, create=True, model="toy", dimensions=DIM, nbits=2)
    assert isinstance(store, QdrantBackend) and len(store) == 0
    ids, texts, _, vectors = make_docs(4)
    store.add(texts=texts, ids=ids, vectors=vectors)
    assert len(store) == 4
    top = store.search(query_vectors=[vectors[2]], k=1, exhaustive=True)[0][0]
    assert top.id == "doc-2"
    store.close()
    again = open_backend(location, create=True, model="toy", dimensions=DIM)  # exists: opened, not re-made
    assert len(again) == 4
    again.close()


def test_add_search_matches_maxsim(store: QdrantBackend) -> None:
    ids, texts, metadata, vectors = make_docs(60)
    assert store.add(texts=texts, ids=ids, metadata=metadata, vectors=vectors) == ids
    rng = np.random.default_rng(7)
    queries = [unit_rows(rng, 8) for _ in range(5)]
    for exhaustive in (True, False):
        hits = store.search(query_vectors=queries, k=10, prefetch_limit=0 if exhaustive else None)
        for query, found in zip(queries, hits, strict=True):
            scores = maxsim_packed(query, vectors)
            order = np.argsort(-scores)[:10]
            # 60 documents < default prefetch of 100: the prefetch holds every document, so both are exact.
            assert [h.id for h in found] == [ids[i] for i in order]
            np.testing.assert_allclose([h.score for h in found], scores[order], rtol=1e-4, atol=1e-4)
    hit = store.search(query_vectors=[vectors[3]], k=1)[0][0]
    assert (hit.id, hit.text, hit.metadata) == ("doc-3", "text 3", metadata[3])


def test_zero_padded_queries_score_like_their_real_rows(store: QdrantBackend) -> None:
    """Queries of a query_padding="zero" model end in zero rows; the collection (cosine) must score
    them exactly like the real rows alone, with every prefetch mode."""
    ids, texts, metadata, vectors = make_docs(60)
    store.add(texts=texts, ids=ids, metadata=metadata, vectors=vectors)
    rng = np.random.default_rng(8)
    real = [unit_rows(rng, 6) for _ in range(4)]
    padded = [np.vstack([q, np.zeros((26, DIM), np.float32)]) for q in real]
    for limit in (0, None):
        a = store.search(query_vectors=real, k=10, prefetch_limit=limit)
        b = store.search(query_vectors=padded, k=10, prefetch_limit=limit)
        for x, y, query in zip(a, b, real, strict=True):
            assert [h.id for h in x] == [h.id for h in y]
            np.testing.assert_allclose(
                [h.score for h in y], np.sort(maxsim_packed(query, vectors))[::-1][:10], atol=1e-4
            )


@pytest.mark.parametrize(
    ("prefetch", "k", "asked", "expected"),
    [
        ("mean", 10, None, 100),
        ("mean", 50, None, 500),
        ("muvera", 10, None, 300),  # MUVERA needs ~3x the candidates for the same top-10 agreement
        ("muvera", 20, None, 600),
        ("muvera", 10, 40, 40),  # an explicit limit always wins
        ("mean", 10, 0, None),  # 0: no prefetch, exact MaxSim over every point
    ],
)
def test_prefetch_depth_sent_to_qdrant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefetch: str, k: int, asked, expected
) -> None:
    store = QdrantBackend.create(
        f"qdrant+local://{tmp_path}/d", model="toy", dimensions=DIM, prefetch=prefetch
    )
    ids, texts, _, vectors = make_docs(3)
    store.add(texts=texts, ids=ids, vectors=vectors)
    sent = []
    monkeypatch.setattr(
        store.client, "query_batch_points", lambda collection, requests: sent.extend(requests) or []
    )
    store.search(query_vectors=[vectors[0]], k=k, prefetch_limit=asked)
    store.close()
    assert (sent[0].prefetch.limit if sent[0].prefetch is not None else None) == expected


def test_reupsert_after_interruption_never_duplicates(store: QdrantBackend) -> None:
    ids, texts, metadata, vectors = make_docs(10)
    store.batch_size = 3
    points = store._points(ids, texts, metadata, vectors)
    store._upsert(points[:4])  # the "crash" after some batches
    store._upsert(points)  # the re-run writes everything again
    assert store.info().documents == 10
    assert point_id("doc-1") == str(uuid.uuid5(uuid.UUID("5b0c3f1e-8f7a-4d57-9a43-6f6c79636f6c"), "doc-1"))


def test_upsert_retries_transient_failures(store: QdrantBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    from qdrant_client.http.exceptions import ResponseHandlingException

    ids, texts, _, vectors = make_docs(3)
    real = store.client.upsert
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ResponseHandlingException(ConnectionError("reset"))
        return real(*args, **kwargs)

    monkeypatch.setattr(store.client, "upsert", flaky)
    monkeypatch.setattr(time, "sleep", lambda s: None)
    store.add(texts=texts, ids=ids, vectors=vectors)
    assert len(calls) == 2 and store.info().documents == 3
    store.retries = 0
    calls.clear()
    with pytest.raises(ValueError, match="cannot reach Qdrant"):
        store.add(texts=["x"], ids=["new"], vectors=vectors[:1])


FILTERS = [
    ({"lang": "de"}, lambda m: m["lang"] == "de"),
    ({"year": {"$gte": 2005, "$lt": 2010}}, lambda m: 2005 <= m["year"] < 2010),
    ({"score": 2.5}, lambda m: m["score"] == 2.5),
    ({"score": {"$gt": 3.2}}, lambda m: m["score"] > 3.2),
    ({"lang": {"$in": ["de", "fr"]}}, lambda m: m["lang"] in ("de", "fr")),
    ({"lang": {"$nin": ["de"]}}, lambda m: m["lang"] != "de"),
    ({"lang": {"$ne": "en"}}, lambda m: m["lang"] != "en"),
    ({"lang": {"$in": []}}, lambda m: False),
    ({"nested.tag": "t1"}, lambda m: m["nested"]["tag"] == "t1"),
    ({"$or": [{"lang": "de"}, {"year": {"$lte": 2003}}]}, lambda m: m["lang"] == "de" or m["year"] <= 2003),
    ({"$and": [{"lang": "en"}, {"$not": {"year": 2001}}]}, lambda m: m["lang"] == "en" and m["year"] != 2001),
    ({"missing": None}, lambda m: True),
    ({"lang": None}, lambda m: False),
    (
        {"year": {"$in": [2001, 2.5e3]}, "lang": "en"},
        lambda m: m["year"] in (2001, 2500) and m["lang"] == "en",
    ),
]


@pytest.fixture(scope="module")
def filter_store(tmp_path_factory: pytest.TempPathFactory):
    """One collection for every filter case (creating one per case costs more than the searches)."""
    backend = QdrantBackend.create(
        f"qdrant+local://{tmp_path_factory.mktemp('filters')}/docs", model="toy", dimensions=DIM
    )
    ids, texts, metadata, vectors = make_docs(20)
    backend.add(texts=texts, ids=ids, metadata=metadata, vectors=vectors)
    yield backend, ids, metadata, vectors
    backend.close()


@pytest.mark.parametrize(("query", "expected"), FILTERS, ids=[str(f) for f, _ in FILTERS])
def test_filters_match_python_semantics(filter_store, query: dict, expected) -> None:
    store, ids, metadata, vectors = filter_store
    want = {i for i, m in zip(ids, metadata, strict=True) if expected(m)}
    for prefetch_limit in (0, None):
        hits = store.search(query_vectors=[vectors[0]], k=20, filter=query, prefetch_limit=prefetch_limit)
        assert {h.id for h in hits[0]} == want
    # A prefetch of 3 candidates: the filter must apply inside the prefetch, or fewer than 3 could survive.
    few = store.search(query_vectors=[vectors[0]], k=3, filter=query, prefetch_limit=3)[0]
    assert {h.id for h in few} <= want and len(few) == min(3, len(want))


def test_string_ranges_become_datetime_ranges() -> None:
    with pytest.raises(ValueError, match="ISO 8601"):
        to_qdrant_filter({"a": {"$gt": "abc"}})
    assert to_qdrant_filter({"a": {"$gt": "2024-01-01"}}).must[0].range.gt.year == 2024


def test_creation_errors(tmp_path: Path) -> None:
    location = f"qdrant+local://{tmp_path}/docs"
    for bad in (
        {"distance": "l2"},
        {"quantization": "pq"},
        {"prefetch": "max"},
        {"shard_number": 0},
        {"dimensions": -3},
    ):
        with pytest.raises(ValueError):
            QdrantBackend.create(location, model="toy", **{"dimensions": DIM, **bad})
    assert not (tmp_path / "collection").exists() or not any((tmp_path / "collection").iterdir())
    with pytest.raises(ValueError, match="no such collection"):
        QdrantBackend.open(location)
    QdrantBackend.create(location, model="toy", dimensions=DIM).close()
    with pytest.raises(ValueError, match="already exists"):
        QdrantBackend.create(location, model="toy", dimensions=DIM)
    with pytest.raises(ValueError, match="stores 16-dim"):
        QdrantBackend.create(location, model="toy", dimensions=32, exist_ok=True)
    with pytest.raises(ValueError, match="prefetch"):
        QdrantBackend.create(location, model="toy", dimensions=DIM, prefetch=None, exist_ok=True)
    with pytest.raises(ValueError, match="encoded by toy"):
        QdrantBackend.open(location, model="other")
    same = QdrantBackend.create(location, model="toy", dimensions=DIM, exist_ok=True)
    assert same.dimensions == DIM
    same.close()
    for bad_url in ("qdrant://", "qdrant://host:6333/", "qdrant+local://nofolder", "qdrant://h:99999/c"):
        with pytest.raises(ValueError, match=r"qdrant|port"):
            QdrantBackend.open(bad_url)


@pytest.mark.parametrize("quantization", ["scalar", "binary"])
def test_quantized_and_on_disk_collections_search(tmp_path: Path, quantization: str) -> None:
    store = QdrantBackend.create(
        f"qdrant+local://{tmp_path}/q", model="toy", dimensions=DIM, quantization=quantization, on_disk=True
    )
    ids, texts, _, vectors = make_docs(10)
    store.add(texts=texts, ids=ids, vectors=vectors)
    assert store.search(query_vectors=[vectors[4]], k=1)[0][0].id == "doc-4"
    assert store.info().settings["quantization"] == quantization
    store.close()


def test_unreachable_server_fails_fast() -> None:
    start = time.monotonic()
    with pytest.raises(ValueError, match="cannot reach Qdrant"):
        QdrantBackend.open("qdrant://127.0.0.1:9/docs", timeout=2)
    # 10.255.255.1 is not routed (or a proxy answers for it): either way a ValueError, never a hang.
    with pytest.raises(ValueError, match="Qdrant"):
        QdrantBackend.create("qdrant://10.255.255.1:6333/docs", model="toy", dimensions=DIM, timeout=2)
    assert time.monotonic() - start < 15


def test_muvera_dot_product_tracks_maxsim() -> None:
    """The FDE dot product must rank documents roughly like MaxSim, or the prefetch would be useless."""
    rng = np.random.default_rng(3)
    enc = Muvera(DIM, k_sim=3, dim_proj=8, r_reps=20)
    docs = [unit_rows(rng, 10) for _ in range(200)]
    fdes = np.stack([enc.encode_document(d) for d in docs])
    correlations = []
    for _ in range(5):
        query = docs[int(rng.integers(200))][:4] + 0.3 * unit_rows(rng, 4)
        exact = maxsim_packed(query, docs)
        approx = fdes @ enc.encode_query(query)
        correlations.append(np.corrcoef(exact, approx)[0, 1])
    assert np.mean(correlations) > 0.5
    assert np.array_equal(
        Muvera(DIM, seed=5).encode_query(docs[0]), Muvera(DIM, seed=5).encode_query(docs[0])
    )


def _recall_against_exhaustive(docs, queries, prefetch: str, prefetch_limit, tmp_path: Path, k: int = 10):
    dims = docs[0].shape[1]
    store = QdrantBackend.create(
        f"qdrant+local://{tmp_path}/{prefetch}", model="toy", dimensions=dims, prefetch=prefetch
    )
    ids = [str(i) for i in range(len(docs))]
    store.add(texts=ids, ids=ids, vectors=docs)
    hits = store.search(query_vectors=queries, k=k, prefetch_limit=prefetch_limit)
    store.close()
    overlaps = []
    for query, found in zip(queries, hits, strict=True):
        exact = {ids[i] for i in np.argsort(-maxsim_packed(query, docs))[:k]}
        overlaps.append(len(exact & {h.id for h in found}) / k)
    return float(np.mean(overlaps))


@pytest.fixture(scope="module")
def scifact_vectors():
    root = Path("/work/shared/data/scifact")
    if not root.exists():
        pytest.skip("scifact is not in /work/shared/data")
    from scifact_vectors import load_scifact_vectors, subset

    # Encoding all 5,183 documents takes most of an hour on a 2-core CPU the first time (cached in the
    # evaluation cache afterwards). The agreement runs on 1,200 of them (every judged-relevant one plus
    # random others) unless POLYCOLBERT_SCIFACT_FULL=1: qdrant-client's local mode is pure Python.
    full = load_scifact_vectors(dims=(128,))
    return full if os.environ.get("POLYCOLBERT_SCIFACT_FULL") == "1" else subset(full, 1200)


@pytest.mark.slow
@pytest.mark.parametrize("prefetch", ["mean", "muvera"])
def test_scifact_top10_agrees_with_exhaustive_maxsim(scifact_vectors, prefetch: str, tmp_path: Path) -> None:
    docs, queries = scifact_vectors.documents[128], scifact_vectors.queries[128]
    assert _recall_against_exhaustive(docs, queries, prefetch, None, tmp_path) >= 0.9


@pytest.mark.slow
def test_scifact_top10_agrees_with_the_embedded_index_exhaustive_mode(
    scifact_vectors, tmp_path: Path
) -> None:
    """Same corpus, same queries, both backends through the Backend protocol: Qdrant with its default
    prefetch against the embedded index scoring every document (nbits=4: the check is about the
    backends, not about 2-bit compression, whose own cost is measured in docs/benchmarks.md)."""
    docs, queries = scifact_vectors.documents[128], scifact_vectors.queries[128]
    ids = [str(i) for i in range(len(docs))]
    embedded = open_backend(str(tmp_path / "ix"), dimensions=128, nbits=4, create=True)
    qdrant = open_backend(f"qdrant+local://{tmp_path}/q/scifact", model="toy", dimensions=128, create=True)
    for backend in (embedded, qdrant):
        backend.add(texts=ids, ids=ids, vectors=docs)
    reference = embedded.search(query_vectors=queries, k=10, exhaustive=True)
    found = qdrant.search(query_vectors=queries, k=10)
    agreement = np.mean(
        [len({h.id for h in a} & {h.id for h in b}) / 10 for a, b in zip(found, reference, strict=True)]
    )
    print(f"top-10 agreement {agreement:.4f} over {len(queries)} queries, {len(docs)} documents")
    embedded.close()
    qdrant.close()
    assert agreement >= 0.9


def test_sample_top10_agreement_with_default_prefetch(tmp_path: Path) -> None:
    """A clustered synthetic corpus (topics of similar tokens) of 300 documents, default prefetch of 100."""
    rng = np.random.default_rng(11)
    centres = unit_rows(rng, 40, 32)

    def doc() -> np.ndarray:
        topic = centres[rng.integers(40, size=2)]
        rows = topic[rng.integers(2, size=int(rng.integers(8, 30)))] + 0.5 * unit_rows(rng, 1, 32)
        return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)

    docs = [doc() for _ in range(300)]
    queries = [d[:6] for d in docs[:12]]
    assert _recall_against_exhaustive(docs, queries, "mean", None, tmp_path) >= 0.9


@pytest.mark.skipif(
    not os.environ.get("QDRANT_URL"), reason="set QDRANT_URL=http://host:6333 to test a real server"
)
def test_real_server_round_trip() -> None:
    url = (
        os.environ["QDRANT_URL"].replace("http://", "qdrant://").replace("https://", "qdrants://").rstrip("/")
    )
    location = f"{url}/polycolbert-test-{uuid.uuid4().hex[:8]}"
    store = QdrantBackend.create(location, model="toy", dimensions=DIM, shard_number=2, replication_factor=1)
    try:
        ids, texts, metadata, vectors = make_docs(30)
        store.add(texts=texts, ids=ids, metadata=metadata, vectors=vectors)
        hits = store.search(query_vectors=[vectors[3]], k=5, filter={"lang": "de"})[0]
        assert hits[0].id == "doc-3" and all(h.metadata["lang"] == "de" for h in hits)
        assert store.info().settings["shard_number"] == 2
        # BM25 fusion: the sparse vector with server-side IDF, facet counts over the indexed script key
        assert store.script_counts() == {"LATIN": 30}
        fused = store.search(["text 3"], query_vectors=[vectors[3]], k=3, fusion="bm25")[0]
        assert fused[0].id == "doc-3" and fused[0].score > fused[1].score
        with pytest.raises(ValueError, match="stores 16-dim"):
            QdrantBackend.open(location, dimensions=32)
        if os.environ.get("QDRANT_API_KEY"):
            with pytest.raises(ValueError, match="API key"):
                QdrantBackend.open(location, api_key="wrong-key")
    finally:
        store.client.delete_collection(store.collection)
        store.close()
