"""BackendRegistry: indexes under one root, opened by name, refusing with library errors (no HTTP)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "index"))

from index_helpers import HashEncoder

from polycolbert.backends.registry import BackendRegistry, IndexNotFound, NoIndexRoot
from polycolbert.index.errors import IndexDamaged


def test_create_list_reopen_and_close(tmp_path: Path) -> None:
    registry = BackendRegistry(tmp_path)
    created = registry.create("demo", HashEncoder(), dimensions=32, nbits=2)
    created.add(texts=["alpha beta"], ids=["a"])
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
    for bad in ("../escape", "x\n", "x\ny", "", "-x", "a" * 65):
        with pytest.raises(ValueError, match="use letters, digits"):
            registry.location(bad)
    rootless = BackendRegistry(None)
    assert rootless.names() == []
    with pytest.raises(NoIndexRoot):
        rootless.location("demo")


def test_a_damaged_index_is_reported_beside_the_healthy_ones(tmp_path: Path) -> None:
    registry = BackendRegistry(tmp_path)
    for name in ("good", "truncated", "emptied"):
        registry.create(name, HashEncoder(), dimensions=32, nbits=2).add(texts=["alpha beta"], ids=["a"])
    registry.close()
    database = tmp_path / "truncated" / "index.sqlite"
    database.write_bytes(database.read_bytes()[:1000])
    (tmp_path / "emptied" / "index.sqlite").write_bytes(b"")
    survey = registry.survey()
    assert [(name, info.documents) for name, info in survey.healthy] == [("good", 1)]
    assert [name for name, _ in survey.damaged] == ["emptied", "truncated"]
    assert all(why.startswith("damaged: ") and "/" not in why for _, why in survey.damaged), survey.damaged
    with pytest.raises(IndexDamaged, match=r"index damaged: .*truncated"):
        registry.get("truncated", lambda name: HashEncoder())
    assert registry.get("good", lambda name: HashEncoder()).search(["alpha"], k=1)[0][0].id == "a"
    registry.close()
