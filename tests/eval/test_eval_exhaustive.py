from __future__ import annotations

import numpy as np
import pytest

from polycolbert.eval import exhaustive
from polycolbert.eval.exhaustive import maxsim_matrix, top_k


def naive(queries: list[np.ndarray], docs: list[np.ndarray]) -> np.ndarray:
    out = np.zeros((len(queries), len(docs)), np.float64)
    for i, q in enumerate(queries):
        for j, d in enumerate(docs):
            if len(d):
                out[i, j] = sum(max(float(np.dot(qv, dv)) for dv in d) for qv in q)
    return out


def random_sets(rng: np.random.Generator, n: int, lo: int, hi: int, dim: int) -> list[np.ndarray]:
    sets = []
    for length in rng.integers(lo, hi, n):
        v = rng.standard_normal((int(length), dim)).astype(np.float32)
        sets.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9))
    return sets


@pytest.mark.parametrize("bucket_rows", [1, 50, 4096])
def test_matches_naive_maxsim_with_ragged_lengths(bucket_rows: int) -> None:
    rng = np.random.default_rng(1)
    queries = random_sets(rng, 7, 1, 9, 16)  # ragged queries: padded query rows must add exactly 0
    docs = random_sets(rng, 23, 1, 40, 16)
    docs[5] = np.zeros((0, 16), np.float32)  # an empty document scores 0
    # all-negative similarities: a zero-padded document row would wrongly win the max
    queries[0] = queries[0][:1].repeat(3, axis=0)
    docs[7] = -queries[0][:2]
    got = maxsim_matrix(queries, docs, bucket_rows=bucket_rows)
    np.testing.assert_allclose(got, naive(queries, docs), atol=1e-4)
    assert got[0, 7] == pytest.approx(-3.0, abs=1e-5)


@pytest.mark.parametrize("group", [1, 3])
def test_query_group_size_does_not_change_scores(monkeypatch: pytest.MonkeyPatch, group: int) -> None:
    rng = np.random.default_rng(2)
    queries, docs = random_sets(rng, 9, 1, 7, 8), random_sets(rng, 11, 1, 12, 8)
    expected = maxsim_matrix(queries, docs)
    monkeypatch.setattr(exhaustive, "QUERY_GROUP", group)
    np.testing.assert_allclose(maxsim_matrix(queries, docs), expected, atol=1e-6)


def test_buckets_sort_by_length_and_respect_the_row_budget() -> None:
    lengths = [5, 1, 3, 3, 9, 0]
    buckets = exhaustive._buckets(lengths, max_rows=9)
    assert sorted(i for b in buckets for i in b) == list(range(6))
    assert buckets == [[5, 1, 2], [3], [0], [4]]  # 3 x 3 <= 9; then 2 x 5 > 9; a long one stands alone
    for bucket in buckets:
        assert len(bucket) == 1 or len(bucket) * max(lengths[i] for i in bucket) <= 9


def test_progress_callback_counts_every_document() -> None:
    rng = np.random.default_rng(3)
    seen: list[int] = []
    queries, docs = random_sets(rng, 2, 1, 4, 4), random_sets(rng, 10, 2, 3, 4)  # every document has 2 rows
    maxsim_matrix(queries, docs, bucket_rows=8, on_bucket=seen.append)
    assert seen == [4, 4, 2]


def test_dimension_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"must be \[n, 4\]"):
        maxsim_matrix([np.ones((2, 4), np.float32)], [np.ones((2, 3), np.float32)])


def test_top_k_orders_by_score_then_corpus_order() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9]], np.float32)
    assert list(top_k(scores, ["a", "b", "c", "d"], 3)[0].items()) == [
        ("b", pytest.approx(0.9)),
        ("d", pytest.approx(0.9)),
        ("c", pytest.approx(0.5)),
    ]
