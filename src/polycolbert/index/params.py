"""The one place search parameters are derived from ``k`` and the index size.

Cost model (2 CPU threads): scoring every live token costs about ``tokens x dims`` multiply-adds per
query row (about 0.09 ms per 1,000 tokens for a 32-row query, once decoded); the cluster scan costs the
centroid scores, one table read per residual byte of the tokens in ``nprobe`` clusters per query row,
and the exact re-rank of ``ndecode`` documents (2-3 ms at 20k-160k tokens). Below
``BRUTE_FORCE_TOKENS`` live tokens brute force over the compressed vectors is both faster and exact
(w.r.t. the compressed vectors), so it is chosen automatically (``benchmarks/search_params.py
--crossover``; docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

# What a caller gets without choosing; the backends, the CLI and the server refer to these names.
NBITS = 2  # residual bits per dimension of a new index (1, 2 or 4)
K = 10  # hits returned per query

BRUTE_FORCE_TOKENS = 30_000  # measured crossover: 27k tokens on xquad-de@mixed
# The cheapest pair whose top 10 agree with ``exhaustive=True`` on >= 98% of scifact's training queries
# (benchmarks/search_params.py; the grid is in docs/benchmarks.md).
NPROBE = 12
NDECODE = 32
# An index keeps exact float16 vectors until it holds this many tokens, then trains its codec on them:
# k-means and the residual buckets need a few tokens per centroid, and a codec fitted to a tiny first
# batch would encode every later token badly (a loss that re-clustering decoded vectors cannot undo).
MIN_CODEC_TOKENS = 8_192
# Re-cluster (``compact``) when new tokens fit the centroids this much worse than the training sample,
# or when the index has grown this many times past the tokens the centroids were trained on.
# A stream into an index without a codec keeps its chunks exact (float16, on disk) until it ends or holds
# this many tokens, then trains the codec once on a sample of all of them: the centroid count and the
# sample then match what one big ``add`` would give (training on the first chunk alone fits the
# centroids to that chunk only). The cap bounds the temporary disk (2 x dims bytes a token).
STREAM_RAW_TOKENS = 4_000_000
DRIFT_THRESHOLD = 1.25
GROWTH_THRESHOLD = 8.0

# Seconds a write waits for another writer's commit before ``IndexBusy`` (``lock_timeout``). Writes hold
# the lock only to commit (encoding and compaction happen before it), so a wait this long means another
# process is stuck or committing a very large stream.
LOCK_TIMEOUT = 30.0

# Streaming builds and compaction (``Index.add_stream``, ``Index.compact``) work through the token
# vectors in chunks so that memory is bounded by this budget (MiB, ``memory_budget_mb``), not by the corpus.
MEMORY_BUDGET_MB = 1024
# Why five: while a chunk is written, four float32 copies of a chunk's worth of tokens are alive at most:
# the caller's current batch and the chunk waiting to be written (at most one chunk each), their
# concatenation, and ``Codec.encode``'s working set, kept to one chunk by ``encode_rows``; the fifth is
# headroom for what does not grow with the chunk (the codec's arrays, each document's Python objects).
# A rebuild holds less: decoded group, concatenation, encode's working set.
CHUNK_COPIES = 5
# ``Codec.train`` clusters at most this many tokens (codec.kmeans samples them), so compaction decodes
# only a sample of this size (capped by the chunk size, floored at MIN_CODEC_TOKENS) to train its codec.
CODEC_SAMPLE_TOKENS = 262_144


def chunk_tokens(memory_budget_mb: float, dimensions: int) -> int:
    """Tokens per chunk (and at most per segment written by a streamed add or a compaction).

    ``budget / (CHUNK_COPIES x 4 bytes x dims)``: 1024 MiB at 128 dims is 419,430 tokens. A document
    longer than that is written as a chunk of its own (documents are never split).
    """
    if isinstance(memory_budget_mb, bool) or not memory_budget_mb > 0:
        raise ValueError(f"memory budget must be a positive number of MiB; got {memory_budget_mb!r}")
    return max(1, int(memory_budget_mb * 2**20) // (CHUNK_COPIES * 4 * dimensions))


def check_lock_timeout(seconds: float) -> float:
    """A lock timeout as float seconds (zero: do not wait), or a ValueError that says what is wrong."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 <= seconds < float("inf"):
        raise ValueError(f"lock_timeout must be a number of seconds >= 0; got {seconds!r}")
    return float(seconds)


def codec_sample_tokens(chunk: int) -> int:
    """Tokens decoded to train a codec: all ``Codec.train`` would look at, at most one chunk's worth,
    but never fewer than ``MIN_CODEC_TOKENS`` (below that a codec encodes badly, whatever the budget)."""
    return max(MIN_CODEC_TOKENS, min(CODEC_SAMPLE_TOKENS, chunk))


def encode_rows(chunk: int, dimensions: int, n_centroids: int) -> int:
    """Rows per ``Codec.encode`` call, so that its working set stays within one chunk's float32 copy.

    Per row, ``Codec.encode`` holds a ``[rows, centroids]`` score block (``4 x centroids`` bytes) and a
    few float32 temporaries of the row (gathered centroid, residual, its rotation or square: about
    ``16 x dims`` bytes); one chunk copy is ``4 x dims x chunk`` bytes.
    """
    return max(1, min(chunk, dimensions * chunk // (n_centroids + 4 * dimensions)))


EXHAUSTIVE = "exhaustive"  # every allowed token decoded and scored
CLUSTERS = "clusters"  # cluster scan, then exact MaxSim on the best few (index/warp.py)


@dataclass(frozen=True)
class SearchParams:
    path: str  # EXHAUSTIVE or CLUSTERS
    nprobe: int  # clusters scanned per distinct query row
    ndecode: int  # best documents by the scan's estimate, decoded and scored exactly

    @property
    def brute_force(self) -> bool:
        return self.path == EXHAUSTIVE


def derive(k: int, live_tokens: int, n_centroids: int, exhaustive: bool = False) -> SearchParams:
    """The cheapest path that stays exact enough: below ``BRUTE_FORCE_TOKENS`` live tokens scoring every
    token is as fast as the scan; above, scan ``nprobe`` clusters per query row and decode the ``ndecode``
    best documents. The values were chosen on scifact's training queries, trading top-10 overlap with
    exhaustive search against latency (docs/benchmarks.md, "Cluster scan").
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if exhaustive or live_tokens <= BRUTE_FORCE_TOKENS or n_centroids == 0:
        return SearchParams(EXHAUSTIVE, n_centroids, 0)
    return SearchParams(CLUSTERS, min(NPROBE, n_centroids), max(NDECODE, 2 * k))
