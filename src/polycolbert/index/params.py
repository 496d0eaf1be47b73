"""The one place search parameters are derived from ``k`` and the index size.

Cost model (2 CPU threads, measured in benchmarks/index.py): decoding and scoring every live token
costs about ``tokens x dims`` multiply-adds per query; the staged path costs the centroid matrix, the
candidate lists and the exact re-rank of ``ndocs`` documents. Below ``BRUTE_FORCE_TOKENS`` live tokens
the staged path's fixed costs dominate and brute force over the compressed vectors is both faster and
exact (w.r.t. the compressed vectors), so it is chosen automatically.
"""

from __future__ import annotations

from dataclasses import dataclass

BRUTE_FORCE_TOKENS = 200_000
# An index keeps exact float16 vectors until it holds this many tokens, then trains its codec on them:
# k-means and the residual buckets need a few tokens per centroid, and a codec fitted to a tiny first
# batch would encode every later token badly (a loss that re-clustering decoded vectors cannot undo).
MIN_CODEC_TOKENS = 8_192
# Re-cluster (``compact``) when new tokens fit the centroids this much worse than the training sample,
# or when the index has grown this many times past the tokens the centroids were trained on.
DRIFT_THRESHOLD = 1.25
GROWTH_THRESHOLD = 8.0


@dataclass(frozen=True)
class SearchParams:
    brute_force: bool
    nprobe: int  # centroids probed per distinct query row
    ndocs: int  # candidates kept after the inverted-list stage, re-scored by full centroid interaction
    ndecode: int  # candidates kept after that, decompressed and scored exactly


def derive(k: int, live_tokens: int, n_centroids: int, exhaustive: bool = False) -> SearchParams:
    """Staged-search parameters (PLAID's stages; values chosen on scifact, see docs/benchmarks.md).

    On scifact (1.9M tokens, 4,096 centroids) probing 4 lists per distinct query row and re-scoring 512
    candidates by centroid interaction: decompressing 128 of them gave nDCG@10 0.6591 at 51 ms per query,
    256 gave 0.6616 at 82 ms (exhaustive fp32: 0.6648), so 256 keeps nDCG within 0.005 of exhaustive.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if exhaustive or live_tokens <= BRUTE_FORCE_TOKENS:
        return SearchParams(True, n_centroids, 0, 0)
    nprobe = 4 if k <= 100 else 8
    return SearchParams(False, min(nprobe, n_centroids), max(512, 4 * k), max(256, k))
