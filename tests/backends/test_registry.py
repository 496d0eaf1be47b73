"""BackendRegistry: indexes under one root, opened by name, refusing with library errors (no HTTP)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "index"))

from index_helpers import HashEncoder

from polycolbert.backends.registry import BackendRegistry, IndexNotFound, NoIndexRoot


def test_create_list_reopen_and_close(tmp_path: Path) -> None:
    registry = BackendRegistry(tmp_path)
    created = registry.create("demo", HashEncoder(), dimensions=32, nbits=2)
    created.add(["alpha beta"], ids=["a"])
    registry.close()
    assert registry.names() == ["demo"] and registry.exists("demo") and not registry.exists("other")
    asked: list[str] = []

    def model_for(name: str) -> HashEncoder:
        asked.append(name)
        return HashEncoder()

    reopened = registry.get("demo", model_for)
    assert asked == ["hash-test-encoder"]  # the model the index was created with
    assert registry.get("demo", model_for) is reopened and asked == ["hash-test-encoder"]
    assert reopened.search(["alpha"], k=1)[0][0].id == "a"
    assert "demo" in registry.locks
    registry.close()


def test_refusals_are_library_errors(tmp_path: Path) -> None:
    registry = BackendRegistry(tmp_path)
    with pytest.raises(IndexNotFound, match="No index named 'absent'"):
        registry.get("absent", lambda name: HashEncoder())
    with pytest.raises(ValueError, match="use letters, digits"):
        registry.location("../escape")
    rootless = BackendRegistry(None)
    assert rootless.names() == []
    with pytest.raises(NoIndexRoot):
        rootless.location("demo")
