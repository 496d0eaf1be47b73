"""The ``Backend`` contract, run against every backend: an embedded index folder and Qdrant's local mode.

Each test states one promise of the protocol and checks it on both stores with the same calls; where the
stores differ by design (the embedded index commits a stream at once, Qdrant batch by batch; hybrid
search is the embedded index's), the test says so. Refusals must be the same error type with the same
words, so a caller never needs to know which store it talks to. Documents are encoded by a deterministic
hash encoder (``tests/index/index_helpers.py``), and expected rankings come from exact MaxSim computed
here, independently of both stores.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("qdrant_client")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from index_helpers import HashEncoder, reference_top

from filter_cases import METADATA
from polycolbert.backends import Backend, BackendInfo, create_backend, open_backend
from polycolbert.documents import DocumentBatch
from polycolbert.filters import FilterError
from polycolbert.scoring import maxsim

DIM = 16
KINDS = ["local", "qdrant"]
WORDS = [f"w{i}" for i in range(12)]  # a small vocabulary: many shared words, some ties


class Encoder(HashEncoder):
    """The hash encoder with the one member Qdrant's ``create`` asks of a model object."""

    def check_dimensions(self, dimensions: int | None) -> int:
        if dimensions is not None and dimensions not in self.dims:
            raise ValueError(f"dimensions must be one of {list(self.dims)}")
        return dimensions or self.dims[0]


def corpus(n: int = 30) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=6)) for _ in range(n)]
    ids = [f"doc{i}" for i in range(n)]
    metadata = [{"lang": "de" if i % 3 == 0 else "en", "year": 2000 + i} for i in range(n)]
    return texts, ids, metadata


def location(kind: str, root: Path) -> str:
    return str(root / "ix") if kind == "local" else f"qdrant+local://{root}/qdrant/docs"


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def empty(kind: str, tmp_path: Path) -> Iterator[Backend]:
    store = create_backend(location(kind, tmp_path), model=Encoder(), dimensions=DIM)
    yield store
    store.close()


@pytest.fixture
def store(empty: Backend) -> Backend:
    texts, ids, metadata = corpus()
    empty.add(texts=texts, ids=ids, metadata=metadata)
    return empty


def encode(texts: list[str]) -> list[np.ndarray]:
    return Encoder().encode_documents(texts, DIM)


# -- lifecycle and description --------------------------------------------------------------------------
def test_is_a_backend_and_reopens_with_its_settings(store: Backend, kind: str, tmp_path: Path) -> None:
    assert isinstance(store, Backend)
    assert (store.model_name, store.dimensions) == ("hash-test-encoder", DIM)
    store.close()
    again = open_backend(location(kind, tmp_path), model=Encoder())
    assert (again.model_name, again.dimensions, again.info().documents) == ("hash-test-encoder", DIM, 30)
    assert again.search(["w1 w2"], k=1)[0]  # its encoder works after reopening
    again.close()
    with pytest.raises(ValueError, match=f"not {DIM * 2}"):
        open_backend(location(kind, tmp_path), dimensions=DIM * 2)


def test_info_has_the_same_fields_on_every_backend(store: Backend, kind: str) -> None:
    info = store.info()
    assert isinstance(info, BackendInfo)
    as_json = json.loads(json.dumps(info.to_dict()))
    fields = ["backend", "location", "model", "dimensions", "documents", "tokens", "bytes_on_disk"]
    assert list(as_json) == [*fields, "settings", "details", "fusion"]
    assert as_json["fusion"]["available"][0] == "none"
    texts, _, _ = corpus()
    assert (info.backend, info.model, info.dimensions, info.documents) == (kind, "hash-test-encoder", DIM, 30)
    assert info.tokens == sum(len(v) for v in encode(texts))
    assert info.bytes_on_disk is not None and info.bytes_on_disk["total"] > 0
    assert isinstance(info.settings, dict) and isinstance(info.details, dict)


def test_compact_keeps_every_document(store: Backend) -> None:
    store.delete(["doc0", "doc1"])
    result = store.compact()
    assert isinstance(result["compacted"], bool)
    assert store.info().documents == 28 and set(store.ids()) == set(corpus()[1][2:])


