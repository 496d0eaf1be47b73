"""Property test: random add / update / delete / compact sequences against an exhaustive reference.

The reference keeps its own dict of live ids and scores them by brute-force MaxSim (numpy, written
apart from the index code) over each document's stored (decompressed) vectors, so what is checked is the
index's bookkeeping and search: segments, tombstones, updates, compaction, candidate generation and
pruning. Both the automatic path (brute force at this size) and the staged centroid path (forced by
setting the brute-force threshold to zero) must return the reference's top-k ids.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polycolbert.index import Index
from polycolbert.index import params as P

DIMS = 16


def _docs(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(6, DIMS))
    out = []
    for _ in range(n):
        length = int(rng.integers(2, 9))
        x = centres[rng.integers(0, 6, size=length)] + 0.6 * rng.normal(size=(length, DIMS))
        out.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    return out


def _reference_scores(query: np.ndarray, stored: dict[str, np.ndarray]) -> dict[str, float]:
    return {i: float((query @ v.T).max(axis=1).sum()) for i, v in stored.items()}


def _assert_same_top_k(hits: list, reference: dict[str, float], k: int, note: object) -> None:
    """Same top-k as the reference; documents tied on score may swap places (coarse codecs make ties)."""
    ids = [h.id for h in hits]
    assert len(ids) == len(set(ids)) == min(k, len(reference)), note
    for h in hits:  # each hit is live and carries its true MaxSim
        assert np.isclose(h.score, reference[h.id], atol=1e-4), note
    best = sorted(reference.values(), reverse=True)[:k]
    assert np.allclose([h.score for h in hits], best, atol=1e-4), note


op = st.one_of(
    st.tuples(st.just("add"), st.integers(1, 12)),
    st.tuples(st.just("update"), st.integers(0, 10_000)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.integers(1, 4)),
    st.tuples(st.just("compact")),
)


@pytest.mark.parametrize("staged", [False, True], ids=["auto", "staged"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(op, min_size=1, max_size=10), seed=st.integers(0, 2**16), k=st.integers(1, 12))
def test_random_updates_match_exhaustive(
    monkeypatch: pytest.MonkeyPatch, staged: bool, ops: list[tuple], seed: int, k: int
) -> None:
    if staged:
        monkeypatch.setattr(P, "BRUTE_FORCE_TOKENS", 0)
    live: list[str] = []
    next_id = 0
    step = 0
    with tempfile.TemporaryDirectory() as tmp, Index.create(Path(tmp) / "ix", dimensions=DIMS) as index:
        for item in ops:
            step += 1
            kind = item[0]
            if kind == "add":
                ids = [f"d{next_id + i}" for i in range(item[1])]
                next_id += item[1]
                index.add(ids, ids=ids, vectors=_docs(seed + step, len(ids)))
                live += ids
            elif kind == "update" and live:
                target = live[item[1] % len(live)]
                index.update(
                    [target],
                    ["new " + target],
                    metadata=[{"v": step}],
                    vectors=_docs(1_000_000 + seed + step, 1),
                )
            elif kind == "delete" and live:
                gone = {live[(item[1] + j) % len(live)] for j in range(item[2])}
                assert index.delete(sorted(gone) + ["never-added"]) == len(gone)
                live = [i for i in live if i not in gone]
            elif kind == "compact":
                index.compact()
            assert sorted(index.ids()) == sorted(live)
            assert index.check() == []

        stored = {i: index.get_vectors(i) for i in live}
        queries = [q[: max(1, len(q) // 2)] for q in _docs(seed + 1000, 3)]
        got = index.search(query_vectors=queries, k=k)
        exhaustive = index.search(query_vectors=queries, k=k, exhaustive=True)
        for query, hits, reference_hits in zip(queries, got, exhaustive, strict=True):
            reference = _reference_scores(query, stored)
            _assert_same_top_k(hits, reference, k, (ops, seed, k))
            _assert_same_top_k(reference_hits, reference, k, (ops, seed, k, "exhaustive"))
