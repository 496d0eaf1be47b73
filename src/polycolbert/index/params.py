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
    nprobe: int  # centroids probed per query token
    ndocs: int  # candidates kept after centroid interaction, re-ranked exactly


def derive(k: int, live_tokens: int, n_centroids: int, exhaustive: bool = False) -> SearchParams:
    """Staged-search parameters; PLAID's k-tiers, with wider probes because our codes are cheap."""
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"k must be a positive integer; got {k!r}")
    if exhaustive or live_tokens <= BRUTE_FORCE_TOKENS:
        return SearchParams(True, n_centroids, 0)
    if k <= 10:
        nprobe, ndocs = 4, 256
    elif k <= 100:
        nprobe, ndocs = 8, 1024
    else:
        nprobe, ndocs = 16, 4 * k
    return SearchParams(False, min(nprobe, n_centroids), max(ndocs, 4 * k))