# -- writing --------------------------------------------------------------------------------------------
def test_add_returns_ids_and_invents_them_when_none_are_given(empty: Backend) -> None:
    assert empty.add(texts=["w1 w2"], ids=["given"]) == ["given"]
    invented = empty.add(texts=["w3", "w4"], metadata=[{"n": 1}, {"n": 2}])
    assert len(invented) == 2 and all(len(i) == 32 for i in invented) and invented[0] != invented[1]
    assert set(empty.ids()) == {"given", *invented}
    assert empty.existing(["given", invented[1], "absent"]) == {"given", invented[1]}


def test_add_stream_encodes_batches_without_vectors_and_counts_them(empty: Backend) -> None:
    texts, ids, metadata = corpus(10)
    batches = [
        DocumentBatch(texts[:4], ids=ids[:4], metadata=metadata[:4]),
        DocumentBatch(texts[4:], ids=ids[4:], metadata=metadata[4:], vectors=encode(texts[4:])),
    ]
    assert empty.add_stream(iter(batches), memory_budget_mb=1) == 10
    assert empty.info().documents == 10
    assert empty.search([texts[2]], k=1)[0][0].id == "doc2"
    assert empty.search([texts[7]], k=1)[0][0].id == "doc7"


def test_add_stream_refuses_a_bad_batch_by_number(empty: Backend, kind: str) -> None:
    batches = [DocumentBatch(["w1"], ids=["a"]), DocumentBatch(["w2", "w3"], ids=["b", "a"])]
    with pytest.raises(ValueError) as refused:
        empty.add_stream(iter(batches))
    assert str(refused.value) == "batch 2: ids already in the index: ['a'] (use update to replace them)"
    # The embedded index commits a stream at once (nothing of it stays); Qdrant batch by batch.
    assert empty.ids() == ([] if kind == "local" else ["a"])
    with pytest.raises(ValueError, match="no documents given: the stream had no batches"):
        empty.add_stream(iter([]))


def test_update_replaces_text_metadata_and_vectors(store: Backend) -> None:
    store.update(texts=["omega omega omega"], ids=["doc3"], metadata=[{"lang": "el"}])
    top = store.search(["omega"], k=1)[0][0]
    assert (top.id, top.text, top.metadata) == ("doc3", "omega omega omega", {"lang": "el"})
    assert top.score == pytest.approx(1.0, abs=1e-4)  # one query row, the same unit vector
    replaced = encode(["sigma tau"])
    store.update(texts=["anything"], ids=["doc4"], vectors=replaced)
    hit = store.search(query_vectors=replaced, k=1)[0][0]
    assert (hit.id, hit.text, hit.metadata) == ("doc4", "anything", {})
    assert hit.score == pytest.approx(maxsim(replaced[0], replaced[0]), abs=2e-3)
    assert store.info().documents == 30


def test_update_of_an_unknown_id_is_refused_and_writes_nothing(store: Backend) -> None:
    with pytest.raises(ValueError) as refused:
        store.update(texts=["omega", "omega"], ids=["doc1", "nope"])
    assert str(refused.value) == "unknown ids: ['nope'] (use add for new documents)"
    texts, _, _ = corpus()
    assert (store.search([texts[1]], k=1)[0][0].text, store.info().documents) == (texts[1], 30)


def test_delete_counts_what_existed(store: Backend) -> None:
    texts, _, _ = corpus()
    assert store.delete(["doc3", "missing"]) == 1
    assert store.delete([]) == 0
    hits = store.search([texts[3]], k=30)[0]
    assert "doc3" not in {h.id for h in hits} and len(hits) == 29
    assert store.existing(["doc3", "doc4"]) == {"doc4"}


def test_duplicate_ids_are_refused_identically_and_nothing_is_written(store: Backend) -> None:
    with pytest.raises(ValueError) as taken:
        store.add(texts=["w1", "w2"], ids=["new", "doc4"])
    assert str(taken.value) == "ids already in the index: ['doc4'] (use update to replace them)"
    with pytest.raises(ValueError) as twice:
        store.add(texts=["w1", "w2"], ids=["x", "x"])
    assert str(twice.value) == "duplicate ids in the batch: ['x']"
    assert store.existing(["new", "x"]) == set() and store.info().documents == 30


