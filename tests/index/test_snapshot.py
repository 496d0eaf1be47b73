"""``Snapshot`` (what a reader sees), its ``Reader`` and the inverted file built from it."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
from index_helpers import unit

from polycolbert.index import Index, snapshot
from polycolbert.index.codec import Codec
from polycolbert.index.ivf import InvertedFile


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
    assert now.raw and now.ivf is None and now.n_centroids == 0
    assert now.docs.tolist() == [0, 1, 2, 3] and now.lengths.tolist() == [2, 3, 1, 2]
    assert now.offsets.tolist() == [0, 2, 5, 6]
    assert now.live.tolist() == [True, False, False, True] and now.ids.tolist() == ["a", "", "", "b"]
    stored = now.decode(now.positions(np.array([3])))
    assert np.array_equal(stored, docs[0].astype(np.float16).astype(np.float32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        now.version = 0  # type: ignore[misc]
    assert snapshot.problems(index.db, index.path, index.dimensions, index.nbits) == []


def test_inverted_file_lists_both_directions_once() -> None:
    codec = Codec(np.zeros((4, 8), np.float32), np.eye(8, dtype=np.float32), np.zeros((2, 256, 4)), 2, 0.0)
    codes = np.array([1, 1, 3, 0, 3, 2], np.uint16)  # entries of 3, 1 and 2 tokens
    ivf = InvertedFile.build(codes, np.array([3, 1, 2]), codec)
    members, sizes = ivf.lists(np.array([3, 0, 1]))
    assert members.tolist() == [0, 2, 1, 0] and sizes.tolist() == [2, 1, 1]
    cents, counts = ivf.centroids_of(np.array([2, 0]))
    assert cents.tolist() == [2, 3, 1, 3] and counts.tolist() == [2, 2]
    assert cents.dtype == codec.code_dtype
