"""Any filter, valid or not, meets both backends alike: the same documents, or the same ``FilterError``.

The oracle for "the same documents" is Qdrant's own payload filtering (local mode), which the embedded
index's SQL promises to reproduce; the metadata below covers every JSON type the semantics name (strings,
integers, non-integer floats, booleans, null, missing fields, arrays, nested objects, datetimes). Both
stores are reached through the ``Backend`` protocol and searched by query vectors alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("qdrant_client")

from filter_cases import METADATA
from polycolbert.backends import Backend, create_backend
from polycolbert.filters import FilterError, parse_filter

DIM = 8
LANGS = ["de", "en", "fr", "5", ""]

fields = st.sampled_from(["lang", "year", "score", "ok", "tags", "at", "nested.tag", "missing"])
scalars = st.one_of(
    st.sampled_from(LANGS + ["a", "b", "c", "x", "y"]),
    st.integers(-5, 2025),
    st.sampled_from([0.5, 1.5, -2.25, 7.75, 0.25]),
    st.booleans(),
    st.none(),
)
range_values = st.one_of(
    st.integers(-5, 2025),
    st.floats(-3, 8, allow_nan=False).map(lambda x: round(x, 2)),
    st.sampled_from(["2024-01-01", "2023-12-31T12:00:00", "2024-06-01T00:00:00Z"]),
)
comparison = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), scalars),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(scalars, max_size=4)),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), range_values),
)
leaf = st.one_of(
    st.builds(lambda f, v: {f: v}, fields, scalars),
    st.builds(lambda f, c: {f: {c[0]: c[1]}}, fields, comparison),
)
valid_filters = st.recursive(
    leaf,
    lambda inner: st.one_of(
        st.builds(lambda items: {"$and": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda items: {"$or": items}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda item: {"$not": item}, inner),
    ),
    max_leaves=6,
)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
any_filters = st.one_of(
    valid_filters, json_values, st.dictionaries(st.text(max_size=6), json_values, max_size=3)
)


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Backend, Backend]]:
    root: Path = tmp_path_factory.mktemp("filters")
    rng = np.random.default_rng(0)
    vectors = []
    for _ in METADATA:
        rows = rng.standard_normal((3, DIM)).astype(np.float32)
        vectors.append(rows / np.linalg.norm(rows, axis=1, keepdims=True))
    ids = [f"d{i}" for i in range(len(METADATA))]
    texts = [f"text {i}" for i in range(len(METADATA))]
    index = create_backend(str(root / "embedded"), dimensions=DIM)
    qdrant = create_backend(f"qdrant+local://{root}/q/docs", model="toy", dimensions=DIM)
    for store in (index, qdrant):
        store.add(texts=texts, ids=ids, metadata=METADATA, vectors=vectors)
    yield index, qdrant
    qdrant.close()
    index.close()


def _matches(store: Backend, filter: Any) -> set[str] | str:
    query = np.eye(DIM, dtype=np.float32)[:2]
    try:
        hits = store.search(query_vectors=[query], k=len(METADATA), filter=filter, exhaustive=True)[0]
    except FilterError as error:
        return f"FilterError: {error}"
    return {hit.id for hit in hits}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filter=valid_filters)
def test_valid_filters_select_the_same_documents_on_both_backends(both, filter) -> None:
    index, qdrant = both
    assert _matches(index, filter) == _matches(qdrant, filter), filter


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(filter=any_filters)
def test_any_filter_gives_hits_or_a_filter_error_never_another_exception(both, filter) -> None:
    index, qdrant = both
    embedded, remote = _matches(index, filter), _matches(qdrant, filter)
    assert embedded == remote, filter


@pytest.mark.parametrize(
    "filter, fault",
    [
        ({"lang": {"$in": [{"a": 1}]}}, "filter.lang.$in[0]"),
        ({"lang": {"$in": [["a"]]}}, "filter.lang.$in[0]"),
        ({"lang": {"$eq": ["a"]}}, "filter.lang.$eq"),
        ({"lang": {"$ne": {"a": 1}}}, "filter.lang.$ne"),
        ({"year": {"$gt": 10**30}}, "filter.year.$gt"),
        ({"la\x00ng": "de"}, "field name"),
        ({"$or": [{"lang": str(i)} for i in range(999)]}, "more than 256"),
        ({"$and": [{"lang": str(i)} for i in range(5000)]}, "more than 256"),
        ({"lang": {"$in": list(range(300_000))}}, "at most 1024 values"),
        ({"year": {"$gt": float("nan")}}, "not a finite number"),
    ],
)
def test_reported_malformed_filters_are_filter_errors_naming_the_part(both, filter, fault) -> None:
    for store in both:
        result = _matches(store, filter)
        assert isinstance(result, str) and fault in result, result


def test_deeply_nested_not_is_refused_not_a_parser_overflow(both) -> None:
    filter: dict[str, Any] = {"lang": "de"}
    for _ in range(50):
        filter = {"$not": filter}
    with pytest.raises(FilterError, match="nest at most 16"):
        parse_filter(filter)
    for store in both:
        assert "nest at most 16" in str(_matches(store, filter))