GOOD = {"texts": ["w1 w2", "w3"], "ids": ["n1", "n2"]}
BAD_BATCHES = [
    ({"texts": []}, "no documents given: pass at least one text"),
    ({"texts": "w1 w2"}, "texts must be a list, not one string"),
    ({"texts": ["w1", 3]}, "texts must be strings"),
    ({"ids": ["n1"]}, "1 ids for 2 texts"),
    ({"ids": ["n1", ""]}, "ids must be non-empty strings"),
    ({"ids": ["n1", 2]}, "ids must be non-empty strings"),
    ({"metadata": [{}, []]}, "metadata must be one JSON object per text"),
    ({"metadata": [{}]}, "metadata must be one JSON object per text"),
    ({"metadata": [{}, {"x": math.nan}]}, r"metadata\[1\] holds NaN or Infinity"),
    ({"metadata": [{}, {"x": object()}]}, r"metadata\[1\] is not JSON-serialisable"),
    ({"vectors": [np.ones((2, DIM), np.float32)]}, "1 vector arrays for 2 texts"),
    (
        {"vectors": [np.ones((2, DIM)), np.ones((2, 8))]},
        r"vectors\[1\] has shape \(2, 8\); .* needs \[tokens, 16\]",
    ),
    ({"vectors": [np.ones((2, DIM)), np.ones((0, DIM))]}, r"vectors\[1\] has no token vectors"),
    ({"vectors": [np.ones((2, DIM)), np.full((2, DIM), np.inf)]}, r"vectors\[1\] contains NaN or infinite"),
    ({"vectors": [np.full((2, DIM), np.nan), np.ones((2, DIM))]}, r"vectors\[0\] contains NaN or infinite"),
]


@pytest.mark.parametrize(("change", "message"), BAD_BATCHES, ids=[m for _, m in BAD_BATCHES])
def test_batch_rules_are_the_same_on_every_backend(empty: Backend, change: dict, message: str) -> None:
    for method in ("add", "update"):
        with pytest.raises(ValueError, match=message):
            getattr(empty, method)(**{**GOOD, **change})
    with pytest.raises(ValueError, match=f"batch 1: {message}"):
        empty.add_stream([DocumentBatch(**{**GOOD, **change})])
    assert empty.ids() == []


# -- searching ------------------------------------------------------------------------------------------
def test_search_by_text_finds_the_exact_text_first(store: Backend) -> None:
    texts, _, _ = corpus()
    hits = store.search([texts[7], texts[21]], k=3)
    assert [h[0].id for h in hits] == ["doc7", "doc21"] and all(len(h) == 3 for h in hits)
    assert hits[0][0].text == texts[7] and hits[0][0].metadata == {"lang": "en", "year": 2007}


def test_search_by_vectors_needs_no_texts_and_equals_search_by_text(store: Backend) -> None:
    queries = ["w1 w5 w9", "w0 w0 w3"]
    vectors = Encoder().encode_queries(queries, DIM)
    by_text = store.search(queries, k=5)
    by_vectors = store.search(query_vectors=vectors, k=5)
    both = store.search(queries, query_vectors=vectors, k=5)
    for a, b, c in zip(by_text, by_vectors, both, strict=True):
        assert [h.id for h in a] == [h.id for h in b] == [h.id for h in c]
        np.testing.assert_allclose([h.score for h in a], [h.score for h in b], atol=1e-4)


