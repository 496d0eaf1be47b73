"""An index written by the release before format 4 (compressed segments in document order) keeps
working: the fixture and its expected results were written by that release itself
(``scripts/make_legacy_index.py``), so the oracle is the old code's own output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from polycolbert.index import Index, IndexDamaged
from polycolbert.index import params as P
from polycolbert.index.store import get_meta
from polycolbert.index.writer import FORMAT_VERSION

FIXTURE = Path(__file__).parents[1] / "fixtures" / "index-format3"
EXPECTED = json.loads((FIXTURE / "expected.json").read_text())
QUERIES = [np.array(q, dtype=np.float32) for q in EXPECTED["queries"]]


@pytest.fixture
def old(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURE / "index", tmp_path / "ix")
    return tmp_path / "ix"


def same_hits(got: list, want: list) -> None:
    for row, expected in zip(got, want, strict=True):
        assert [h.id for h in row] == [i for i, _ in expected]
        assert [h.score for h in row] == pytest.approx([s for _, s in expected], abs=1e-5)


def test_a_format3_index_searches_as_the_release_that_wrote_it(
    old: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Index.open(old) as index:
        assert index.check() == [] and get_meta(index.db)["format"] == 3
        assert index.info()["layout"] == {"clustered_segments": 0, "document_order_segments": 2}
        same_hits(index.search(query_vectors=QUERIES, k=5, exhaustive=True), EXPECTED["exhaustive"])
        monkeypatch.setattr(P, "BRUTE_FORCE_TOKENS", 0)  # the cluster scan, through a copy in RAM
        same_hits(index.search(query_vectors=QUERIES, k=5), EXPECTED["scan"])


def test_writes_add_clustered_segments_beside_old_ones_and_compaction_converts_them(
    old: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    with Index.open(old) as index:  # new documents like the old ones: no drift, so no compaction yet
        like = [index.get_vectors(f"d{i}")[:9] for i in range(100, 130)]
    extra = [v + 0.05 * rng.normal(size=v.shape).astype(np.float32) for v in like]
    extra = [(v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32) for v in extra]
    with Index.open(old) as index:
        index.add([f"new {i}" for i in range(30)], ids=[f"n{i}" for i in range(30)], vectors=extra)
        assert index.info()["layout"] == {"clustered_segments": 1, "document_order_segments": 2}
        assert index.check() == [] and get_meta(index.db)["format"] == FORMAT_VERSION == 4
        queries = QUERIES + [extra[4][:3], extra[29][:3]]
        exhaustive = index.search(query_vectors=queries, k=5, exhaustive=True)
        deep = index.search(query_vectors=QUERIES, k=15, exhaustive=True)
        old_only = [[h for h in row if h.id.startswith("d")][:5] for row in deep]
        same_hits(old_only, EXPECTED["exhaustive"])  # the old documents' scores hold
        assert [row[0].id for row in exhaustive[len(QUERIES) :]] == ["n4", "n29"]
        with monkeypatch.context() as patch:  # the scan walks both layouts with one numbering of entries
            patch.setattr(P, "BRUTE_FORCE_TOKENS", 0)
            patch.setattr(P, "NPROBE", 10**6)  # every cluster, every document re-ranked: exact
            patch.setattr(P, "NDECODE", 10**6)
            same_hits(
                index.search(query_vectors=queries, k=5), [[[h.id, h.score] for h in r] for r in exhaustive]
            )
        index.compact()
        assert index.info()["layout"] == {"clustered_segments": 1, "document_order_segments": 0}
        assert index.check() == [] and len(index) == 699 + 30
        again = index.search(query_vectors=queries, k=5, exhaustive=True)
        assert [row[0].id for row in again] == [row[0].id for row in exhaustive]
        for i in ("d0", "d350", "n7"):  # every document still decodes to its own tokens
            assert index.get_vectors(i).shape[0] == (9 if i.startswith("n") else 12)


def test_out_of_range_codes_in_an_old_segment_are_damage(old: Path) -> None:
    file = next((old / "segments").glob("seg-*.codes.npy"))
    codes = np.array(np.load(file))
    codes[:5] = 999
    np.save(file, codes)
    with (
        Index.open(old) as index,
        pytest.raises(IndexDamaged, match="code 999 points past the 256 centroids"),
    ):
        index.search(query_vectors=QUERIES, k=5)
