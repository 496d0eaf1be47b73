"""Batch-level bad input on the embedded index: clear ValueErrors, nothing written."""

from __future__ import annotations

import numpy as np
import pytest

from polycolbert.index.index import Index


def test_empty_and_unserialisable_batches(tmp_path):
    index = Index.create(tmp_path / "i", dimensions=8)
    vectors = [np.eye(8, dtype=np.float32)[:3]]
    with pytest.raises(ValueError, match="no documents given"):
        index.add([], vectors=[])
    with pytest.raises(ValueError, match=r"metadata\[0\] is not JSON-serialisable"):
        index.add(["a"], ids=["a"], metadata=[{"when": object()}], vectors=vectors)
    assert len(index) == 0
    index.add(["a"], ids=["a"], metadata=[{"ok": 1}], vectors=vectors)
    assert index.ids() == ["a"]
