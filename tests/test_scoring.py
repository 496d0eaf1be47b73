"""Every MaxSim kernel against one oracle (a per-document loop in float64), the one top_k tie rule, and
the token alignments that explain a score."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polycolbert import scoring
from polycolbert.scoring import (
    explain_matches,
    maxsim,
    maxsim_buckets,
    maxsim_packed,
    maxsim_padded,
    maxsim_segments,
    token_chunks,
    top_k,
)


def oracle(query: np.ndarray, document: np.ndarray) -> float:
    """``sum_i max_j q_i . d_j`` one pair at a time, in float64; an empty document scores 0."""
    if len(document) == 0:
        return 0.0
    q, d = query.astype(np.float64), document.astype(np.float64)
    return float(sum(max(float(qv @ dv) for dv in d) for qv in q))


def oracle_matrix(queries: list[np.ndarray], documents: list[np.ndarray]) -> np.ndarray:
    return np.array([[oracle(q, d) for d in documents] for q in queries])


def random_sets(rng: np.random.Generator, n: int, lo: int, hi: int, dim: int) -> list[np.ndarray]:
    """``n`` sets of unit vectors with ``lo..hi-1`` rows each (``lo=0`` gives empty documents)."""
    sets = []
    for length in rng.integers(lo, hi, n):
        v = rng.standard_normal((int(length), dim)).astype(np.float32)
        sets.append(v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-9))
    return sets


@pytest.fixture
def ragged():
    """Ragged queries and documents; empty documents first, in the middle and last."""
    rng = np.random.default_rng(7)
    queries = random_sets(rng, 5, 1, 12, 16)
    docs = random_sets(rng, 19, 1, 30, 16)
    empty = np.zeros((0, 16), np.float32)
    docs[0] = docs[9] = docs[-1] = empty
    docs[4] = -queries[0][:1].repeat(2, axis=0)  # all similarities negative: padding must not win a max
    return queries, docs


def test_maxsim_by_hand():
    q = np.array([[1, 0], [0, 1]], np.float32)
    d = np.array([[0.6, 0.8], [1, 0]], np.float32)
    assert maxsim(q, d) == pytest.approx(1.0 + 0.8)
    assert explain_matches(q, d) == [(0, 1, pytest.approx(1.0)), (1, 0, pytest.approx(0.8))]
    assert maxsim(q, d[:0]) == 0.0
    assert explain_matches(q, d[:0]) == [(0, -1, 0.0), (1, -1, 0.0)]


def test_pair_kernel_matches_oracle(ragged):
    queries, docs = ragged
    got = np.array([[maxsim(q, d) for d in docs] for q in queries])
    np.testing.assert_allclose(got, oracle_matrix(queries, docs), atol=1e-5)


@pytest.mark.parametrize("chunk_tokens", [1, 8, 40, 1 << 20])
def test_packed_kernel_matches_oracle(ragged, chunk_tokens):
    queries, docs = ragged
    for q in queries:
        got = maxsim_packed(q, docs, chunk_tokens=chunk_tokens)
        assert got.dtype == np.float32 and got.shape == (len(docs),)
        np.testing.assert_allclose(got, [oracle(q, d) for d in docs], atol=1e-5)
    assert maxsim_packed(queries[0], []).shape == (0,)
    assert maxsim_packed(queries[0], [docs[0], docs[9]]).tolist() == [0.0, 0.0]


def test_segmented_kernel_matches_oracle_with_query_groups_and_weights(ragged):
    queries, docs = ragged
    lengths = np.array([len(d) for d in docs])
    sims = np.concatenate(queries) @ np.concatenate([d for d in docs if len(d)]).T
    got = maxsim_segments(sims, lengths, [len(q) for q in queries])
    np.testing.assert_allclose(got, oracle_matrix(queries, docs), atol=1e-5)
    # a weight of 2 on a row stands for that row twice
    q = queries[1]
    weights = np.ones(len(q), np.float32)
    weights[0] = 2.0
    doubled = np.concatenate([q[:1], q])
    one = maxsim_segments(q @ np.concatenate([d for d in docs if len(d)]).T, lengths, [len(q)], weights)
    np.testing.assert_allclose(one[0], [oracle(doubled, d) for d in docs], atol=1e-5)
    # None: every row is one query
    np.testing.assert_allclose(
        maxsim_segments(sims[: len(queries[0])], lengths)[0], [oracle(queries[0], d) for d in docs], atol=1e-5
    )


def test_segmented_kernel_with_only_empty_documents():
    assert maxsim_segments(np.zeros((3, 0), np.float32), [0, 0]).tolist() == [[0.0, 0.0]]


@pytest.mark.parametrize("bucket_rows", [1, 50, 4096])
def test_bucket_kernel_matches_oracle(ragged, bucket_rows):
    queries, docs = ragged
    queries = [*queries, queries[0][:1].repeat(3, axis=0)]  # ragged queries: padded rows must add 0
    got = maxsim_buckets(queries, docs, bucket_rows=bucket_rows)
    np.testing.assert_allclose(got, oracle_matrix(queries, docs), atol=1e-5)
    assert got[-1, 4] == pytest.approx(-3.0, abs=1e-5)  # no zero padding row won an all-negative max


@pytest.mark.parametrize("group", [1, 3])
def test_bucket_query_group_size_does_not_change_scores(monkeypatch: pytest.MonkeyPatch, group: int) -> None:
    rng = np.random.default_rng(2)
    queries, docs = random_sets(rng, 9, 1, 7, 8), random_sets(rng, 11, 1, 12, 8)
    expected = maxsim_buckets(queries, docs)
    monkeypatch.setattr(scoring, "QUERY_GROUP", group)
    np.testing.assert_allclose(maxsim_buckets(queries, docs), expected, atol=1e-6)


def test_buckets_sort_by_length_and_respect_the_row_budget() -> None:
    lengths = [5, 1, 3, 3, 9, 0]
    buckets = scoring._buckets(lengths, max_rows=9)
    assert sorted(i for b in buckets for i in b) == list(range(6))
    assert buckets == [[5, 1, 2], [3], [0], [4]]  # 3 x 3 <= 9; then 2 x 5 > 9; a long one stands alone
    for bucket in buckets:
        assert len(bucket) == 1 or len(bucket) * max(lengths[i] for i in bucket) <= 9


def test_bucket_progress_callback_counts_every_document() -> None:
    rng = np.random.default_rng(3)
    seen: list[int] = []
    queries, docs = random_sets(rng, 2, 1, 4, 4), random_sets(rng, 10, 2, 3, 4)  # every document has 2 rows
    maxsim_buckets(queries, docs, bucket_rows=8, on_bucket=seen.append)
    assert seen == [4, 4, 2]


def test_bucket_dimension_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"must be \[n, 4\]"):
        maxsim_buckets([np.ones((2, 4), np.float32)], [np.ones((2, 3), np.float32)])


def padded(sets: list[np.ndarray], repeat_first_row: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Stacked sets, padded with zeros or with copies of each set's first row, and the real-row mask."""
    width = max(len(s) for s in sets)
    out = np.zeros((len(sets), width, sets[0].shape[1]), np.float32)
    mask = np.zeros((len(sets), width), bool)
    for i, s in enumerate(sets):
        out[i, : len(s)] = s
        if repeat_first_row:
            out[i, len(s) :] = s[0]
        mask[i, : len(s)] = True
    return torch.from_numpy(out), torch.from_numpy(mask)


