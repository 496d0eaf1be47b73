"""The index folder: immutable segment arrays (``.npy``, memory-mapped) and one SQLite database.

This module is the only one that speaks SQL or names files: the schema, every statement (as a named
function the other stages call), the transactions, and the atomic array writes. The other modules
never see a table or a path inside the folder.

Atomic commits: a writer prepares its segment files (fsynced) and document rows in a private staging
folder WITHOUT the write lock (``Staging``; encoding is the slow part), then takes SQLite's write lock,
moves the files into ``segments/`` and records the segments, their documents and every file's size and
SHA-256 in ONE SQLite transaction. A process killed before the commit leaves only unreferenced files
and a dead staging folder (both removed by the next writer); killed after, everything is durable (WAL,
``synchronous=FULL``). Readers see SQLite snapshots, and segment files are never modified in place, so
a reader keeps working while a writer commits.

Waiting: a writer waits at most ``lock_timeout`` seconds for the write lock, then ``IndexBusy``.
Staging folders are claimed with ``flock`` on a lock file, so a writer can tell a live writer's folder
(locked) from a killed one's (the kernel released the lock).

Tombstones: a segment entry whose document number is no longer in ``docs`` is dead; deleting or updating
removes the row (and its FTS5 entries) in the same transaction, so deleted documents never come back.

Two FTS5 tables index the texts: ``fts`` (the raw text, SQLite's tokenizer) for hybrid keyword search, and
``lexicon`` (:func:`polycolbert.lexical.tokenize`'s terms, the same terms evaluation's BM25 uses, so CJK and
Thai get bigrams) for BM25 fusion, with each document's script; ``scripts`` counts documents per script so
the fusion gate reads the corpus's script without a scan. SQLite computes terms and scripts through two
functions registered on every connection (``lexicon_terms``, ``lexicon_script``), inside the statements
that insert and delete documents, so the three tables never disagree.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from polycolbert.filters import Filter
from polycolbert.fusion import script_of
from polycolbert.index import layout
from polycolbert.index.codec import Codec
from polycolbert.index.errors import IndexBusy, IndexDamaged, is_busy, retry_after
from polycolbert.index.filters import compile_filter
from polycolbert.index.params import LOCK_TIMEOUT
from polycolbert.lexical import tokenize

DB_NAME = "index.sqlite"
SEGMENTS = "segments"
STAGING = "staging"
ARRAYS = ("docs", "lengths", "codes", "residuals")  # a compressed segment in document order (format <= 3)
CLUSTERED_ARRAYS = ("docs", "lengths", "ptr", "entries", "residuals")  # grouped by centroid (``layout``)
RAW_ARRAYS = ("docs", "lengths", "vectors")
RAW = "raw"  # the codec column of a raw segment
CLUSTERED = "cseg"  # the name prefix of segments stored grouped by centroid (written since format 4)
IN_BATCH = 500  # ids per ``IN (...)`` list (SQLite caps the parameters of one statement)

LEXICON_TABLES = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS lexicon USING fts5(terms, script UNINDEXED, tokenize='ascii')",
    "CREATE TABLE IF NOT EXISTS scripts (script TEXT PRIMARY KEY, n INTEGER NOT NULL)",
)
LEXICON_SCHEMA = "".join(f"{statement};\n" for statement in LEXICON_TABLES)
FILES_SCHEMA = """CREATE TABLE IF NOT EXISTS files (name TEXT PRIMARY KEY, owner TEXT NOT NULL,
    bytes INTEGER NOT NULL, sha256 TEXT NOT NULL);
"""
SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS segments (name TEXT PRIMARY KEY, codec TEXT NOT NULL, n_docs INTEGER NOT NULL,
    n_tokens INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS docs (doc INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT,
    metadata TEXT NOT NULL, segment TEXT NOT NULL, n_tokens INTEGER NOT NULL);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(text);
"""
    + LEXICON_SCHEMA
    + FILES_SCHEMA
)
NO_SCRIPT = ""  # the ``scripts`` key of documents without letters
STAGED_SCHEMA = """CREATE TABLE rows (local INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, text TEXT,
    metadata TEXT NOT NULL, segment TEXT NOT NULL, n_tokens INTEGER NOT NULL)"""


