"""The index folder: immutable segment arrays (``.npy``, memory-mapped) and one SQLite database.

This module is the only one that speaks SQL or names files: the schema, every statement (as a named
function the other stages call), the transactions, and the atomic array writes. The other modules
never see a table or a path inside the folder.

Atomic commits: a writer takes SQLite's write lock, writes its new segment files under fresh names and
fsyncs them, then records the segments and their documents in ONE SQLite transaction (a streamed add
writes many segments before that one commit). A process killed before the commit leaves only
unreferenced files (removed by the next writer); killed after, everything
is durable (WAL, ``synchronous=FULL``). Readers see SQLite snapshots, and segment files are never
modified in place, so a reader keeps working while a writer commits.

Tombstones: a segment entry whose document number is no longer in ``docs`` is dead; deleting or updating
removes the row (and its FTS5 entry) in the same transaction, so deleted documents never come back.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from polycolbert.filters import Filter
from polycolbert.index.codec import Codec
from polycolbert.index.filters import compile_filter

DB_NAME = "index.sqlite"
SEGMENTS = "segments"
ARRAYS = ("docs", "lengths", "codes", "residuals")
RAW_ARRAYS = ("docs", "lengths", "vectors")
RAW = "raw"  # the codec column of a raw segment
IN_BATCH = 500  # ids per ``IN (...)`` list (SQLite caps the parameters of one statement)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (name TEXT PRIMARY KEY, codec TEXT NOT NULL, n_docs INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS docs (doc INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT,
    metadata TEXT NOT NULL, segment TEXT NOT NULL, n_tokens INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(text);
"""


# ----------------------------------------------------------------- connection and transactions
def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path / DB_NAME, timeout=60.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


def exists(path: Path) -> bool:
    return (path / DB_NAME).is_file()


def create(db: sqlite3.Connection, **meta: Any) -> None:
    """The schema, and the first meta values in one commit."""
    db.executescript(SCHEMA)
    begin_write(db)
    set_meta(db, **meta)
    commit(db)


def begin_write(db: sqlite3.Connection) -> None:
    """Take SQLite's write lock now (other writers wait for it; readers do not)."""
    db.execute("BEGIN IMMEDIATE")


def commit(db: sqlite3.Connection) -> None:
    db.execute("COMMIT")


def rollback(db: sqlite3.Connection) -> None:
    db.execute("ROLLBACK")


@contextlib.contextmanager
def read_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """One consistent snapshot of the database for the statements inside."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


def integrity_ok(db: sqlite3.Connection) -> bool:
    return bool(db.execute("PRAGMA integrity_check").fetchone()[0] == "ok")


# ----------------------------------------------------------------- meta
def get_meta(db: sqlite3.Connection) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM meta")}


def get_meta_value(db: sqlite3.Connection, key: str) -> Any:
    row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return json.loads(row[0]) if row else None


def set_meta(db: sqlite3.Connection, **values: Any) -> None:
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [(key, json.dumps(value)) for key, value in values.items()],
    )


# ----------------------------------------------------------------- segments table
def segments(db: sqlite3.Connection) -> list[tuple[str, str]]:
    """(name, codec column) of every recorded segment, in the order they were written."""
    return db.execute("SELECT name, codec FROM segments ORDER BY rowid").fetchall()


def segment_names(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM segments")}


def insert_segment(db: sqlite3.Connection, name: str, codec_column: str, n_docs: int, n_tokens: int) -> None:
    db.execute("INSERT INTO segments VALUES (?, ?, ?, ?)", (name, codec_column, n_docs, n_tokens))


def delete_segments(db: sqlite3.Connection) -> None:
    """Forget every segment (their files stay until no commit refers to them)."""
    db.execute("DELETE FROM segments")


def stored_tokens(db: sqlite3.Connection) -> int:
    """Tokens in the recorded segments, dead entries included."""
    return int(db.execute("SELECT COALESCE(SUM(n_tokens), 0) FROM segments").fetchone()[0])


# ----------------------------------------------------------------- documents
class DocumentRow(NamedTuple):
    """One ``docs`` row: the document number, its id, text, metadata, segment and token count."""

    doc: int
    id: str
    text: str
    metadata: dict[str, Any]
    segment: str
    n_tokens: int


def insert_documents(db: sqlite3.Connection, rows: Sequence[DocumentRow]) -> None:
    """The documents' rows and their full-text entries."""
    db.executemany(
        "INSERT INTO docs VALUES (?, ?, ?, ?, ?, ?)",
        [(r.doc, r.id, r.text, json.dumps(r.metadata), r.segment, r.n_tokens) for r in rows],
    )
    db.executemany("INSERT INTO fts (rowid, text) VALUES (?, ?)", [(r.doc, r.text) for r in rows])


