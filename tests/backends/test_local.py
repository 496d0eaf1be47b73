"""LocalBackend: the Backend protocol over an embedded index folder, with the deterministic hash encoder."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "index"))

from index_helpers import HashEncoder

from polycolbert.backends import Backend, open_backend
from polycolbert.backends.local import LocalBackend

WORDS = [f"w{i}" for i in range(12)]  # a small vocabulary: many shared words, some ties


def _corpus(n: int) -> tuple[list[str], list[str], list[dict]]:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=6)) for _ in range(n)]
    ids = [f"doc{i}" for i in range(n)]
    meta = [{"lang": "de" if i % 3 == 0 else "en", "year": 2000 + i} for i in range(n)]
    return texts, ids, meta


@pytest.fixture
def store(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend.open(tmp_path / "ix", model=HashEncoder(), dimensions=32, create=True)
    texts, ids, meta = _corpus(30)
    backend.add(texts, ids=ids, metadata=meta)
    return backend


def test_is_a_backend_and_reopens(store: LocalBackend, tmp_path: Path) -> None:
    assert isinstance(store, Backend)
    assert (store.model_name, store.dimensions) == ("hash-test-encoder", 32)
    store.close()
    again = open_backend(str(tmp_path / "ix"), model=HashEncoder())
    assert isinstance(again, LocalBackend)
    info = again.info()
    assert info["backend"] == "local" and info["documents"] == 30


def test_search_finds_the_exact_text_first(store: LocalBackend) -> None:
    texts, _, _ = _corpus(30)
    hits = store.search([texts[7], texts[21]], k=3)
    assert [h[0].id for h in hits] == ["doc7", "doc21"]
    assert hits[0][0].text == texts[7] and hits[0][0].metadata["year"] == 2007
    assert all(len(h) == 3 for h in hits)


def test_filter_applies_before_scoring(store: LocalBackend) -> None:
    texts, _, _ = _corpus(30)
    # the best match (doc1, English) is filtered out, yet k German documents still come back
    hits = store.search([texts[1]], k=10, filter={"lang": "de"})[0]
    assert len(hits) == 10 and all(h.metadata["lang"] == "de" for h in hits)
    ranged = store.search([texts[1]], k=30, filter={"year": {"$gte": 2025}, "lang": {"$ne": "de"}})[0]
    assert sorted(h.id for h in ranged) == ["doc25", "doc26", "doc28", "doc29"]
    with pytest.raises(ValueError, match="unknown comparison"):
        store.search(["x"], filter={"year": {"$like": 3}})


def test_update_delete_and_errors(store: LocalBackend) -> None:
    store.update(["doc3"], ["omega omega omega"], metadata=[{"lang": "el"}])
    top = store.search(["omega"], k=1)[0][0]
    assert (top.id, top.metadata) == ("doc3", {"lang": "el"})
    assert store.delete(["doc3", "missing"]) == 1
    hits = store.search(["omega"], k=30)[0]
    assert "doc3" not in {h.id for h in hits} and len(hits) == 29
    with pytest.raises(ValueError, match="already in the index"):
        store.add(["x"], ids=["doc4"])
    with pytest.raises(ValueError, match="unknown ids"):
        store.update(["nope"], ["x"])
    with pytest.raises(ValueError, match="k must be a positive integer"):
        store.search(["x"], k=0)
    with pytest.raises(ValueError, match=r"needs \[tokens, 32\]"):
        store.add(["x"], ids=["new"], vectors=[np.ones((3, 16), np.float32)])


def test_hybrid_fuses_keyword_matches(store: LocalBackend) -> None:
    # "kw" is the only keyword match for "zeppelin" but its vectors point away from the query's, so dense
    # search ranks it last; reciprocal rank fusion (1/61 + 1/91 > 1/61) must lift it to the top.
    away = -HashEncoder().encode_queries(["zeppelin"], dimensions=32)[0]
    store.add(["zeppelin"], ids=["kw"], vectors=[away])
    plain = store.search(["zeppelin"], k=31)[0]
    assert plain[-1].id == "kw"
    hybrid = store.search(["zeppelin"], k=5, hybrid=True)[0]
    assert len(hybrid) == 5 and hybrid[0].id == "kw"
    assert np.isclose(hybrid[0].score, 1 / 61 + 1 / 91)
    assert [h.id for h in hybrid[1:]] == [h.id for h in plain[:4]]
    filtered = store.search(["zeppelin"], k=3, hybrid=True, filter={"lang": "de"})[0]
    assert "kw" not in {h.id for h in filtered} and len(filtered) == 3
