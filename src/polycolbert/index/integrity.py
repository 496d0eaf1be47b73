"""What a healthy index looks like: checked cheaply on every snapshot read, fully by ``check``.

Cheap (each new snapshot, and every write for the codec it loads): every file the commit refers to
exists with the size recorded at that commit; each segment's arrays have the shapes and dtypes its row
promises; codec arrays are finite and shaped for the index's dimensions and bits; no centroid code
points past the centroids; raw vectors are finite. Full (``problems``: ``Index.check``, ``polycolbert
index check``): also the SHA-256 of every file against the one recorded, SQLite's own
``integrity_check``, and documents <-> segment entries one to one.

Whatever is wrong surfaces as ``IndexDamaged`` naming the file (never as an empty result or an
``IndexError``). An index written before checksums (format 1) has none recorded: ``problems`` says so,
and the next write or compaction records them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import numpy as np

from polycolbert.index import store
from polycolbert.index.codec import Codec
from polycolbert.index.errors import IndexDamaged
from polycolbert.index.store import SEGMENTS, FileSum, Segment


def load_codec(folder: Path, name: str, dimensions: int, nbits: int) -> Codec:
    """The committed codec ``name``, verified (``IndexDamaged`` otherwise)."""
    codec = store.load_codec(folder, name)
    verify_codec(folder, name, codec, dimensions, nbits)
    return codec


def verify_codec(folder: Path, name: str, codec: Codec, dimensions: int, nbits: int) -> None:
    """Shapes for ``dimensions`` x ``nbits`` and only finite values, in every array of the codec."""

    def damaged(key: str, reason: str) -> IndexDamaged:
        return IndexDamaged(folder / SEGMENTS / f"{name}.{key}.npy", reason, folder)

    books = "codebooks" if (folder / SEGMENTS / f"{name}.codebooks.npy").exists() else "weights"
    groups, per_byte = dimensions * nbits // 8, 8 // nbits
    expected = {
        "centroids": (codec.centroids, None),
        "rotation": (codec.rotation, (dimensions, dimensions)),
        books: (codec.codebooks, (groups, 256, per_byte)),
    }
    for key, (array, shape) in expected.items():
        if key == "centroids":
            if array.ndim != 2 or array.shape[1] != dimensions or len(array) == 0:
                raise damaged(key, f"shape {array.shape}; expected [centroids, {dimensions}]")
        elif array.shape != shape:
            raise damaged(key, f"shape {array.shape}; expected {list(shape or ())}")
        if not np.isfinite(array).all():
            raise damaged(key, "contains NaN or infinite values")
    if codec.nbits != nbits:
        raise damaged("nbits", f"says {codec.nbits} bits; the index has {nbits}")
    if not np.isfinite(codec.residual_mse) or codec.residual_mse < 0:
        raise damaged("residual_mse", f"holds {codec.residual_mse}")


def verify_files(db: sqlite3.Connection, folder: Path) -> None:
    """Every file the committed state refers to exists with its recorded size (the check ``open`` makes:
    one ``stat`` a file; the caller holds a read transaction)."""
    verify_sizes(folder, sorted(store.referenced_files(db, folder)), store.recorded_files(db))


def verify_sizes(folder: Path, files: list[str], recorded: dict[str, FileSum]) -> None:
    """Each file exists (``FileNotFoundError`` otherwise: the caller knows whether a compaction may have
    removed it) with the size recorded at its commit (``IndexDamaged`` otherwise)."""
    for file in files:
        path = folder / SEGMENTS / file
        size = path.stat().st_size
        expected = recorded.get(file)
        if expected is not None and size != expected.bytes:
            raise IndexDamaged(path, f"{size} bytes; its commit recorded {expected.bytes}", folder)


def verify_segment(
    folder: Path,
    seg: Segment,
    n_docs: int,
    n_tokens: int,
    codec: Codec | None,
    dimensions: int,
    nbits: int,
) -> None:
    """The segment's arrays agree with its row (documents, tokens) and with the index's settings; its
    codes point at existing centroids (one pass over 2 bytes a token) and raw vectors are finite."""

    def damaged(key: str, reason: str) -> IndexDamaged:
        return IndexDamaged(folder / SEGMENTS / f"{seg.name}.{key}.npy", reason, folder)

    def expect(key: str, array: np.ndarray, shape: tuple[int, ...], kinds: str) -> None:
        if array.shape != shape or array.dtype.kind not in kinds:
            raise damaged(key, f"holds {array.dtype} {list(array.shape)}; its commit promised {list(shape)}")

    expect("docs", seg.docs, (n_docs,), "iu")
    expect("lengths", seg.lengths, (n_docs,), "iu")
    if n_docs and (int(seg.lengths.min()) < 1 or int(seg.lengths.sum()) != n_tokens):
        raise damaged("lengths", f"token counts do not add up to the segment's {n_tokens} tokens")
    if codec is None:
        assert seg.vectors is not None
        expect("vectors", seg.vectors, (n_tokens, dimensions), "f")
        if not np.isfinite(seg.vectors).all():
            raise damaged("vectors", "contains NaN or infinite values")
        return
    assert seg.residuals is not None
    expect("residuals", seg.residuals, (n_tokens, dimensions * nbits // 8), "u")
    if seg.clustered:
        _verify_clustered(seg, n_docs, n_tokens, len(codec.centroids), expect, damaged)
        return
    assert seg.codes is not None
    expect("codes", seg.codes, (n_tokens,), "iu")
    if n_tokens:
        low, high = int(seg.codes.min()), int(seg.codes.max())
        if low < 0 or high >= len(codec.centroids):
            bad = high if high >= len(codec.centroids) else low
            raise damaged("codes", f"code {bad} points past the {len(codec.centroids)} centroids")


def _verify_clustered(
    seg: Segment,
    n_docs: int,
    n_tokens: int,
    n_centroids: int,
    expect: Callable[[str, np.ndarray, tuple[int, ...], str], None],
    damaged: Callable[[str, str], IndexDamaged],
) -> None:
    """A segment grouped by centroid: ``ptr`` runs from 0 to the token count without going back, and
    ``entries`` names each entry exactly as many times as its length (else a token would be scored for
    the wrong document)."""
    assert seg.ptr is not None and seg.entries is not None
    expect("ptr", seg.ptr, (n_centroids + 1,), "iu")
    expect("entries", seg.entries, (n_tokens,), "iu")
    ptr = np.asarray(seg.ptr, np.int64)
    if ptr[0] != 0 or ptr[-1] != n_tokens or (np.diff(ptr) < 0).any():
        raise damaged("ptr", f"cluster offsets do not run from 0 to the segment's {n_tokens} tokens")
    if n_tokens:
        entries = np.asarray(seg.entries)
        if int(entries.max()) >= n_docs:
            raise damaged("entries", f"entry {int(entries.max())} points past the {n_docs} documents")
        if not np.array_equal(np.bincount(entries, minlength=n_docs), np.asarray(seg.lengths)):
            raise damaged("entries", "tokens per document differ from the recorded lengths")


def checksum_problems(folder: Path, referenced: dict[str, str], recorded: dict[str, FileSum]) -> list[str]:
    """Every referenced file hashed against its recorded SHA-256 (reads every byte of the index)."""
    found: list[str] = []
    unrecorded = 0
    for file in sorted(referenced):
        path = folder / SEGMENTS / file
        expected = recorded.get(file)
        try:
            actual = store.hash_file(path)
        except FileNotFoundError:
            found.append(f"{path}: missing")
            continue
        if expected is None:
            unrecorded += 1
        elif actual != expected:
            found.append(
                f"{path}: contents differ from its commit ({actual.bytes} bytes, sha256 "
                f"{actual.sha256[:16]}; recorded {expected.bytes} bytes, {expected.sha256[:16]})"
            )
    if unrecorded:
        found.append(
            f"checksums not recorded for {unrecorded} of {len(referenced)} files (written before index "
            "format 2); the next write or `polycolbert index compact` records them"
        )
    return found