def delete_documents(db: sqlite3.Connection, ids: list[str]) -> int:
    """Remove documents (and their full-text entries) by id; returns how many existed."""
    removed = 0
    for start in range(0, len(ids), IN_BATCH):
        part = ids[start : start + IN_BATCH]
        marks = ",".join("?" * len(part))
        db.execute(f"DELETE FROM fts WHERE rowid IN (SELECT doc FROM docs WHERE id IN ({marks}))", part)
        removed += db.execute(f"DELETE FROM docs WHERE id IN ({marks})", part).rowcount
    return removed


def move_documents(db: sqlite3.Connection, segment: str, docs: Iterable[int]) -> None:
    """Record that these documents now live in ``segment`` (a rebuild rewrote them)."""
    db.executemany("UPDATE docs SET segment = ? WHERE doc = ?", ((segment, d) for d in docs))


def existing_ids(db: sqlite3.Connection, ids: list[str]) -> list[str]:
    """Which of these ids are stored."""
    found: list[str] = []
    for start in range(0, len(ids), IN_BATCH):
        part = ids[start : start + IN_BATCH]
        rows = db.execute(f"SELECT id FROM docs WHERE id IN ({','.join('?' * len(part))})", part)
        found += [r[0] for r in rows]
    return found


def ids(db: sqlite3.Connection) -> list[str]:
    """Every stored id, in document-number order."""
    return [r[0] for r in db.execute("SELECT id FROM docs ORDER BY doc")]


def numbered_ids(db: sqlite3.Connection) -> list[tuple[int, str]]:
    """(document number, id) of every stored document, by number."""
    return db.execute("SELECT doc, id FROM docs ORDER BY doc").fetchall()


def doc_number(db: sqlite3.Connection, id: str) -> int | None:
    row = db.execute("SELECT doc FROM docs WHERE id = ?", (id,)).fetchone()
    return None if row is None else int(row[0])


def live_docs_between(db: sqlite3.Connection, low: int, high: int) -> list[int]:
    """Stored document numbers in ``[low, high]``."""
    return [r[0] for r in db.execute("SELECT doc FROM docs WHERE doc BETWEEN ? AND ?", (low, high))]


def token_counts(db: sqlite3.Connection) -> dict[int, int]:
    """Each stored document's token count, by document number."""
    return dict(db.execute("SELECT doc, n_tokens FROM docs").fetchall())


