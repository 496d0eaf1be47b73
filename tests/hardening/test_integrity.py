"""Corruption is detected and named, never answered with a wrong result.

Replays the hardening review's reproductions on a small compressed index (random unit vectors, 2 bits,
enough tokens for a codec): NaN centroids (search returned [] and ``check()`` said healthy), 4 KB of
flipped residual bytes (never noticed: no checksums), a deleted ``lengths.npy`` ("segments keep
disappearing"), out-of-range codes (``IndexError``), a damaged SQLite file (``DatabaseError``). Each
must now be an ``IndexDamaged`` that names the file, or a problem ``check()`` lists; an index written
before checksums (format 1) still opens and gets them at its next write.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from polycolbert.index import Index, IndexDamaged, check_folder
from polycolbert.index import params as P
from polycolbert.index.store import get_meta
from polycolbert.index.writer import FORMAT_VERSION

DIMS = 16
DOCS = 700
TOKENS = 12  # 8,400 tokens: past params.MIN_CODEC_TOKENS, so the index trains a codec
HINT = r"; run `polycolbert index check "


def unit_docs(n: int, tokens: int, seed: int) -> list[np.ndarray]:
    raw = np.random.default_rng(seed).normal(size=(n, tokens, DIMS)).astype(np.float32)
    return list(raw / np.linalg.norm(raw, axis=2, keepdims=True))


DOC_VECTORS = unit_docs(DOCS, TOKENS, seed=0)
QUERY = [DOC_VECTORS[42][:4]]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert DOCS * TOKENS >= P.MIN_CODEC_TOKENS
    path = tmp_path_factory.mktemp("integrity") / "ix"
    with Index.create(path, dimensions=DIMS, nbits=2) as index:
        index.add([f"text {i}" for i in range(DOCS)], ids=[f"d{i}" for i in range(DOCS)], vectors=DOC_VECTORS)
        assert index.info()["centroids"] > 0 and index.check() == []
        assert index.search(query_vectors=QUERY, k=1)[0][0].id == "d42"
    return path


@pytest.fixture
def ix(built: Path, tmp_path: Path) -> Path:
    shutil.copytree(built, tmp_path / "ix")
    return tmp_path / "ix"


def segment_file(path: Path, key: str) -> Path:
    return next((path / "segments").glob(f"*seg-*.{key}.npy"))


def codec_file(path: Path, key: str) -> Path:
    return next((path / "segments").glob(f"codec-*.{key}.npy"))


def rewrite_same_size(file: Path, change) -> None:  # type: ignore[no-untyped-def]
    """Load an array, change it, save it back: same dtype and shape, so the same size on disk."""
    array = np.array(np.load(file))
    size = file.stat().st_size
    change(array)
    np.save(file, array)
    assert file.stat().st_size == size


def data_offset(file: Path) -> int:
    with open(file, "rb") as handle:
        major, _ = np.lib.format.read_magic(handle)
        read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
        read(handle)
        return handle.tell()


def test_nan_centroids_are_damage_not_an_empty_result(ix: Path) -> None:
    file = codec_file(ix, "centroids")
    rewrite_same_size(file, lambda c: c.fill(np.nan))
    with Index.open(ix) as index:  # sizes match what the commit recorded: it opens
        with pytest.raises(IndexDamaged, match=rf"{file.name}: contains NaN or infinite values{HINT}"):
            index.search(query_vectors=QUERY, k=5)
        problems = index.check()
    assert f"{file}: contains NaN or infinite values" in problems
    assert any(p.startswith(f"{file}: contents differ from its commit") for p in problems)


def test_flipped_residual_bytes_are_found_by_their_checksum(ix: Path) -> None:
    file = segment_file(ix, "residuals")
    start = data_offset(file) + 100
    with open(file, "r+b") as handle:
        handle.seek(start)
        block = bytearray(handle.read(4096))
        assert len(block) == 4096
        handle.seek(start)
        handle.write(bytes(b ^ 0xFF for b in block))
    with Index.open(ix) as index:
        problems = index.check()
    assert len(problems) == 1 and problems[0].startswith(f"{file}: contents differ from its commit")


def test_a_deleted_lengths_file_is_named(ix: Path) -> None:
    file = segment_file(ix, "lengths")
    index = Index.open(ix)  # opened first: its snapshot is read at the first search
    file.unlink()
    with pytest.raises(IndexDamaged, match=rf"{file.name}: missing{HINT}"):
        index.search(query_vectors=QUERY, k=5)
    index.close()
    with pytest.raises(IndexDamaged, match=rf"{file.name}: missing{HINT}{ix}`"):
        Index.open(ix)
    assert check_folder(ix) == [f"{file}: missing"]


def test_out_of_range_entries_are_damage_not_an_index_error(ix: Path) -> None:
    file = segment_file(ix, "entries")

    def past(entries: np.ndarray) -> None:
        entries[:50] = DOCS + 3

    rewrite_same_size(file, past)
    message = f"entry {DOCS + 3} points past the {DOCS} documents"
    with Index.open(ix) as index:
        with pytest.raises(IndexDamaged, match=message):
            index.search(query_vectors=QUERY, k=5)
        problems = index.check()
    assert f"{file}: {message}" in problems


def test_tokens_moved_between_documents_are_damage(ix: Path) -> None:
    """Entries still in range but counting the wrong tokens for a document would score tokens for the
    wrong document: the per-document counts must match the recorded lengths."""
    file = segment_file(ix, "entries")
    rewrite_same_size(file, lambda entries: entries.__setitem__(slice(0, 2), [5, 5]))
    with (
        Index.open(ix) as index,
        pytest.raises(IndexDamaged, match="tokens per document differ from the recorded lengths"),
    ):
        index.search(query_vectors=QUERY, k=5)


def test_cluster_offsets_that_run_backwards_are_damage(ix: Path) -> None:
    file = segment_file(ix, "ptr")
    rewrite_same_size(file, lambda ptr: ptr.__setitem__(3, ptr[-1] + 1))
    with (
        Index.open(ix) as index,
        pytest.raises(IndexDamaged, match=rf"{file.name}: cluster offsets do not run from 0"),
    ):
        index.search(query_vectors=QUERY, k=5)


def test_a_truncated_file_is_named_on_open(ix: Path) -> None:
    file = segment_file(ix, "residuals")
    size = file.stat().st_size
    with open(file, "r+b") as handle:
        handle.truncate(size - 4096)
    with pytest.raises(IndexDamaged, match=rf"{file.name}: {size - 4096} bytes; its commit recorded {size}"):
        Index.open(ix)


def test_a_damaged_database_header_is_named(ix: Path) -> None:
    db = ix / "index.sqlite"
    with open(db, "r+b") as handle:
        handle.write(b"\0" * 100)
    with pytest.raises(IndexDamaged, match=r"index\.sqlite: .*(not a database|malformed)"):
        Index.open(ix)
    problems = check_folder(ix)
    assert len(problems) == 1 and problems[0].startswith(f"{db}: ")


def test_scrambled_database_pages_never_escape_as_sqlite_errors(ix: Path) -> None:
    """Half the database file overwritten: whatever still works works, the rest is ``IndexDamaged``."""
    db = ix / "index.sqlite"
    size = db.stat().st_size
    with open(db, "r+b") as handle:
        handle.seek(size // 2)
        handle.write(np.random.default_rng(1).integers(0, 256, size - size // 2, dtype=np.uint8).tobytes())
    try:
        index = Index.open(ix)
    except IndexDamaged as damage:
        assert "index.sqlite" in str(damage)
        return
    with index:
        calls = {
            "search": lambda: index.search(query_vectors=QUERY, k=5, filter={"n": 1}, hybrid=False),
            "ids": index.ids,
            "info": index.info,
            "len": lambda: len(index),
            "delete": lambda: index.delete(["d1"]),
        }
        for name, call in calls.items():
            try:
                call()
            except IndexDamaged as damage:
                assert "index.sqlite" in str(damage), name
        problems = index.check()
    assert problems and any("index.sqlite" in p for p in problems)


def test_nan_in_raw_vectors_is_damage(tmp_path: Path) -> None:
    with Index.create(tmp_path / "raw", dimensions=DIMS) as index:
        index.add(["a", "b"], ids=["a", "b"], vectors=DOC_VECTORS[:2])
    file = segment_file(tmp_path / "raw", "vectors")
    rewrite_same_size(file, lambda v: v.__setitem__((0, 0), np.nan))
    with (
        Index.open(tmp_path / "raw") as index,
        pytest.raises(IndexDamaged, match=rf"{file.name}: contains NaN or infinite values"),
    ):
        index.search(query_vectors=QUERY, k=1)


def test_an_index_written_before_checksums_opens_and_gets_them_at_its_next_write(ix: Path) -> None:
    with sqlite3.connect(ix / "index.sqlite") as db:  # what format 1 wrote: no files table, no lexicon
        db.execute("DROP TABLE files")
        db.execute("DROP TABLE lexicon")
        db.execute("DROP TABLE scripts")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'format'")
    db.close()
    files = len(list((ix / "segments").iterdir()))
    with Index.open(ix) as index:
        assert index.search(query_vectors=QUERY, k=1)[0][0].id == "d42"
        assert index.check() == [
            f"checksums not recorded for {files} of {files} files (written before index format 2); "
            "the next write or `polycolbert index compact` records them"
        ]
        index.add(["new"], ids=["new"], vectors=unit_docs(1, 5, seed=9))
        assert index.check() == [] and get_meta(index.db)["format"] == FORMAT_VERSION == 4
        assert index.info()["fusion"]["available"] == ["none", "bm25"]  # the lexicon came with the write
        assert index.search(query_vectors=QUERY, k=1)[0][0].id == "d42"
