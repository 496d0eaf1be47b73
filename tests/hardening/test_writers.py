"""Writers wait politely: encoding holds no lock, a commit waits at most ``lock_timeout`` for another
writer, and a busy index is ``IndexBusy`` (with a retry hint), never ``database is locked``.

The review's reproduction: the CLI held SQLite's write lock while it encoded a whole file, so a server
write to the same index failed with a 500 after 60.8 s and a CLI writer that waited longer died with a
traceback. Here another process holds the lock for a while (a plain ``BEGIN IMMEDIATE``), writes in
threads use their own connections, and a stream stays "encoding" (its generator blocked) while others
write, read and compact.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from polycolbert.cli import app
from polycolbert.index import DocumentBatch, Index, IndexBusy
from polycolbert.index import params as P
from polycolbert.index.store import get_meta, segments

sys.path.insert(0, str(Path(__file__).parents[1] / "index"))
from index_helpers import HashEncoder

DIMS = 16
HOLDER = textwrap.dedent(
    """
    import sqlite3, sys, time
    db = sqlite3.connect(sys.argv[1], isolation_level=None)
    db.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    db.execute("COMMIT")
    """
)


def unit_docs(n: int, tokens: int, seed: int) -> list[np.ndarray]:
    raw = np.random.default_rng(seed).normal(size=(n, tokens, DIMS)).astype(np.float32)
    return list(raw / np.linalg.norm(raw, axis=2, keepdims=True))


def add(index: Index, prefix: str, n: int, seed: int, tokens: int = 6) -> list[np.ndarray]:
    vectors = unit_docs(n, tokens, seed)
    index.add([prefix] * n, ids=[f"{prefix}{i}" for i in range(n)], vectors=vectors)
    return vectors


@contextmanager
def lock_held(path: Path, seconds: float) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the index's write lock for ``seconds`` (from when this yields)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path / "index.sqlite"), str(seconds)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def ix(tmp_path: Path) -> Path:
    with Index.create(tmp_path / "ix", dimensions=DIMS) as index:
        add(index, "a", 5, seed=1)
    return tmp_path / "ix"


def test_a_write_waits_for_another_writers_commit_then_lands(ix: Path) -> None:
    with Index.open(ix, lock_timeout=30) as index, lock_held(ix, 1.5):
        started = time.monotonic()
        add(index, "b", 3, seed=2)
        waited = time.monotonic() - started
    assert waited >= 1.0
    with Index.open(ix) as index:
        assert len(index) == 8 and index.check() == []


def test_a_short_lock_timeout_gives_index_busy_and_leaves_nothing(ix: Path) -> None:
    with Index.open(ix, lock_timeout=0.3) as index, lock_held(ix, 30):
        for write in (lambda: add(index, "b", 3, seed=2), lambda: index.delete(["a0"]), index.compact):
            started = time.monotonic()
            with pytest.raises(IndexBusy, match=r"index busy: .* for over 0.3 s; retry in 1 s") as caught:
                write()
            assert time.monotonic() - started < 10
            assert caught.value.retry_after == 1.0 and caught.value.folder == ix
        assert len(index) == 5 and index.search(query_vectors=unit_docs(1, 2, 1), k=1)[0][0].id == "a0"
    assert not list((ix / "staging").iterdir())  # each write removed its staging folder
    with Index.open(ix) as index:
        assert len(index) == 5 and index.check() == []
    with pytest.raises(ValueError, match="lock_timeout must be a number of seconds >= 0"):
        Index.open(ix, lock_timeout=-1)


def test_encoding_holds_no_lock_and_blocks_no_reader(ix: Path) -> None:
    """While a stream's next batch is being encoded (its generator blocked), another process-like writer
    commits at once and a search on the same ``Index`` answers; the stream then commits all or nothing."""
    reached, release = threading.Event(), threading.Event()
    streamed = unit_docs(6, 5, seed=3)

    def batches() -> Iterator[DocumentBatch]:
        yield DocumentBatch(["s"] * 3, ids=["s0", "s1", "s2"], vectors=streamed[:3])
        reached.set()
        assert release.wait(60)  # the model encoding the next batch, slowly
        yield DocumentBatch(["s"] * 3, ids=["s3", "s4", "s5"], vectors=streamed[3:])

    with Index.open(ix) as index:
        added: list[int] = []
        thread = threading.Thread(target=lambda: added.append(index.add_stream(batches())))
        thread.start()
        try:
            assert reached.wait(60)
            with Index.open(ix, lock_timeout=0.5) as other:  # IndexBusy if the stream held the lock
                add(other, "o", 2, seed=4)
            started = time.monotonic()
            hits = index.search(query_vectors=[unit_docs(5, 6, 1)[2][:3]], k=1)[0]
            assert hits[0].id == "a2" and time.monotonic() - started < 10
            assert "s0" not in index.existing(["s0"]) and len(index) == 7  # the stream is not visible yet
        finally:
            release.set()
            thread.join(60)
        assert added == [6] and len(index) == 13 and index.check() == []
        assert index.search(query_vectors=[streamed[4][:2]], k=1)[0][0].id == "s4"


def test_writes_and_reads_in_threads_of_one_index(ix: Path) -> None:
    """Threads share one ``Index`` (as the server's do): each write opens its own connection and waits for
    the others' commits, while searches and ``info`` keep answering from the readers' connection."""
    with Index.open(ix) as index:
        version = get_meta(index.db)["version"]
        errors: list[BaseException] = []
        writing = threading.Event()
        query = [unit_docs(5, 6, 1)[3][:3]]

        def writer(t: int) -> None:
            try:
                for b in range(4):
                    add(index, f"t{t}-{b}-", 3, seed=100 * t + b)
            except BaseException as error:  # reported below
                errors.append(error)

        def reader() -> None:
            try:
                while writing.is_set():
                    assert index.search(query_vectors=query, k=1)[0][0].id == "a3"
                    assert index.info()["documents"] >= 5
            except BaseException as error:  # reported below
                errors.append(error)

        writers = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
        readers = [threading.Thread(target=reader) for _ in range(2)]
        writing.set()
        for thread in writers + readers:
            thread.start()
        for thread in writers:
            thread.join(120)
        writing.clear()
        for thread in readers:
            thread.join(120)
        assert not errors, errors
        assert len(index) == 5 + 4 * 4 * 3 and index.check() == []
        assert get_meta(index.db)["version"] == version + 16


@pytest.fixture
def trained(tmp_path: Path) -> tuple[Path, list[np.ndarray]]:
    """An index with a codec (700 documents of 12 tokens)."""
    docs = unit_docs(700, 12, seed=7)
    with Index.create(tmp_path / "trained", dimensions=DIMS) as index:
        index.add([""] * 700, ids=[f"d{i}" for i in range(700)], vectors=docs)
        assert index.info()["centroids"] > 0
    return tmp_path / "trained", docs


def one_codec(index: Index) -> bool:
    codec = get_meta(index.db)["codec"]
    return codec is not None and all(column == codec for _, column in segments(index.db))


def test_a_compaction_prepares_without_the_lock_and_keeps_what_landed_meanwhile(
    trained: tuple[Path, list[np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from polycolbert.index.codec import Codec

    path, docs = trained
    entered, release = threading.Event(), threading.Event()
    train = Codec.train

    def slow_train(*args: object, **kwargs: object) -> Codec:
        entered.set()
        assert release.wait(60)
        return train(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Codec, "train", slow_train)
    with Index.open(path) as index:
        before = get_meta(index.db)["codec"]
        thread = threading.Thread(target=index.compact)
        thread.start()
        try:
            assert entered.wait(60)
            with Index.open(path, lock_timeout=0.5) as other:  # the compaction holds no lock while it trains
                new = add(other, "n", 4, seed=8)
                other.delete(["d0"])
        finally:
            release.set()
            thread.join(120)
        meta = get_meta(index.db)
        assert meta["codec"] != before and meta["compactions"] == 1 and one_codec(index)
        assert index.check() == [] and len(index) == 703 and "d0" not in index.existing(["d0"])
        assert index.search(query_vectors=[new[2][:3]], k=1)[0][0].id == "n2"
        assert index.search(query_vectors=[docs[5][:3]], k=1)[0][0].id == "d5"


def test_a_stream_prepared_against_a_codec_that_a_compaction_replaced_is_re_encoded(
    trained: tuple[Path, list[np.ndarray]],
) -> None:
    path, _ = trained
    reached, release = threading.Event(), threading.Event()
    streamed = unit_docs(10, 8, seed=9)

    def batches() -> Iterator[DocumentBatch]:
        yield DocumentBatch([""] * 5, ids=[f"s{i}" for i in range(5)], vectors=streamed[:5])
        reached.set()
        assert release.wait(60)
        yield DocumentBatch([""] * 5, ids=[f"s{i}" for i in range(5, 10)], vectors=streamed[5:])

    with Index.open(path) as index:
        thread = threading.Thread(target=index.add_stream, args=(batches(),))
        thread.start()
        try:
            assert reached.wait(60)
            with Index.open(path) as other:
                other.compact()  # a new codec lands while the stream prepares with the old one
        finally:
            release.set()
            thread.join(120)
        assert len(index) == 710 and index.check() == [] and one_codec(index)
        assert index.search(query_vectors=[streamed[7][:3]], k=1)[0][0].id == "s7"


def test_the_cli_says_the_index_is_busy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Index, "encoder", lambda self: HashEncoder())
    monkeypatch.setattr(P, "LOCK_TIMEOUT", 0.3)
    Index.create(tmp_path / "ix", model=HashEncoder(), dimensions=16).close()
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"_id": "c", "text": "some words"}\n')
    runner = CliRunner()
    with lock_held(tmp_path / "ix", 30):
        for args in (["add", str(corpus)], ["delete", "c"], ["compact"]):
            result = runner.invoke(app, ["index", args[0], str(tmp_path / "ix"), *args[1:]])
            assert result.exit_code == 2 and "Traceback" not in result.output, result.output
            assert result.output.strip().startswith("error: index busy:"), result.output
    result = runner.invoke(app, ["index", "add", str(tmp_path / "ix"), str(corpus)])
    assert result.exit_code == 0, result.output


def test_cli_lock_timeout_is_refused_for_qdrant_by_name(tmp_path: Path) -> None:
    location = f"qdrant+local://{tmp_path}/q/docs"
    made = CliRunner().invoke(app, ["index", "create", location, "--model", "none", "--dimensions", "8"])
    assert made.exit_code == 0, made.output
    result = CliRunner().invoke(app, ["index", "delete", location, "x", "--lock-timeout", "1"])
    assert result.exit_code == 2 and "lock_timeout applies to embedded index folders" in result.output


def test_the_cli_lock_timeout_option_bounds_the_wait(tmp_path: Path) -> None:
    Index.create(tmp_path / "ix", model=HashEncoder(), dimensions=16).close()
    with lock_held(tmp_path / "ix", 30):
        started = time.monotonic()
        result = CliRunner().invoke(
            app, ["index", "delete", str(tmp_path / "ix"), "c", "--lock-timeout", "0.3"]
        )
        assert result.exit_code == 2 and result.output.startswith("error: index busy:"), result.output
        assert time.monotonic() - started < 20
