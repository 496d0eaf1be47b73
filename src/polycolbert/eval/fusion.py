"""Fused systems: ColBERT's ranking re-scored with the dense cosine and BM25 that the same run computed.

One e5 pass yields three signals that fail in different places: ColBERT's token vectors, e5's own pooled
vector and, with no model at all, BM25. A fused system (``colbert-128+dense``, ``colbert-128+bm25``,
``colbert-128+dense+bm25``, the same at 96 and 64) keeps each query's ``depth`` best documents by MaxSim
and ranks them again by

    z(MaxSim) + w_dense * z(dense cosine) + w_bm25 * gate(query) * z(BM25)

where ``z`` normalises one signal over the query's candidates (``"z"``: minus the mean, over the
standard deviation; ``"minmax"``: onto [0, 1]; a signal equal on every candidate contributes 0), or by
weighted reciprocal rank (``"rrf"``: ``w / (60 + rank)`` per signal, ranks among the candidates, a
document BM25 scores 0 has no BM25 rank). Re-ranking ColBERT's candidates is what an index can do with
one extra number per document, so Recall@100 equals ColBERT's.

``gate`` is where BM25 may speak. With ``"script"``, only where the corpus is written in one script (at
least ``ONE_SCRIPT`` of its documents) and the query in that same script. Across scripts BM25 can match
only numbers and names; in a corpus that mixes scripts, and so languages, it ranks documents in the
query's own language above translations of the answer, which is what multilingual retrieval must not do.
Where nothing matches, BM25 is flat over the candidates and adds nothing anyway.

The weights below were chosen on the held-out training pools (``scripts/fusion_lab.py``), never on an
evaluation set: the grid, the pool numbers and the choice are in ``docs/default-model.md``.

>>> normalise(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]), "minmax").tolist()
[[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]]
>>> script_of("Wo wohnt Tom?"), script_of("東京に住んでいる"), script_of("1998")
('LATIN', 'CJK', None)
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from polycolbert.models.spec import MATRYOSHKA_DIMS
from polycolbert.scoring import top_k

SIGNALS = ("dense", "bm25")  # what a fused system adds to ColBERT, in name order
COMBINATIONS = ("dense", "bm25", "dense+bm25")
FUSED_SYSTEMS = tuple(f"colbert-{d}+{combo}" for d in MATRYOSHKA_DIMS for combo in COMBINATIONS)
METHODS = ("z", "minmax", "rrf")
GATES = ("script", "language", "none")  # "language" needs known languages: a lab comparison only
RRF_K = 60  # reciprocal rank constant of Cormack et al. (2009), as the index's hybrid search uses
SCRIPT_SAMPLE = 1000  # characters of each text read to name its script
ONE_SCRIPT = 0.9  # share of a corpus's documents (with letters) in one script for the corpus to have one
MIXED = "mixed"  # what a corpus with no such script (or language) has

Run = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Fusion:
    """How one fused system combines its signals (weights relative to ColBERT's 1)."""

    method: str = "z"
    dense: float = 0.0
    bm25: float = 0.0
    gate: str = "script"
    depth: int = 100  # candidates per query, taken from ColBERT's ranking

    def __post_init__(self) -> None:
        if self.method not in METHODS or self.gate not in GATES:
            raise ValueError(f"method must be one of {METHODS} and gate one of {GATES}")
        if self.dense < 0 or self.bm25 < 0 or self.depth < 1:
            raise ValueError("weights must be >= 0 and depth >= 1")


# The choice of scripts/fusion_lab.py on the nine held-out training pools (docs/default-model.md).
CHOSEN = {
    "dense": Fusion(dense=0.1),
    "bm25": Fusion(bm25=0.3),
    "dense+bm25": Fusion(dense=0.05, bm25=0.3),
}


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


# -- the math: each function takes [queries, candidates] score arrays ----------------------------------
def normalise(scores: np.ndarray, method: str) -> np.ndarray:
    """Each row onto a common scale (``"z"`` or ``"minmax"``); a constant row becomes zeros."""
    scores = np.asarray(scores, dtype=np.float64)
    if method == "z":
        centred = scores - scores.mean(axis=1, keepdims=True)
        spread = scores.std(axis=1, keepdims=True)
    elif method == "minmax":
        centred = scores - scores.min(axis=1, keepdims=True)
        spread = scores.max(axis=1, keepdims=True) - scores.min(axis=1, keepdims=True)
    else:
        raise ValueError(f"unknown normalisation {method!r}")
    # Relative tolerance: float noise in an otherwise constant row must not be blown up to +-1.
    flat = spread <= 1e-9 * np.maximum(np.abs(scores).max(axis=1, keepdims=True), 1e-30)
    return np.where(flat, 0.0, centred / np.where(flat, 1.0, spread))


def reciprocal_ranks(scores: np.ndarray, present: np.ndarray | None = None, k0: int = RRF_K) -> np.ndarray:
    """``1 / (k0 + rank)`` of each entry within its row (rank 1 = best, ties in column order); 0 where
    ``present`` is False (the signal did not retrieve that candidate)."""
    scores = np.asarray(scores)
    out = np.zeros(scores.shape, dtype=np.float64)
    for i, row in enumerate(scores):
        keep = np.arange(len(row)) if present is None else np.flatnonzero(present[i])
        order = keep[top_k(row[keep])]
        out[i, order] = 1.0 / (k0 + np.arange(1, len(order) + 1))
    return out


def fused_scores(
    colbert: np.ndarray, signals: Mapping[str, np.ndarray], weights: Mapping[str, np.ndarray], method: str
) -> np.ndarray:
    """ColBERT's candidate scores plus each signal times its per-query weight, on ``method``'s scale.

    BM25 scores of exactly 0 (no shared term) give no reciprocal rank: BM25 did not retrieve them.
    """
    if method == "rrf":
        total = reciprocal_ranks(colbert)
        for name, scores in signals.items():
            present = scores > 0 if name == "bm25" else None
            total += np.asarray(weights[name])[:, None] * reciprocal_ranks(scores, present)
        return total
    total = normalise(colbert, method)
    for name, scores in signals.items():
        total += np.asarray(weights[name])[:, None] * normalise(scores, method)
    return total


# -- the gate ------------------------------------------------------------------------------------------
_SAME_SCRIPT = {"HIRAGANA": "CJK", "KATAKANA": "CJK"}  # Japanese writes kana and kanji in one text


def script_of(text: str) -> str | None:
    """The script most of a text's letters are written in (the first word of their Unicode names, with
    kana counted as CJK); None when it has no letters."""
    counts: Counter[str] = Counter()
    for char in unicodedata.normalize("NFKC", text[:SCRIPT_SAMPLE]):
        if char.isalpha():
            word = unicodedata.name(char, "").partition(" ")[0]
            if word:
                counts[_SAME_SCRIPT.get(word, word)] += 1
    return counts.most_common(1)[0][0] if counts else None


def dominant(values: Sequence[str | None], share: float = ONE_SCRIPT) -> str | None:
    """The most frequent known value when at least ``share`` of the known values are it, else ``MIXED``;
    None when no value is known."""
    counts = Counter(v for v in values if v is not None)
    if not counts:
        return None
    value, count = counts.most_common(1)[0]
    return value if count >= share * counts.total() else MIXED


def bm25_gate(
    query_texts: Sequence[str],
    corpus_texts: Sequence[str],
    mode: str,
    query_languages: Sequence[str | None] = (),
    doc_languages: Sequence[str | None] = (),
) -> np.ndarray:
    """1.0 for each query whose BM25 may count, else 0.0.

    ``"script"``: the corpus has one script (:func:`dominant`) and the query is written in it (a text
    without letters passes); ``"language"``: the same with the known languages; ``"none"``: always.
    """
    if mode == "none":
        return np.ones(len(query_texts))
    if mode == "script":
        corpus = dominant([script_of(t) for t in corpus_texts])
        mine: Sequence[str | None] = [script_of(t) for t in query_texts]
    elif mode == "language":
        corpus, mine = dominant(doc_languages), query_languages
    else:
        raise ValueError(f"unknown gate {mode!r}")
    if corpus == MIXED:
        return np.zeros(len(mine))
    return np.array([1.0 if corpus is None or q is None or q == corpus else 0.0 for q in mine])


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
