"""Streaming build and compaction in bounded memory (``Index.add_stream``, ``memory_budget_mb``).

Budgets here are tiny (about a MiB) so that a few thousand synthetic tokens span many chunks; what is
checked is what the budget promises: many segments, one commit, the same search results, and peak
memory that follows the budget rather than the corpus.
"""

from __future__ import annotations

import json
import shutil
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from index_helpers import HashEncoder, clustered_docs, reference_top, unit
from typer.testing import CliRunner

from polycolbert.cli.index import app
from polycolbert.index import DocumentBatch, Index
from polycolbert.index import params as P
from polycolbert.index.codec import Codec, choose_n_centroids
from polycolbert.index.store import SEGMENTS, get_meta

DIMS = 32
TINY_MB = 0.9  # 1,474 tokens per chunk at 32 dims


def topic_docs(n: int, rng: np.random.Generator, centres: np.ndarray) -> list[np.ndarray]:
    """Documents of 3-24 tokens drawn around fixed topic centres (new noise, same distribution)."""
    docs = []
    for _ in range(n):
        picks = centres[rng.integers(0, len(centres), size=int(rng.integers(3, 25)))]
        docs.append(unit(picks + 0.35 * rng.normal(size=picks.shape)))
    return docs


def batches(docs: list[np.ndarray], size: int, prefix: str = "d") -> Iterator[DocumentBatch]:
    for start in range(0, len(docs), size):
        part = docs[start : start + size]
        ids = [f"{prefix}{start + j}" for j in range(len(part))]
        yield DocumentBatch([""] * len(part), ids=ids, metadata=[{"n": start}] * len(part), vectors=part)


def segment_sizes(index: Index) -> list[int]:
    return [r[0] for r in index.db.execute("SELECT n_tokens FROM segments ORDER BY rowid")]


def files_match_the_commit(index: Index) -> bool:
    """Every file in the segments folder belongs to the committed state, and every such file exists."""
    referenced = {r[0] for r in index.db.execute("SELECT name FROM segments")}
    codec = get_meta(index.db)["codec"]
    on_disk = {f.name.split(".")[0] for f in (index.path / SEGMENTS).iterdir()}
    return on_disk == referenced | ({codec} if codec else set())


def assert_staged_equals_exhaustive(
    index: Index, queries: list[np.ndarray], monkeypatch: pytest.MonkeyPatch, n_docs: int
) -> None:
    """With a budget covering the corpus, the staged path (inverted lists and centroid interaction over
    every segment) must hand the exact stage every document: its ranking IS the exhaustive one."""
    exhaustive = index.search(query_vectors=queries, k=10, exhaustive=True)
    with monkeypatch.context() as m:
        m.setattr(P, "BRUTE_FORCE_TOKENS", 0)
        m.setattr(P, "derive", lambda k, *a: P.SearchParams(P.CLUSTERS, 4, n_docs))
        staged = index.search(query_vectors=queries, k=10)
    for a, b in zip(staged, exhaustive, strict=True):
        assert [h.id for h in a] == [h.id for h in b]
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-4)


def true_maxsim_ratio(index: Index, queries: list[np.ndarray], docs: dict[str, np.ndarray]) -> float:
    """Summed fp32 MaxSim of the exhaustive top-10 over the best possible (1.0 = the exact ranking)."""

    def true(q: np.ndarray, i: str) -> float:
        return float((q @ docs[i].T).max(axis=1).sum())

    found = index.search(query_vectors=queries, k=10, exhaustive=True)
    got = sum(true(q, h.id) for q, hits in zip(queries, found, strict=True) for h in hits)
    return got / sum(true(q, i) for q in queries for i in reference_top(q, docs, 10))


@pytest.fixture(scope="module")
def streamed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[np.ndarray]]:
    """900 documents (about 12,600 tokens) streamed into an empty index in batches of 50 with a budget
    of 1,474 tokens per chunk: raw chunks, the codec trained inside the transaction, compressed chunks.
    Built once: training a codec is the slow part, and the other tests copy the folder."""
    docs = clustered_docs(900, dims=DIMS, seed=5)
    path = tmp_path_factory.mktemp("streamed") / "ix"
    with Index.create(path, dimensions=DIMS, memory_budget_mb=TINY_MB) as index:
        assert index.add_stream(batches(docs, 50)) == 900
    return path, docs