def test_exhaustive_and_default_search_agree_with_exact_maxsim(store: Backend) -> None:
    texts, ids, _ = corpus()
    docs = dict(zip(ids, encode(texts), strict=True))
    queries = Encoder().encode_queries(["w2 w3", "w7 w11 w0", "w5"], DIM)
    default = store.search(query_vectors=queries, k=5)
    exhaustive = store.search(query_vectors=queries, k=5, exhaustive=True)
    tolerance = 2e-3  # the embedded index keeps a small corpus's vectors as float16
    for query, fast, exact in zip(queries, default, exhaustive, strict=True):
        want = [maxsim(query, docs[h.id]) for h in exact]
        np.testing.assert_allclose([h.score for h in exact], want, atol=tolerance)
        np.testing.assert_allclose([h.score for h in fast], [h.score for h in exact], atol=tolerance)
        top = reference_top(query, docs, 30)
        best = {i for i in top if maxsim(query, docs[i]) >= want[-1] - tolerance}  # ties at the cut may swap
        assert {h.id for h in fast} <= best and {h.id for h in exact} <= best


def test_filter_applies_before_ranking(store: Backend) -> None:
    texts, _, _ = corpus()
    # the best match (doc1, English) is filtered out, yet k German documents still come back
    hits = store.search([texts[1]], k=10, filter={"lang": "de"})[0]
    assert len(hits) == 10 and all(h.metadata["lang"] == "de" for h in hits)