def count_documents(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM docs").fetchone()[0])


def document_totals(db: sqlite3.Connection) -> tuple[int, int]:
    """Stored documents and their tokens, read together."""
    n_docs, n_tokens = db.execute("SELECT COUNT(*), COALESCE(SUM(n_tokens), 0) FROM docs").fetchone()
    return int(n_docs), int(n_tokens)


def live_tokens(db: sqlite3.Connection) -> int:
    """Tokens of the stored documents (dead segment entries not counted)."""
    return int(db.execute("SELECT COALESCE(SUM(n_tokens), 0) FROM docs").fetchone()[0])


def count_full_text(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM fts").fetchone()[0])


def matching(db: sqlite3.Connection, filter: Filter) -> np.ndarray:
    """Document numbers whose metadata passes the filter."""
    where, args = compile_filter(filter)
    return np.fromiter(
        (r[0] for r in db.execute(f"SELECT doc FROM docs WHERE {where}", args)), dtype=np.int64
    )


def keyword_ranked(db: sqlite3.Connection, words: list[str], limit: int) -> list[int]:
    """Document numbers containing any of the words, best BM25 first (FTS5's ranking)."""
    match = " OR ".join('"' + w.replace('"', '""') + '"' for w in words)
    rows = db.execute("SELECT rowid FROM fts WHERE fts MATCH ? ORDER BY bm25(fts) LIMIT ?", (match, limit))
    return [r[0] for r in rows]


def documents(db: sqlite3.Connection, docs: list[int]) -> dict[int, tuple[str, str, dict[str, Any]]]:
    """(id, text, metadata) of these document numbers; a number no longer stored is absent."""
    rows = db.execute(
        f"SELECT doc, id, text, metadata FROM docs WHERE doc IN ({','.join('?' * len(docs))})", docs
    )
    return {doc: (id_, text, json.loads(meta)) for doc, id_, text, meta in rows}


# ----------------------------------------------------------------- files
def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_arrays(folder: Path, prefix: str, arrays: dict[str, np.ndarray]) -> None:
    """Write each array durably under its final name (temporary name, fsync, rename, fsync folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    for key, value in arrays.items():
        final = folder / f"{prefix}.{key}.npy"
        tmp = folder / f".{prefix}.{key}.npy.tmp"
        with open(tmp, "wb") as handle:
            np.save(handle, np.asarray(value, order="C"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    _fsync_dir(folder)


def new_name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:16]}"


def write_codec(folder: Path, name: str, codec: Codec) -> None:
    write_arrays(folder / SEGMENTS, name, codec.arrays())


def load_codec(folder: Path, name: str) -> Codec:
    return Codec.load(folder / SEGMENTS, name)


@dataclass
class Segment:
    """One immutable batch of documents: document numbers, token counts, and their token vectors.

    A compressed segment holds centroid codes and packed residuals; a raw one (an index too small to
    train a codec on yet) holds the exact vectors in float16 under ``vectors``.
    """

    name: str
    docs: np.ndarray
    lengths: np.ndarray
    codes: np.ndarray | None = None
    residuals: np.ndarray | None = None
    vectors: np.ndarray | None = None

    @property
    def raw(self) -> bool:
        return self.vectors is not None

    @classmethod
    def load(cls, folder: Path, name: str, raw: bool = False) -> Segment:
        keys = RAW_ARRAYS if raw else ARRAYS
        arrays = {key: np.load(folder / SEGMENTS / f"{name}.{key}.npy", mmap_mode="r") for key in keys}
        return cls(name, **arrays)

    def write(self, folder: Path) -> None:
        keys = RAW_ARRAYS if self.raw else ARRAYS
        write_arrays(folder / SEGMENTS, self.name, {key: getattr(self, key) for key in keys})


def token_positions(offsets: np.ndarray, lengths: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """Concatenated token indices of the given entries (vectorised ``arange`` per entry), for arrays that
    pack each entry's tokens one after another from ``offsets`` on (the segment layout)."""
    lens = lengths[entries]
    starts = offsets[entries]
    total = int(lens.sum())
    shift = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return shift + np.arange(total, dtype=np.int64)


def remove_unreferenced(folder: Path, referenced: set[str]) -> None:
    """Delete files no committed state refers to (left by a killed writer or a finished compaction)."""
    seg_dir = folder / SEGMENTS
    if not seg_dir.exists():
        return
    for file in seg_dir.iterdir():
        name = file.name.lstrip(".").split(".")[0]
        if name not in referenced:
            file.unlink(missing_ok=True)


def disk_bytes(folder: Path) -> dict[str, int]:
    seg_dir = folder / SEGMENTS
    out = {"vectors": 0, "other_arrays": 0, "database": 0}
    for file in seg_dir.iterdir() if seg_dir.exists() else []:
        vector_files = (".codes.npy", ".residuals.npy", ".vectors.npy")
        kind = "vectors" if file.name.endswith(vector_files) else "other_arrays"
        out[kind] += file.stat().st_size
    for file in folder.glob(DB_NAME + "*"):
        out["database"] += file.stat().st_size
    out["total"] = sum(out.values())
    return out