def same_topics(n: int, seed: int) -> list[np.ndarray]:
    """New documents from the distribution of ``clustered_docs(..., seed=5)`` (so no drift)."""
    centres = unit(np.random.default_rng(5).normal(size=(12, DIMS)))
    return topic_docs(n, np.random.default_rng(seed), centres)


def test_streamed_add_across_the_codec_threshold_matches_exhaustive(
    streamed: tuple[Path, list[np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, docs = streamed
    tokens = sum(len(d) for d in docs)
    queries = [d[:3] for d in docs[::45]]
    with Index.open(path, memory_budget_mb=TINY_MB) as index:
        limit = index.chunk_tokens
        assert tokens > P.MIN_CODEC_TOKENS + 2 * limit
        sizes = segment_sizes(index)
        meta = get_meta(index.db)
        # exact chunks until the stream ended, then one codec trained on all of it, re-encoded by chunk
        assert len(sizes) >= tokens // limit and max(sizes) <= limit and sum(sizes) == tokens
        assert meta["clustered_tokens"] == tokens
        assert meta["version"] == 1 and meta["compactions"] == 0
        assert index.check() == [] and files_match_the_commit(index)
        assert_staged_equals_exhaustive(index, queries, monkeypatch, len(docs))
        found = index.search(query_vectors=queries, k=10, exhaustive=True)
        assert [hits[0].id for hits in found] == [f"d{i}" for i in range(0, 900, 45)]
        assert true_maxsim_ratio(index, queries, {f"d{i}": d for i, d in enumerate(docs)}) >= 0.95


def test_chunked_writes_into_a_trained_index_equal_one_segment(
    streamed: tuple[Path, list[np.ndarray]], tmp_path: Path
) -> None:
    """With the codec already trained, chunking changes only how tokens are split into segments:
    a streamed add and one big add of the same vectors give identical search results."""
    shutil.copytree(streamed[0], tmp_path / "a")
    shutil.copytree(streamed[0], tmp_path / "b")
    new = same_topics(300, seed=7)
    queries = [d[:3] for d in new[::15]] + [d[:3] for d in streamed[1][::90]]
    with Index.open(tmp_path / "a", memory_budget_mb=0.2) as a, Index.open(tmp_path / "b") as b:
        segments = len(segment_sizes(b))
        assert a.add_stream(batches(new, 7, prefix="n")) == 300
        b.add([""] * 300, ids=[f"n{i}" for i in range(300)], vectors=new, metadata=[{"n": 0}] * 300)
        assert len(segment_sizes(a)) > segments + 10 and len(segment_sizes(b)) == segments + 1
        meta_a, meta_b = get_meta(a.db), get_meta(b.db)
        assert meta_a["compactions"] == meta_b["compactions"] == 0
        assert meta_a["drift_mse"] == pytest.approx(meta_b["drift_mse"], rel=1e-5)
        for exhaustive in (False, True):
            x = a.search(query_vectors=queries, k=10, exhaustive=exhaustive)
            y = b.search(query_vectors=queries, k=10, exhaustive=exhaustive)
            assert [[(h.id, h.score) for h in r] for r in x] == [[(h.id, h.score) for h in r] for r in y]
        assert a.check() == [] and b.check() == []


def _bad_stream(kind: str, docs: list[np.ndarray], at: int) -> Iterator[DocumentBatch]:
    """Good batches of 60 documents (about 840 tokens) with a bad one at batch ``at``."""
    for number, batch in enumerate(batches(docs, 60, prefix="s"), start=1):
        if number == at:
            vectors = list(batch.vectors or [])
            ids = list(batch.ids or [])
            if kind == "dims":
                vectors[3] = np.ones((4, DIMS // 2), np.float32)
            elif kind == "known id":
                ids[5] = "old7"
            elif kind == "repeated id":
                ids[5] = "s3"  # the first batch's: an earlier chunk of this very transaction
            else:
                raise OSError("the corpus file went away")
            batch = DocumentBatch(batch.texts, ids=ids, metadata=batch.metadata, vectors=vectors)
        yield batch


def _raw_index(path: Path) -> Index:
    """41 committed documents in two raw segments (no codec yet)."""
    old = clustered_docs(40, dims=DIMS, seed=11)
    index = Index.create(path, dimensions=DIMS, memory_budget_mb=TINY_MB)
    index.add([""] * 40, ids=[f"old{i}" for i in range(40)], vectors=old)
    index.add([""], ids=["old-last"], vectors=[old[0]])
    return index


def _assert_unchanged(index: Index, ids: list[str], meta: dict, hits: list) -> None:
    assert index.ids() == ids and get_meta(index.db) == meta
    assert index.check() == [] and files_match_the_commit(index)  # the rollback removed its files
    queries = [v[:3] for v in clustered_docs(5, dims=DIMS, seed=11)]
    assert index.search(query_vectors=queries, k=5) == hits


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("dims", r"batch 5: vectors\[3\] has shape \(4, 16\)"),
        ("known id", r"batch 5: ids already in the index: \['old7'\]"),
        ("repeated id", r"batch 5: ids already in the index: \['s3'\]"),
        ("source fails", "the corpus file went away"),
    ],
)
def test_a_bad_batch_mid_stream_leaves_the_index_as_it_was(tmp_path: Path, kind: str, message: str) -> None:
    """Batch 5 fails after two chunks were written as segments inside the transaction."""
    new = clustered_docs(400, dims=DIMS, seed=12)
    with _raw_index(tmp_path / "ix") as index:
        before = (index.ids(), get_meta(index.db))
        hits = index.search(query_vectors=[v[:3] for v in clustered_docs(5, dims=DIMS, seed=11)], k=5)
        error = OSError if kind == "source fails" else ValueError
        with pytest.raises(error, match=message):
            index.add_stream(_bad_stream(kind, new, at=5))
        _assert_unchanged(index, *before, hits)
        index.add([""], ids=["next"], vectors=[new[0]])  # the next write works and leaves nothing behind
        assert len(index) == 42 and index.check() == [] and files_match_the_commit(index)


def test_a_failure_after_the_codec_was_trained_in_the_transaction_rolls_it_all_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The codec is trained at about batch 12 (once 8,192 tokens are written), which replaces the committed
    raw segments' rows inside the transaction; the failure at batch 15 must bring them (and their files)
    back untouched."""
    trained = spy_on_training(monkeypatch)
    monkeypatch.setattr(P, "STREAM_RAW_TOKENS", P.MIN_CODEC_TOKENS)  # train mid-stream, not at its end
    new = clustered_docs(900, dims=DIMS, seed=12)
    with _raw_index(tmp_path / "ix") as index:
        before = (index.ids(), get_meta(index.db))
        hits = index.search(query_vectors=[v[:3] for v in clustered_docs(5, dims=DIMS, seed=11)], k=5)
        with pytest.raises(ValueError, match=r"batch 15: ids already in the index: \['s3'\]"):
            index.add_stream(_bad_stream("repeated id", new, at=15))
        assert len(trained) == 1 and trained[0] >= P.MIN_CODEC_TOKENS  # trained, then rolled back
        _assert_unchanged(index, *before, hits)


def test_one_big_add_in_chunks_trains_its_codec_on_the_whole_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``add`` has every vector in memory already: the codec trained after its first chunks samples the
    chunks still to come too (and counts them for the centroid count), as one-segment adds did."""
    trained = spy_on_training(monkeypatch)
    docs = same_topics(700, seed=31)
    tokens = sum(len(d) for d in docs)
    with Index.create(tmp_path / "ix", dimensions=DIMS, memory_budget_mb=0.2) as index:
        index.add([""] * 700, ids=[f"d{i}" for i in range(700)], vectors=docs)
        assert len(segment_sizes(index)) >= tokens // index.chunk_tokens and index.check() == []
        assert trained == [min(tokens, P.codec_sample_tokens(index.chunk_tokens))]
        assert get_meta(index.db)["clustered_tokens"] == tokens > P.MIN_CODEC_TOKENS + index.chunk_tokens
        found = index.search(query_vectors=[d[:3] for d in docs[::70]], k=1)
        assert [hits[0].id for hits in found] == [f"d{i}" for i in range(0, 700, 70)]


def test_an_id_repeated_within_one_chunk_is_refused(tmp_path: Path) -> None:
    one = [np.eye(DIMS, dtype=np.float32)[:3]]
    stream = [DocumentBatch(["a"], ids=["a"], vectors=one), DocumentBatch(["b"], ids=["a"], vectors=one)]
    with Index.create(tmp_path / "ix", dimensions=DIMS) as index:
        with pytest.raises(ValueError, match=r"ids given twice: \['a'\]"):
            index.add_stream(stream)
        with pytest.raises(ValueError, match="the stream had no batches"):
            index.add_stream([])
        assert len(index) == 0 and index.check() == []


def spy_on_training(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record how many vectors each ``Codec.train`` call gets."""
    trained_on: list[int] = []
    train = Codec.train

    def spy(vectors: np.ndarray, nbits: int, **kwargs: object) -> Codec:
        trained_on.append(len(vectors))
        return train(vectors, nbits, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Codec, "train", spy)
    return trained_on


def test_compact_with_a_tiny_budget_writes_several_segments(
    streamed: tuple[Path, list[np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(streamed[0], tmp_path / "ix")
    ids = [f"d{i}" for i in range(900)]
    gone = set(ids[::9])
    live = {i: d for i, d in zip(ids, streamed[1], strict=True) if i not in gone}
    live_tokens = sum(len(d) for d in live.values())
    trained_on = spy_on_training(monkeypatch)
    with Index.open(tmp_path / "ix") as index:
        index.delete(sorted(gone))
        index.memory_budget_mb = 0.5
        index.compact()
        limit = index.chunk_tokens
        sizes = segment_sizes(index)
        assert len(sizes) >= live_tokens // limit and max(sizes) <= limit and sum(sizes) == live_tokens
        # the codec saw a sample of decoded tokens (one chunk's worth, floored), not the whole index
        assert trained_on == [P.codec_sample_tokens(limit)] and trained_on[0] < live_tokens
        meta = get_meta(index.db)
        assert meta["clustered_tokens"] == live_tokens and meta["compactions"] == 1
        assert index.check() == [] and files_match_the_commit(index) and set(index.ids()) == set(live)
        queries = [d[:3] for d in list(live.values())[::40]]
        assert_staged_equals_exhaustive(index, queries, monkeypatch, len(live))
        assert true_maxsim_ratio(index, queries, live) >= 0.95


@pytest.fixture
def cli_index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(Index, "encoder", lambda self: HashEncoder())
    Index.create(tmp_path / "ix", model=HashEncoder(), dimensions=16).close()
    return tmp_path / "ix"


def corpus_lines(n: int) -> list[str]:
    return [json.dumps({"_id": f"c{i}", "text": f"word{i} shared topic{i % 7} more words"}) for i in range(n)]


def test_cli_memory_budget_streams_the_file_and_rejects_it_whole(cli_index: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    lines = corpus_lines(400)
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([*lines[:300], "{broken", *lines[300:], lines[7]]) + "\n")
    result = runner.invoke(app, ["add", str(cli_index), str(bad), "--memory-budget", "0.05"])
    assert result.exit_code == 2
    assert "line 301: not valid JSON" in result.output and "line 402: duplicate id 'c7'" in result.output
    with Index.open(cli_index) as index:
        assert len(index) == 0 and not any((cli_index / SEGMENTS).glob("*"))
    good = tmp_path / "good.jsonl"
    good.write_text("\n".join(lines) + "\n")
    result = runner.invoke(app, ["add", str(cli_index), str(good), "--memory-budget", "0.05"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"added": 400, "documents": 400}
    with Index.open(cli_index) as index:
        assert len(segment_sizes(index)) > 5 and index.check() == []  # 163 tokens per chunk at 16 dims
        assert index.search(["word123"], k=1)[0][0].id == "c123"
    again = runner.invoke(app, ["add", str(cli_index), str(good), "--memory-budget", "0.05"])
    assert again.exit_code == 2 and "already in the index" in again.output
    zero = runner.invoke(app, ["add", str(cli_index), str(good), "--memory-budget", "0"])
    assert zero.exit_code == 2 and "memory budget must be a positive number" in zero.output
    help_text = runner.invoke(app, ["add", "--help"]).output
    assert "--memory-budget" in help_text and f"default {P.MEMORY_BUDGET_MB}" in help_text


def test_streamed_add_peak_memory_follows_the_budget_not_the_corpus(
    streamed: tuple[Path, list[np.ndarray]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numpy reports its buffers to tracemalloc: the peak over a streamed add of a corpus ten times the
    budget (in float32) stays under the budget, while holding that corpus at once would not fit in it.
    (Allocations inside faiss are not seen; the index's own arrays are.)"""
    shutil.copytree(streamed[0], tmp_path / "ix")
    monkeypatch.setattr(P, "GROWTH_THRESHOLD", 1e9)  # this measures streaming, not a compaction after it
    monkeypatch.setattr(P, "DRIFT_THRESHOLD", 1e9)
    budget_mb = 1.25
    budget = int(budget_mb * 2**20)
    corpus_tokens = 10 * budget // (4 * DIMS)
    streamed_tokens = 0

    def stream() -> Iterator[DocumentBatch]:
        nonlocal streamed_tokens
        for number in range(10**6):
            if streamed_tokens >= corpus_tokens:
                return
            docs = same_topics(100, seed=number)  # about 1,400 tokens: a batch within one chunk
            streamed_tokens += sum(len(d) for d in docs)
            yield DocumentBatch([""] * 100, ids=[f"n{number}-{j}" for j in range(100)], vectors=docs)

    with Index.open(tmp_path / "ix", memory_budget_mb=budget_mb) as index:
        tracemalloc.start()
        try:
            index.add_stream(stream())
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert index.check() == [] and len(segment_sizes(index)) >= streamed_tokens // index.chunk_tokens
    assert streamed_tokens * 4 * DIMS >= 10 * budget  # the corpus in float32, as a one-segment add held it
    assert peak < budget, f"peak {peak / 2**20:.2f} MiB over the {budget_mb} MiB budget"


def test_a_stream_trains_its_codec_once_on_all_of_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream into an empty index stays exact until it ends, then one codec sees a sample of the whole
    stream and its centroid count follows the whole stream (as one big ``add`` would); past
    ``STREAM_RAW_TOKENS`` the training happens there instead, once."""
    docs = same_topics(700, seed=41)
    tokens = sum(len(d) for d in docs)
    for cap, expect_clustered in ((10**9, tokens), (P.MIN_CODEC_TOKENS, None)):
        trained = spy_on_training(monkeypatch)
        monkeypatch.setattr(P, "STREAM_RAW_TOKENS", cap)
        with Index.create(tmp_path / f"ix{cap}", dimensions=DIMS, memory_budget_mb=0.2) as index:
            index.add_stream(batches(docs, 25))
            clustered = get_meta(index.db)["clustered_tokens"]
            assert len(trained) == 1 and index.check() == []
            if expect_clustered is not None:
                assert clustered == tokens
                assert trained == [min(tokens, P.codec_sample_tokens(index.chunk_tokens))]
                assert index.info()["centroids"] == choose_n_centroids(tokens)
            else:
                assert cap <= clustered < tokens  # trained once the cap was passed, not at the end
            found = index.search(query_vectors=[d[:3] for d in docs[::70]], k=1)
            assert [hits[0].id for hits in found] == [f"d{i}" for i in range(0, 700, 70)]