BAD_SEARCHES = [
    ({"queries": ["w1"], "k": 0}, ValueError, "k must be a positive integer; got 0"),
    ({"queries": ["w1"], "k": True}, ValueError, "k must be a positive integer; got True"),
    ({}, ValueError, "give queries \\(texts\\) or query_vectors"),
    ({"queries": "w1"}, ValueError, "queries must be a list, not one string"),
    (
        {"query_vectors": [np.ones((2, 4))]},
        ValueError,
        r"query_vectors\[0\] has shape \(2, 4\); .* needs \[tokens, 16\]",
    ),
    (
        {"queries": ["a", "b"], "query_vectors": [np.ones((2, DIM))]},
        ValueError,
        "1 query vector arrays for 2",
    ),
    ({"queries": ["w1"], "filter": {"year": {"$like": 3}}}, FilterError, r"filter.year.\$like: unknown"),
    ({"queries": ["w1"], "filter": {"$xor": []}}, FilterError, "unknown operator"),
    ({"queries": ["w1"], "fusion": "dense"}, ValueError, "fusion must be one of none, bm25; got 'dense'"),
    ({"queries": ["w1"], "fusion": None}, ValueError, "fusion must be one of none, bm25; got None"),
    ({"query_vectors": [np.ones((2, DIM))], "fusion": "bm25"}, ValueError, "bm25 fusion needs the query"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_SEARCHES, ids=[m for *_, m in BAD_SEARCHES])
def test_search_rules_are_the_same_on_every_backend(
    store: Backend, call: dict, error: type, message: str
) -> None:
    with pytest.raises(error, match=message):
        store.search(**call)


def test_bm25_fusion_finds_the_same_best_document_on_every_backend(store: Backend, kind: str) -> None:
    # Three documents share MaxSim's best score for "w3 zeppelin" (one word matched exactly, the other not);
    # only BM25 tells the one that says "zeppelin" most often and most briefly.
    store.add(
        texts=["zeppelin zeppelin w3", "zeppelin w3 w7 w8 w9 w10 w11 w0", "w3 zeppelin w6 w6 w6 w6"],
        ids=["brief", "long", "diluted"],
    )
    plain = store.search(["w3 zeppelin"], k=3)[0]
    assert {h.id for h in plain} == {"brief", "long", "diluted"}
    assert len({round(h.score, 4) for h in plain}) == 1
    fused = store.search(["w3 zeppelin"], k=3, fusion="bm25")[0]
    assert [h.id for h in fused][:1] == ["brief"]
    assert fused[0].score > fused[1].score
    assert store.info().fusion["corpus_script"] == "LATIN"


def test_hybrid_needs_query_texts_or_is_refused(store: Backend, kind: str) -> None:
    vectors = Encoder().encode_queries(["w1"], DIM)
    message = "hybrid search needs the query texts" if kind == "local" else "offered by the embedded index"
    with pytest.raises(ValueError, match=message):
        store.search(query_vectors=vectors, hybrid=True)


# -- the filter semantics table -------------------------------------------------------------------------
ALL = set(range(len(METADATA)))
FILTER_TABLE: list[tuple[dict[str, Any], set[int]]] = [
    ({"lang": "de"}, {0}),
    ({"lang": "5"}, {4}),  # a string that looks like a number is a string
    ({"year": 5}, {3}),
    ({"year": 5.0}, {3}),  # an integral float equals the integer
    ({"score": 0.5}, {0}),
    ({"ok": True}, {0, 3}),
    ({"ok": False}, {1, 5}),
    ({"lang": None}, {3, 5, 7}),  # null equality: a null or missing field
    ({"missing": None}, ALL),
    ({"lang": {"$ne": "de"}}, ALL - {0}),  # $ne matches documents without the field
    ({"lang": {"$in": ["de", "fr"]}}, {0, 2}),
    ({"lang": {"$in": []}}, set()),
    ({"lang": {"$nin": ["de", "en"]}}, ALL - {0, 1}),
    ({"year": {"$in": [2021, 5.0]}}, {1, 3, 6}),
    ({"year": {"$gte": 2020}}, {0, 1, 6}),
    ({"year": {"$gt": 5, "$lt": 2021}}, {0, 2}),
    ({"score": {"$gt": 0.3}}, {0, 1, 4}),
    ({"score": {"$lte": 0.25}}, {2, 6}),
    ({"tags": "a"}, {0, 4}),  # an array matches when any element does
    ({"tags": 2}, {3}),
    ({"nested.tag": "x"}, {1}),
    ({"nested.tag": None}, ALL - {1, 3}),
    ({"at": {"$gte": "2024-01-01"}}, {0, 4}),  # string ranges are ISO datetimes; "not a date" never matches
    ({"at": {"$lt": "2024-01-01T00:00:00"}}, {2}),
    ({"at": {"$gt": "2024-05-31T23:00:00Z"}}, set()),  # +02:00 midnight is 22:00 UTC the day before
    ({"$or": [{"lang": "de"}, {"year": {"$lte": 5}}]}, {0, 3, 5}),
    ({"$and": [{"ok": True}, {"$not": {"year": 5}}]}, {0}),
    ({"$not": {"lang": "de"}}, ALL - {0}),
    ({"lang": "en", "year": 2021}, {1}),
]


@pytest.fixture(scope="module", params=KINDS)
def labelled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    store = create_backend(location(request.param, tmp_path_factory.mktemp("table")), dimensions=DIM)
    rng = np.random.default_rng(1)
    vectors = [rng.standard_normal((3, DIM)).astype(np.float32) for _ in METADATA]
    ids = [f"d{i}" for i in range(len(METADATA))]
    store.add(texts=[""] * len(METADATA), ids=ids, metadata=METADATA, vectors=vectors)
    yield store
    store.close()


@pytest.mark.parametrize(("filter", "expected"), FILTER_TABLE, ids=[json.dumps(f) for f, _ in FILTER_TABLE])
def test_filter_semantics_table(labelled: Backend, filter: dict, expected: set[int]) -> None:
    query = [np.eye(DIM, dtype=np.float32)[:2]]
    hits = labelled.search(query_vectors=query, k=len(METADATA), filter=filter)[0]
    assert {h.id for h in hits} == {f"d{i}" for i in expected}


@pytest.mark.parametrize(
    ("filter", "message"),
    [
        ({"year": {"$gt": "soon"}}, "filter.year.$gt: a range needs a number or an ISO 8601 datetime"),
        ({"lang": {"$in": "de"}}, "filter.lang.$in needs a list"),
        ({"lang": {"$eq": ["de"]}}, "filter.lang.$eq: needs a string, number, boolean or null"),
        ({"year": {"$gt": 2**70}}, "filter.year.$gt: integer"),
        ({}, "filter must be a non-empty JSON object"),
    ],
)
def test_filters_no_backend_can_evaluate_are_the_same_filter_error(
    labelled: Backend, filter: dict, message: str
) -> None:
    with pytest.raises(FilterError) as refused:
        labelled.search(query_vectors=[np.ones((1, DIM), np.float32)], filter=filter)
    assert str(refused.value).startswith(message)
