"""``Snapshot`` (what a reader sees), its ``Reader`` and the token lists the cluster scan walks."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
from index_helpers import unit

from polycolbert.index import Index, snapshot
from polycolbert.index.codec import Codec
from polycolbert.index.store import Segment
from polycolbert.index.warp import TokenLists


def test_snapshot_marks_dead_entries_and_decodes_raw_vectors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    docs = [unit(rng.normal(size=(n, 8))) for n in (2, 3, 1)]
    index = Index.create(tmp_path / "ix", dimensions=8)
    index.add(["a", "b", "c"], ids=["a", "b", "c"], vectors=docs)
    reader = snapshot.Reader(index.db, index.path, index.dimensions, index.nbits, threading.RLock())
    first = reader.current()
    assert reader.current() is first  # nothing committed: the same snapshot
    index.update(["b"], ["b2"], vectors=[docs[0]])
    index.delete(["c"])
    now = reader.current()
    assert now is not first and now.version == first.version + 2
    assert now.raw and now.n_centroids == 0
    assert now.docs.tolist() == [0, 1, 2, 3] and now.lengths.tolist() == [2, 3, 1, 2]
    assert now.offsets.tolist() == [0, 2, 5, 6]
    assert now.live.tolist() == [True, False, False, True] and now.ids.tolist() == ["a", "", "", "b"]
    stored = now.decode(now.positions(np.array([3])))
    assert np.array_equal(stored, docs[0].astype(np.float16).astype(np.float32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        now.version = 0  # type: ignore[misc]
    assert snapshot.problems(index.db, index.path, index.dimensions, index.nbits) == []


def test_token_lists_group_each_segment_by_centroid() -> None:
    """A segment in document order (written before format 4) is copied into cluster order for the
    scan; a clustered one is used as stored, from its own arrays."""
    codec = Codec(np.eye(4, 8, dtype=np.float32), np.eye(8, dtype=np.float32), np.zeros((2, 256, 4)), 2, 0.0)
    # residual bytes number the tokens, so the copy's order shows
    old = Segment(
        "seg-a",
        np.array([0, 1]),
        np.array([3, 1]),
        codes=np.array([1, 1, 3, 0], np.uint16),
        residuals=np.arange(8, dtype=np.uint8).reshape(4, 2),
    )
    new = Segment.compressed(
        "cseg-b",
        np.array([2]),
        np.array([2]),
        np.array([3, 2], np.uint16),
        np.arange(8, 12, dtype=np.uint8).reshape(2, 2),
        4,
    )
    first, second = TokenLists.build(codec, [old, new]).segments
    assert first.ptr.tolist() == [0, 1, 3, 3, 4] and first.residuals[:, 0].tolist() == [6, 0, 2, 4]
    assert first.entries.tolist() == [1, 0, 0, 0] and first.base == 0
    assert second.ptr.tolist() == [0, 0, 0, 1, 2] and second.residuals[:, 0].tolist() == [10, 8]
    assert second.entries.tolist() == [0, 0] and second.base == 2 and second.residuals is new.residuals
    # document order back: entry 0's tokens by centroid, as (code, residual row)
    codes, rows = new.tokens(np.array([0, 1]))
    assert codes.tolist() == [2, 3] and rows[:, 0].tolist() == [10, 8]