def test_differentiable_kernel_matches_oracle_masked_or_padded_with_a_real_row(ragged):
    queries, docs = ragged
    docs = [d for d in docs if len(d)]  # a training batch has no empty document
    q, _ = padded(queries, repeat_first_row=False)  # zero query rows add exactly 0
    expected = oracle_matrix(queries, docs)
    d_zero, mask = padded(docs, repeat_first_row=False)
    np.testing.assert_allclose(maxsim_padded(q, d_zero, mask).numpy(), expected, atol=1e-5)
    d_repeat, _ = padded(docs, repeat_first_row=True)
    np.testing.assert_allclose(maxsim_padded(q, d_repeat).numpy(), expected, atol=1e-5)


def test_differentiable_kernel_has_gradients():
    rng = np.random.default_rng(4)
    q = torch.from_numpy(rng.standard_normal((2, 3, 8)).astype(np.float32)).requires_grad_()
    d = torch.from_numpy(rng.standard_normal((4, 5, 8)).astype(np.float32)).requires_grad_()
    maxsim_padded(q, d).sum().backward()
    assert q.grad is not None and d.grad is not None
    assert bool(torch.isfinite(q.grad).all()) and float(q.grad.abs().sum()) > 0
    assert float(d.grad.abs().sum()) > 0


def test_top_k_breaks_ties_by_input_position():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.5, 0.9], np.float32)
    assert top_k(scores, 4).tolist() == [1, 3, 5, 2]
    assert top_k(scores).tolist() == [1, 3, 5, 2, 4, 0]
    assert top_k(scores, 2).tolist() == [1, 3]  # a tie cut at k keeps the earliest
    assert top_k(scores, 100).tolist() == [1, 3, 5, 2, 4, 0]
    assert top_k(scores, 0).tolist() == [] and top_k([], 3).tolist() == []
    assert top_k([3, 3, 3, 3], 3).tolist() == [0, 1, 2]


def test_top_k_equals_a_stable_full_sort():
    rng = np.random.default_rng(5)
    scores = rng.integers(0, 20, 1000).astype(np.float32)  # many ties
    for k in (1, 7, 100, 999, 1000):
        assert top_k(scores, k).tolist() == np.argsort(-scores, kind="stable")[:k].tolist()


def test_token_chunks_cover_every_document_once():
    lengths = np.array([3, 0, 2, 5, 1, 0])
    for limit in (1, 4, 5, 100):
        bounds = token_chunks(lengths, limit)
        assert [a for a, _ in bounds] == [0, *[b for _, b in bounds[:-1]]] and bounds[-1][1] == len(lengths)
        # over the limit only where one document is longer than it (empty ones ride along)
        assert all(lengths[a:b].sum() <= limit or (lengths[a:b] > 0).sum() == 1 for a, b in bounds)
