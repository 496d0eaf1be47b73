"""The embedded index through the ``Backend`` protocol and ``open_backend``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "index"))
from index_helpers import HashEncoder

from polycolbert.backends import Backend, open_backend
from polycolbert.backends.local import LocalBackend


def test_local_backend_round_trip(tmp_path: Path) -> None:
    backend = LocalBackend.open(tmp_path / "ix", model=HashEncoder(), dimensions=16, create=True)
    assert isinstance(backend, Backend)
    ids = backend.add(
        ["red apple", "green pear", "blue sky"], ids=["a", "b", "c"], metadata=[{"c": "r"}, {}, {}]
    )
    assert ids == ["a", "b", "c"]
    assert backend.search(["apple"], k=1)[0][0].id == "a"
    backend.update(["b"], ["red apple pie"], metadata=[{"c": "r"}])
    hits = backend.search(["apple"], k=3, filter={"c": "r"})[0]
    assert sorted(h.id for h in hits) == ["a", "b"]
    assert backend.delete(["a", "zzz"]) == 1
    assert backend.info()["documents"] == 2 and backend.info()["backend"] == "local"
    with pytest.raises(ValueError, match="unknown operator"):
        backend.search(["apple"], filter={"$xor": []})
    backend.close()
    reopened = open_backend(str(tmp_path / "ix"), model=HashEncoder())
    q = HashEncoder().encode_queries(["pie"], 16)
    assert reopened.search([], k=1, query_vectors=[np.asarray(q[0])])[0][0].id == "b"
