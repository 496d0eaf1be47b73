"""The index folder: immutable segment arrays (``.npy``, memory-mapped) and one SQLite database.

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

import json
import os
import sqlite3
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

DB_NAME = "index.sqlite"
SEGMENTS = "segments"
ARRAYS = ("docs", "lengths", "codes", "residuals")
RAW_ARRAYS = ("docs", "lengths", "vectors")
RAW = "raw"  # the codec column of a raw segment

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (name TEXT PRIMARY KEY, codec TEXT NOT NULL, n_docs INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS docs (doc INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT,
    metadata TEXT NOT NULL, segment TEXT NOT NULL, n_tokens INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(text);
"""


def connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path / DB_NAME, timeout=60.0, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    return db


def get_meta(db: sqlite3.Connection) -> dict[str, Any]:
    return {key: json.loads(value) for key, value in db.execute("SELECT key, value FROM meta")}


def set_meta(db: sqlite3.Connection, **values: Any) -> None:
    db.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [(key, json.dumps(value)) for key, value in values.items()],
    )


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