# ----------------------------------------------------------------- connection and transactions
def connect(path: Path, timeout: float = LOCK_TIMEOUT) -> sqlite3.Connection:
    """A connection that waits up to ``timeout`` seconds for another writer's lock."""
    db = sqlite3.connect(path / DB_NAME, timeout=timeout, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.create_function("lexicon_terms", 1, lexicon_terms, deterministic=True)
    db.create_function("lexicon_script", 1, lexicon_script, deterministic=True)
    return db


def lexicon_terms(text: str | None) -> str:
    """A text's BM25 terms, space-separated (FTS5's ``ascii`` tokenizer splits only there)."""
    return " ".join(tokenize(text or "", None))


def lexicon_script(text: str | None) -> str:
    """A text's script (``NO_SCRIPT`` when it has no letters)."""
    return script_of(text or "") or NO_SCRIPT


def exists(path: Path) -> bool:
    return (path / DB_NAME).is_file()


def create(db: sqlite3.Connection, **meta: Any) -> None:
    """The schema, and the first meta values in one commit."""
    db.executescript(SCHEMA)
    begin_write(db)
    set_meta(db, **meta)
    commit(db)


def begin_write(db: sqlite3.Connection, folder: Path | None = None, timeout: float = LOCK_TIMEOUT) -> None:
    """Take SQLite's write lock now (other writers wait for it, up to their ``timeout``; readers do not).

    Raises ``IndexBusy`` when another writer kept it for the whole ``timeout`` (the connection's)."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if is_busy(error):
            raise IndexBusy(folder or "the index", timeout, retry_after(timeout)) from None
        raise


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


def integrity_problems(db: sqlite3.Connection) -> list[str]:
    """What SQLite's own ``integrity_check`` finds (empty when the database file is sound)."""
    rows = [str(r[0]) for r in db.execute("PRAGMA integrity_check(20)")]
    return [] if rows == ["ok"] else rows


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


def segment_rows(db: sqlite3.Connection) -> list[tuple[str, str, int, int]]:
    """(name, codec column, documents, tokens) of every recorded segment, in the order they were written."""
    return db.execute("SELECT name, codec, n_docs, n_tokens FROM segments ORDER BY rowid").fetchall()


def segment_layouts(db: sqlite3.Connection) -> dict[str, int]:
    """How many compressed segments are stored grouped by centroid, and how many in document order."""
    names = [name for name, column in segments(db) if column != RAW]
    clustered = sum(segment_keys(name, "") == CLUSTERED_ARRAYS for name in names)
    return {"clustered_segments": clustered, "document_order_segments": len(names) - clustered}


def segment_names(db: sqlite3.Connection) -> set[str]:
    return {r[0] for r in db.execute("SELECT name FROM segments")}


def insert_segment(db: sqlite3.Connection, name: str, codec_column: str, n_docs: int, n_tokens: int) -> None:
    db.execute("INSERT INTO segments VALUES (?, ?, ?, ?)", (name, codec_column, n_docs, n_tokens))


def delete_segments(db: sqlite3.Connection, names: Iterable[str] | None = None) -> None:
    """Forget these segments, or every one (their files stay until no commit refers to them)."""
    if names is None:
        db.execute("DELETE FROM segments")
    else:
        db.executemany("DELETE FROM segments WHERE name = ?", ((name,) for name in names))


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
    for start in range(0, len(rows), IN_BATCH):
        part = [r.doc for r in rows[start : start + IN_BATCH]]
        _add_to_lexicon(db, f"SELECT doc, text FROM docs WHERE doc IN ({','.join('?' * len(part))})", part)


def _add_to_lexicon(db: sqlite3.Connection, select_doc_text: str, args: Sequence[Any]) -> None:
    """Lexicon entries and script counts for the (doc, text) rows of ``select_doc_text``."""
    db.execute(
        f"INSERT INTO lexicon (rowid, terms, script) SELECT doc, lexicon_terms(text), lexicon_script(text) "
        f"FROM ({select_doc_text})",
        args,
    )
    _count_scripts(db, f"SELECT doc FROM ({select_doc_text})", args, +1)


def _remove_from_lexicon(db: sqlite3.Connection, select_doc: str, args: Sequence[Any]) -> None:
    """Script counts down and lexicon entries out for the document numbers of ``select_doc``."""
    _count_scripts(db, select_doc, args, -1)
    db.execute(f"DELETE FROM lexicon WHERE rowid IN ({select_doc})", args)


def _count_scripts(db: sqlite3.Connection, select_doc: str, args: Sequence[Any], sign: int) -> None:
    db.execute(
        f"INSERT INTO scripts (script, n) SELECT script, {sign} * COUNT(*) FROM lexicon "
        f"WHERE rowid IN ({select_doc}) GROUP BY script "
        "ON CONFLICT(script) DO UPDATE SET n = n + excluded.n",
        args,
    )


def delete_documents(db: sqlite3.Connection, ids: list[str]) -> int:
    """Remove documents (and their full-text entries) by id; returns how many existed."""
    removed = 0
    for start in range(0, len(ids), IN_BATCH):
        part = ids[start : start + IN_BATCH]
        marks = ",".join("?" * len(part))
        db.execute(f"DELETE FROM fts WHERE rowid IN (SELECT doc FROM docs WHERE id IN ({marks}))", part)
        _remove_from_lexicon(db, f"SELECT doc FROM docs WHERE id IN ({marks})", part)
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


def numbered_ids_of(db: sqlite3.Connection, ids: list[str]) -> list[tuple[str, int]]:
    """(id, document number) of those of these ids that are stored."""
    found: list[tuple[str, int]] = []
    for start in range(0, len(ids), IN_BATCH):
        part = ids[start : start + IN_BATCH]
        marks = ",".join("?" * len(part))
        found += db.execute(f"SELECT id, doc FROM docs WHERE id IN ({marks})", part).fetchall()
    return found


def tokens_of(db: sqlite3.Connection, docs: list[int]) -> int:
    """Tokens of these stored document numbers."""
    total = 0
    for start in range(0, len(docs), IN_BATCH):
        part = docs[start : start + IN_BATCH]
        marks = ",".join("?" * len(part))
        row = db.execute(
            f"SELECT COALESCE(SUM(n_tokens), 0) FROM docs WHERE doc IN ({marks})", part
        ).fetchone()
        total += int(row[0])
    return total


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


def has_lexicon(db: sqlite3.Connection) -> bool:
    """Whether the index has the BM25 lexicon (indexes written before format 3 get it at their next write)."""
    found = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'lexicon'").fetchone()
    return found is not None


def ensure_lexicon(db: sqlite3.Connection) -> None:
    """Create and fill the lexicon of an index written before it (inside the caller's write transaction)."""
    if has_lexicon(db):
        return
    for statement in LEXICON_TABLES:  # not executescript: it would commit the caller's transaction
        db.execute(statement)
    _add_to_lexicon(db, "SELECT doc, text FROM docs", ())


def count_lexicon(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM lexicon").fetchone()[0])


def script_counts(db: sqlite3.Connection) -> dict[str | None, int]:
    """Stored documents per script (None: no letters)."""
    rows = db.execute("SELECT script, n FROM scripts WHERE n > 0").fetchall()
    return {(script or None): int(n) for script, n in rows}


def lexicon_scores(db: sqlite3.Connection, terms: list[str], docs: list[int]) -> dict[int, float]:
    """BM25 (FTS5's, over the whole lexicon) of these document numbers for a query's terms; a document
    that contains none of them is absent."""
    if not terms or not docs:
        return {}
    match = " OR ".join('"' + t.replace('"', '""') + '"' for t in dict.fromkeys(terms))
    out: dict[int, float] = {}
    for start in range(0, len(docs), IN_BATCH):
        part = docs[start : start + IN_BATCH]
        rows = db.execute(
            f"SELECT rowid, -bm25(lexicon) FROM lexicon WHERE lexicon MATCH ? AND rowid IN "
            f"({','.join('?' * len(part))})",
            [match, *part],
        )
        out.update((int(d), float(score)) for d, score in rows)
    return out


def lexicon_bytes(db: sqlite3.Connection) -> int:
    """Bytes of the lexicon's pages (its FTS5 shadow tables and the script counts) in the database."""
    try:
        row = db.execute(
            "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name LIKE 'lexicon%' OR name = 'scripts'"
        ).fetchone()
    except sqlite3.OperationalError:  # SQLite built without the dbstat table
        return 0
    return int(row[0])


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


# ----------------------------------------------------------------- staged documents (at commit)
def attach_staging(db: sqlite3.Connection, staging: Staging) -> None:
    """Make a staging folder's rows readable as ``stage.rows`` (before the write transaction begins)."""
    db.execute("ATTACH DATABASE ? AS stage", (str(staging.rows_path),))


def detach_staging(db: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        db.execute("DETACH DATABASE stage")


def staged_ids_stored(db: sqlite3.Connection, limit: int = 10) -> list[str]:
    """Staged ids that the index already stores (at most ``limit``)."""
    rows = db.execute(
        "SELECT id FROM stage.rows WHERE id IN (SELECT id FROM main.docs) ORDER BY local LIMIT ?", (limit,)
    )
    return [r[0] for r in rows]


def staged_ids_unknown(db: sqlite3.Connection, limit: int = 10) -> list[str]:
    """Staged ids that the index does not store (at most ``limit``)."""
    rows = db.execute(
        "SELECT id FROM stage.rows WHERE id NOT IN (SELECT id FROM main.docs) ORDER BY local LIMIT ?",
        (limit,),
    )
    return [r[0] for r in rows]


def delete_staged_ids(db: sqlite3.Connection) -> None:
    """Remove the stored documents (and their full-text entries) whose ids are staged (an update)."""
    db.execute(
        "DELETE FROM fts WHERE rowid IN (SELECT doc FROM docs WHERE id IN (SELECT id FROM stage.rows))"
    )
    _remove_from_lexicon(db, "SELECT doc FROM docs WHERE id IN (SELECT id FROM stage.rows)", ())
    db.execute("DELETE FROM docs WHERE id IN (SELECT id FROM stage.rows)")


def insert_staged_documents(db: sqlite3.Connection, first: int) -> int:
    """Store the staged rows as documents ``first + local`` (and their full-text entries); how many."""
    db.execute(
        "INSERT INTO main.docs SELECT local + ?, id, text, metadata, segment, n_tokens FROM stage.rows "
        "ORDER BY local",
        (first,),
    )
    db.execute(
        "INSERT INTO main.fts (rowid, text) SELECT local + ?, text FROM stage.rows ORDER BY local", (first,)
    )
    _add_to_lexicon(db, "SELECT local + ? AS doc, text FROM stage.rows", (first,))
    return int(db.execute("SELECT COUNT(*) FROM stage.rows").fetchone()[0])


# ----------------------------------------------------------------- files and their checksums
class FileSum(NamedTuple):
    """A file's size in bytes and SHA-256 (hex), as recorded at the commit that made it referenced."""

    bytes: int
    sha256: str


class _Hashing:
    """A write-only file object that hashes and counts what passes through it (``np.save`` target)."""

    def __init__(self, handle: Any):
        self.handle, self.hash, self.size = handle, hashlib.sha256(), 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.hash.update(view)
        self.size += len(view)
        return int(self.handle.write(view))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_arrays(folder: Path, prefix: str, arrays: dict[str, np.ndarray]) -> dict[str, FileSum]:
    """Write each array durably under its final name (temporary name, fsync, rename, fsync folder);
    returns each file's name and checksum."""
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for key, value in arrays.items():
        final = folder / f"{prefix}.{key}.npy"
        tmp = folder / f".{prefix}.{key}.npy.tmp"
        with open(tmp, "wb") as handle:
            hashing = _Hashing(handle)
            np.save(hashing, np.asarray(value, order="C"))  # type: ignore[arg-type]
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        sums[final.name] = FileSum(hashing.size, hashing.hash.hexdigest())
    _fsync_dir(folder)
    return sums


def hash_file(path: Path) -> FileSum:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
            size += len(block)
    return FileSum(size, digest.hexdigest())


def load_array(path: Path, mmap: bool = True) -> np.ndarray:
    """One ``.npy`` file (memory-mapped); FileNotFoundError when absent, IndexDamaged when unreadable."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError) as error:
        raise IndexDamaged(path, f"unreadable ({error})", path.parent.parent) from None


def segment_keys(name: str, column: str) -> tuple[str, ...]:
    """The arrays of one segment: raw (``column`` is ``RAW``), grouped by centroid (named ``cseg-*``, the
    layout written since format 4) or in document order (older compressed segments)."""
    if column == RAW:
        return RAW_ARRAYS
    return CLUSTERED_ARRAYS if name.startswith(CLUSTERED + "-") else ARRAYS


def segment_files(name: str, column: str) -> list[str]:
    """The file names of one segment (``column``: its codec, or ``RAW``)."""
    return [f"{name}.{key}.npy" for key in segment_keys(name, column)]


def codec_files(folder: Path, name: str) -> list[str]:
    """The file names of one stored codec (either generation of the format: whatever was written)."""
    return sorted(p.name for p in (folder / SEGMENTS).glob(f"{name}.*.npy"))


def referenced_files(db: sqlite3.Connection, folder: Path) -> dict[str, str]:
    """Every file the committed state refers to, with its owner (segment or codec name)."""
    out = {file: name for name, column in segments(db) for file in segment_files(name, column)}
    codec = get_meta(db).get("codec")
    if codec:
        out.update({file: codec for file in codec_files(folder, codec)})
    return out


def has_files_table(db: sqlite3.Connection) -> bool:
    row = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'files'").fetchone()
    return row is not None


def ensure_files_table(db: sqlite3.Connection) -> None:
    """The checksum table (indexes written before format 2 lack it); inside the caller's transaction."""
    db.execute(FILES_SCHEMA)


def recorded_files(db: sqlite3.Connection) -> dict[str, FileSum]:
    """Each recorded file's size and checksum (none for an index written before checksums)."""
    if not has_files_table(db):
        return {}
    rows = db.execute("SELECT name, bytes, sha256 FROM files")
    return {name: FileSum(size, sha) for name, size, sha in rows}


def record_files(db: sqlite3.Connection, owner: str, sums: dict[str, FileSum]) -> None:
    db.executemany(
        "INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?)",
        [(name, owner, s.bytes, s.sha256) for name, s in sums.items()],
    )


def forget_files(db: sqlite3.Connection, keep_owners: set[str]) -> None:
    """Drop the checksums of files whose owner the state being committed no longer refers to."""
    owners = {r[0] for r in db.execute("SELECT DISTINCT owner FROM files")}
    db.executemany("DELETE FROM files WHERE owner = ?", ((o,) for o in owners - keep_owners))


def new_name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:16]}"


def write_codec(folder: Path, name: str, codec: Codec) -> dict[str, FileSum]:
    """Write a codec's arrays into ``folder`` (the segments folder or a staging folder)."""
    return write_arrays(folder, name, codec.arrays())


def load_codec(folder: Path, name: str) -> Codec:
    """The committed codec ``name``: ``FileNotFoundError`` when absent (a compaction may have removed it
    since the caller's snapshot began), ``IndexDamaged`` when unreadable."""
    centroids = folder / SEGMENTS / f"{name}.centroids.npy"
    if not centroids.exists():
        raise FileNotFoundError(2, "No such file or directory", str(centroids))
    try:
        return Codec.load(folder / SEGMENTS, name)
    except (OSError, ValueError, KeyError, EOFError) as error:
        where = folder / SEGMENTS / f"{name}.*.npy"
        raise IndexDamaged(where, f"unreadable codec ({error})", folder) from None


@dataclass
class Segment:
    """One immutable batch of documents: document numbers, token counts, and their token vectors.

    A compressed segment holds its tokens grouped by centroid (``ptr``, ``entries``, ``residuals``: see
    ``layout``) or, written before format 4, in document order (``codes``, ``residuals``); a raw one (an
    index too small to train a codec on yet) holds the exact vectors in float16 under ``vectors``.
    Tokens are addressed by their position in document order either way (:meth:`tokens`).
    """

    name: str
    docs: np.ndarray
    lengths: np.ndarray
    codes: np.ndarray | None = None
    residuals: np.ndarray | None = None
    vectors: np.ndarray | None = None
    ptr: np.ndarray | None = None
    entries: np.ndarray | None = None

    @property
    def raw(self) -> bool:
        return self.vectors is not None

    @property
    def clustered(self) -> bool:
        return self.ptr is not None

    @property
    def n_tokens(self) -> int:
        return int(np.asarray(self.lengths).sum())

    @classmethod
    def compressed(
        cls,
        name: str,
        docs: np.ndarray,
        lengths: np.ndarray,
        codes: np.ndarray,
        residuals: np.ndarray,
        n_centroids: int,
    ) -> Segment:
        """A new compressed segment from its tokens in document order, stored grouped by centroid."""
        ptr, entries, order = layout.cluster_order(codes, lengths, n_centroids)
        rows = np.ascontiguousarray(np.asarray(residuals)[order])
        return cls(name, docs, np.asarray(lengths, np.int32), residuals=rows, ptr=ptr, entries=entries)

    @classmethod
    def load(cls, folder: Path, name: str, raw: bool = False) -> Segment:
        """Memory-map the segment's files in ``folder`` (the segments folder or a staging folder)."""
        keys = segment_keys(name, RAW if raw else "")
        return cls(name, **{key: load_array(folder / f"{name}.{key}.npy") for key in keys})

    def write(self, folder: Path) -> dict[str, FileSum]:
        keys = segment_keys(self.name, RAW if self.raw else "")
        return write_arrays(folder, self.name, {key: getattr(self, key) for key in keys})

    @functools.cached_property
    def rows(self) -> np.ndarray:
        """Stored row of each token in document order (a clustered segment's map back to documents)."""
        assert self.entries is not None, "only a segment grouped by centroid maps rows"
        return layout.rows_by_entry(self.entries)

    def tokens_into(
        self, positions: np.ndarray, slots: np.ndarray, codes: np.ndarray, out: np.ndarray
    ) -> None:
        """The centroid codes and residual rows of the tokens at these document-order positions, into
        ``codes[slots]`` and ``out[slots]`` (read from the memory-mapped files: only these rows)."""
        assert self.residuals is not None, "a raw segment has no codes"
        if self.ptr is None:
            assert self.codes is not None
            codes[slots], out[slots] = self.codes[positions], self.residuals[positions]
            return
        layout.gather_into(self.ptr, self.residuals, self.rows, positions, slots, codes, out)

    def tokens(self, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Centroid codes and residual rows of the tokens at these document-order positions."""
        assert self.residuals is not None, "a raw segment has no codes"
        codes = np.empty(len(positions), dtype=np.int64)
        out = np.empty((len(positions), self.residuals.shape[1]), dtype=np.uint8)
        self.tokens_into(positions, np.arange(len(positions)), codes, out)
        return codes, out


def token_positions(offsets: np.ndarray, lengths: np.ndarray, entries: np.ndarray) -> np.ndarray:
    """Concatenated token indices of the given entries (vectorised ``arange`` per entry), for arrays that
    pack each entry's tokens one after another from ``offsets`` on (the segment layout)."""
    lens = lengths[entries]
    starts = offsets[entries]
    total = int(lens.sum())
    shift = np.repeat(starts - (np.cumsum(lens) - lens), lens)
    return shift + np.arange(total, dtype=np.int64)


# ----------------------------------------------------------------- staging (a write's private folder)
class Staging:
    """A private folder in which one write prepares segment files and document rows without the lock.

    Claimed by an exclusive ``flock`` on ``staging/<name>.lock`` for as long as the write runs; the rows
    wait in a small SQLite file of their own (numbered from 0 in arrival order, so memory stays bounded
    however long the stream), to be copied into the index in the commit.
    """

    def __init__(self, index_folder: Path):
        root = index_folder / STAGING
        root.mkdir(exist_ok=True)
        self.name, self._lock = _claim(root)
        self.folder = root / self.name
        self.folder.mkdir()
        self.rows_path = self.folder / "rows.sqlite"
        self._rows = sqlite3.connect(self.rows_path, isolation_level=None, check_same_thread=False)
        self._rows.execute("PRAGMA journal_mode=OFF")
        self._rows.execute("PRAGMA synchronous=OFF")
        self._rows.execute(STAGED_SCHEMA)
        self.count = 0  # rows staged

    def add_rows(self, rows: Sequence[tuple[str, str, dict[str, Any], str, int]]) -> int:
        """Stage (id, text, metadata, segment, tokens) rows; returns the local number of the first."""
        first = self.count
        self._rows.execute("BEGIN")
        self._rows.executemany(
            "INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?)",
            [(first + i, id_, t, json.dumps(m), seg, n) for i, (id_, t, m, seg, n) in enumerate(rows)],
        )
        self._rows.execute("COMMIT")
        self.count += len(rows)
        return first

    def staged(self, ids: list[str]) -> list[str]:
        """Which of these ids are staged already."""
        found: list[str] = []
        for start in range(0, len(ids), IN_BATCH):
            part = ids[start : start + IN_BATCH]
            rows = self._rows.execute(f"SELECT id FROM rows WHERE id IN ({','.join('?' * len(part))})", part)
            found += [r[0] for r in rows]
        return found

    def move_rows(self, segment: str, first: int, stop: int) -> None:
        """Record that staged rows ``first..stop-1`` now live in ``segment`` (a re-encoding rewrote them)."""
        self._rows.execute(
            "UPDATE rows SET segment = ? WHERE local >= ? AND local < ?", (segment, first, stop)
        )

    def publish(self, names: Iterable[str], segments_folder: Path) -> None:
        """Move these staged files into the segments folder (under the write lock, before the commit)."""
        segments_folder.mkdir(exist_ok=True)
        for name in names:
            os.replace(self.folder / name, segments_folder / name)
        _fsync_dir(segments_folder)

    def close(self) -> None:
        """Delete the folder and release the claim."""
        with contextlib.suppress(sqlite3.Error):
            self._rows.close()
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            (self.folder.parent / f"{self.name}.lock").unlink()
        os.close(self._lock)


def _claim(root: Path) -> tuple[str, int]:
    """A fresh name under ``root`` and the open, exclusively locked descriptor of its lock file."""
    while True:
        name = new_name("write")
        path = root / f"{name}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        with contextlib.suppress(FileNotFoundError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:  # not unlinked by a cleaner meanwhile
                return name, fd
        os.close(fd)


def remove_dead_staging(folder: Path) -> None:
    """Delete the staging folders of writers that died (their lock file is no longer locked)."""
    root = folder / STAGING
    if not root.is_dir():
        return
    for lock in root.glob("*.lock"):
        try:
            fd = os.open(lock, os.O_RDWR)
        except FileNotFoundError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        try:
            if os.stat(lock).st_ino == os.fstat(fd).st_ino:
                shutil.rmtree(root / lock.name[: -len(".lock")], ignore_errors=True)
                lock.unlink()
        except FileNotFoundError:
            pass
        finally:
            os.close(fd)


def remove_unreferenced(folder: Path, referenced: set[str]) -> None:
    """Delete files no committed state refers to (left by a killed writer or a finished compaction), and
    the staging folders of killed writers."""
    seg_dir = folder / SEGMENTS
    if seg_dir.exists():
        for file in seg_dir.iterdir():
            name = file.name.lstrip(".").split(".")[0]
            if name not in referenced:
                file.unlink(missing_ok=True)
    remove_dead_staging(folder)


def disk_bytes(folder: Path) -> dict[str, int]:
    seg_dir = folder / SEGMENTS
    out = {"vectors": 0, "other_arrays": 0, "database": 0}
    for file in seg_dir.iterdir() if seg_dir.exists() else []:
        vector_files = (".codes.npy", ".entries.npy", ".residuals.npy", ".vectors.npy")
        kind = "vectors" if file.name.endswith(vector_files) else "other_arrays"
        out[kind] += file.stat().st_size
    for file in folder.glob(DB_NAME + "*"):
        out["database"] += file.stat().st_size
    out["total"] = sum(out.values())
    return out
