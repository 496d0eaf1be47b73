"""Fused evaluation systems: ColBERT's ranking re-scored with the dense cosine and BM25 the same run computed.

``colbert-128+dense``, ``colbert-128+bm25``, ``colbert-128+dense+bm25`` (the same at 96 and 64) keep each
query's ``depth`` best documents by MaxSim and rank them again with the settings and the gate of
:mod:`polycolbert.fusion` (the one home of the math, the gate and the chosen weights, shared with the
index, the Qdrant backend and ``/v1/rerank``). This module only names the systems and runs them over whole
``[queries, documents]`` score matrices.

>>> parse_fused("colbert-96+dense+bm25")
(96, ('dense', 'bm25'))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from polycolbert.fusion import (  # re-exported: the eval's own scripts and tests read them from here
    CHOSEN,
    GATES,
    METHODS,
    Fusion,
    bm25_gate,
    fused_scores,
    normalise,
    reciprocal_ranks,
    script_of,
)
from polycolbert.models.spec import MATRYOSHKA_DIMS
from polycolbert.scoring import top_k

SIGNALS = ("dense", "bm25")  # what a fused system adds to ColBERT, in name order
COMBINATIONS = ("dense", "bm25", "dense+bm25")
FUSED_SYSTEMS = tuple(f"colbert-{d}+{combo}" for d in MATRYOSHKA_DIMS for combo in COMBINATIONS)

Run = dict[str, dict[str, float]]
__all__ = [
    "CHOSEN",
    "COMBINATIONS",
    "FUSED_SYSTEMS",
    "GATES",
    "METHODS",
    "SIGNALS",
    "Fusion",
    "bm25_gate",
    "candidates",
    "components",
    "fused_run",
    "fused_scores",
    "fusion_of",
    "normalise",
    "parse_fused",
    "reciprocal_ranks",
    "script_of",
]


def parse_fused(name: str) -> tuple[int, tuple[str, ...]] | None:
    """``"colbert-128+dense+bm25"`` -> ``(128, ("dense", "bm25"))``; None for a system that is not fused."""
    base, plus, rest = name.partition("+")
    if not plus or not base.startswith("colbert-") or not base[8:].isdigit():
        return None
    signals = tuple(rest.split("+"))
    if "+".join(signals) not in COMBINATIONS:
        return None
    return int(base[8:]), signals


def components(systems: Sequence[str]) -> list[str]:
    """The systems whose scores the fused ones among ``systems`` are computed from."""
    out: list[str] = []
    for name in systems:
        parsed = parse_fused(name)
        if parsed is not None:
            out += [f"colbert-{parsed[0]}", *parsed[1]]
    return list(dict.fromkeys(out))


def fusion_of(name: str) -> Fusion:
    """The chosen settings of a fused system (its weights for signals it does not name are 0)."""
    parsed = parse_fused(name)
    if parsed is None:
        raise ValueError(f"{name!r} is not a fused system")
    return CHOSEN["+".join(parsed[1])]


# -- a fused run -----------------------------------------------------------------------------------------
def candidates(colbert: np.ndarray, depth: int) -> np.ndarray:
    """Each query's ``depth`` best documents by MaxSim, best first (``[queries, depth]`` positions)."""
    return np.stack([top_k(row, depth) for row in colbert]) if len(colbert) else np.zeros((0, 0), int)


def fused_run(
    scores: Mapping[str, np.ndarray],
    fusion: Fusion,
    corpus_ids: Sequence[str],
    query_ids: Sequence[str],
    k: int,
    gate: np.ndarray | None = None,
) -> Run:
    """The fused top-``k`` per query from full ``[queries, documents]`` score matrices.

    ``scores`` holds ``"colbert"`` and each signal to add (``"dense"``, ``"bm25"``); ``gate`` is the
    per-query BM25 gate (:func:`bm25_gate`; all open when None).
    """
    chosen = candidates(scores["colbert"], min(fusion.depth, len(corpus_ids)))
    n = len(query_ids)
    weights = {
        "dense": np.full(n, fusion.dense),
        "bm25": fusion.bm25 * (np.ones(n) if gate is None else gate),
    }
    signals = {name: np.take_along_axis(scores[name], chosen, axis=1) for name in SIGNALS if name in scores}
    total = fused_scores(
        np.take_along_axis(scores["colbert"], chosen, axis=1), signals, weights, fusion.method
    )
    run: Run = {}
    for qid, row, docs in zip(query_ids, total, chosen, strict=True):
        run[qid] = {corpus_ids[docs[j]]: float(row[j]) for j in top_k(row, k).tolist()}
    return run
