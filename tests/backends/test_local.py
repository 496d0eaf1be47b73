"""What only the embedded index offers behind the protocol: hybrid (keyword + MaxSim) search.

Everything both backends promise is in ``test_contract.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "index"))

from index_helpers import HashEncoder

from polycolbert.backends.local import LocalBackend

WORDS = [f"w{i}" for i in range(12)]


@pytest.fixture
def store(tmp_path: Path) -> LocalBackend:
    backend = LocalBackend.open(tmp_path / "ix", model=HashEncoder(), dimensions=32, create=True)
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=6)) for _ in range(30)]
    metadata = [{"lang": "de" if i % 3 == 0 else "en", "year": 2000 + i} for i in range(30)]
    backend.add(texts=texts, ids=[f"doc{i}" for i in range(30)], metadata=metadata)
    return backend


def test_hybrid_fuses_keyword_matches(store: LocalBackend) -> None:
    # "kw" is the only keyword match for "zeppelin" but its vectors point away from the query's, so dense
    # search ranks it last; reciprocal rank fusion (1/61 + 1/91 > 1/61) must lift it to the top.
    away = -HashEncoder().encode_queries(["zeppelin"], dimensions=32)[0]
    store.add(texts=["zeppelin"], ids=["kw"], vectors=[away])
    plain = store.search(["zeppelin"], k=31)[0]
    assert plain[-1].id == "kw"
    hybrid = store.search(["zeppelin"], k=5, hybrid=True)[0]
    assert len(hybrid) == 5 and hybrid[0].id == "kw"
    assert np.isclose(hybrid[0].score, 1 / 61 + 1 / 91)
    assert [h.id for h in hybrid[1:]] == [h.id for h in plain[:4]]
    filtered = store.search(["zeppelin"], k=3, hybrid=True, filter={"lang": "de"})[0]
    assert "kw" not in {h.id for h in filtered} and len(filtered) == 3
    vectors = HashEncoder().encode_queries(["zeppelin"], dimensions=32)
    assert store.search(["zeppelin"], query_vectors=vectors, k=5, hybrid=True)[0] == hybrid
