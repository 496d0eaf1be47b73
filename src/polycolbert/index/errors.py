"""The index's own errors: busy (another writer holds the write lock) and damaged (a file is not what
the last commit recorded).

Why typed: callers answer them differently from bad input. The server maps ``IndexBusy`` to 503 with
``Retry-After`` and ``IndexDamaged`` to a clear error naming the file; the CLI prints one ``error:`` line
for either. SQLite's own exceptions never leave the index: ``from_sqlite`` translates them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path


class IndexBusy(RuntimeError):
    """Another writer held the index's write lock for longer than this one was willing to wait."""

    def __init__(self, folder: Path | str, waited: float, retry_after: float, what: str | None = None):
        self.folder, self.waited, self.retry_after = Path(folder), float(waited), float(retry_after)
        what = what or f"another writer held the write lock of {folder} for over {waited:g} s"
        super().__init__(f"index busy: {what}; retry in {retry_after:g} s")


class IndexDamaged(RuntimeError):
    """A file of the index is missing or differs from what its commit recorded (``file``: its path)."""

    def __init__(self, file: Path | str, reason: str, folder: Path | str | None = None):
        self.file, self.reason = str(file), reason
        self.problem = f"{file}: {reason}"  # as ``check`` lists it
        where = f" {folder}" if folder is not None else ""
        super().__init__(f"index damaged: {file}: {reason}; run `polycolbert index check{where}`")


def retry_after(lock_timeout: float) -> float:
    """Seconds a busy caller is told to wait: as long as it waited, between 1 s and a minute."""
    return float(min(max(lock_timeout, 1.0), 60.0))


def is_busy(error: sqlite3.Error) -> bool:
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error).lower()
    return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in text or "busy" in text


def from_sqlite(error: sqlite3.Error, folder: Path, lock_timeout: float) -> Exception:
    """The index error an SQLite exception means: busy, or a damaged database file; else the error itself."""
    if is_busy(error):
        return IndexBusy(folder, lock_timeout, retry_after(lock_timeout))
    name = getattr(error, "sqlite_errorname", "") or ""
    text = str(error).lower()
    damaged = (
        name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB"))
        or type(error) is sqlite3.DatabaseError
        or "disk image is malformed" in text
        or "not a database" in text
        or "no such table" in text
    )
    if damaged:
        return IndexDamaged(folder / "index.sqlite", str(error), folder)
    return error
