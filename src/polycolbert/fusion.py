"""Score fusion: ColBERT's candidates ranked again with BM25 (and, in evaluation, e5's dense cosine).

One e5 pass yields ColBERT's token vectors; BM25 needs no model; e5's pooled vector needs its own pass.
They fail in different places, so a search can keep each query's ``depth`` best documents by MaxSim and
rank them again by

    z(MaxSim) + w_dense * z(dense cosine) + w_bm25 * gate(query) * z(BM25)

where ``z`` normalises one signal over the query's candidates (``"z"``: minus the mean, over the
standard deviation; ``"minmax"``: onto [0, 1]; a signal equal on every candidate contributes 0), or by
weighted reciprocal rank (``"rrf"``: ``w / (60 + rank)`` per signal, ranks among the candidates, a
document BM25 scores 0 has no BM25 rank). Re-ranking ColBERT's candidates needs one extra number per
candidate, so the candidates (and Recall@depth) stay ColBERT's.

``gate`` is where BM25 may speak. With ``"script"``, only where the corpus is written in one script (at
least ``ONE_SCRIPT`` of its documents) and the query in that same script. Across scripts BM25 can match
only numbers and names; in a corpus that mixes scripts, and so languages, it ranks documents in the
query's own language above translations of the answer, which is what multilingual retrieval must not do.
Where nothing matches, BM25 is flat over the candidates and adds nothing anyway.

This module is the one home of that rule and of the chosen weights: ``polycolbert eval``'s fused systems,
the embedded index's ``fusion="bm25"``, the Qdrant backend and ``/v1/rerank`` all call it. The weights
were chosen on the held-out training pools (``scripts/fusion_lab.py``), never on an evaluation set: the
grid, the pool numbers and the choice are in ``docs/default-model.md``; the evaluation in
``docs/quality.md``.

>>> normalise(np.array([[1.0, 2.0, 3.0], [5.0, 5.0, 5.0]]), "minmax").tolist()
[[0.0, 0.5, 1.0], [0.0, 0.0, 0.0]]
>>> script_of("Wo wohnt Tom?"), script_of("東京に住んでいる"), script_of("1998")
('LATIN', 'CJK', None)
>>> fuse_bm25(np.array([0.9, 0.8, 0.7]), np.array([0.0, 5.0, 0.0]), gate_open=True).round(3).tolist()
[1.013, 0.424, -1.437]
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from polycolbert.scoring import top_k

METHODS = ("z", "minmax", "rrf")
GATES = ("script", "language", "none")  # "language" needs known languages: a lab comparison only
RRF_K = 60  # reciprocal rank constant of Cormack et al. (2009), as the index's hybrid search uses
SCRIPT_SAMPLE = 1000  # characters of each text read to name its script
ONE_SCRIPT = 0.9  # share of a corpus's documents (with letters) in one script for the corpus to have one
MIXED = "mixed"  # what a corpus with no such script (or language) has
SearchFusion = Literal["none", "bm25"]  # what a search (index, Qdrant, /v1/rerank) may ask for
SEARCH_FUSIONS: tuple[str, ...] = get_args(SearchFusion)


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
    return dominant_of_counts(Counter(values), share)


def dominant_of_counts(counts: Mapping[str | None, int], share: float = ONE_SCRIPT) -> str | None:
    """:func:`dominant` from counts per value (a key of None is an unknown value, not counted)."""
    known = {value: n for value, n in counts.items() if value is not None and n > 0}
    if not known:
        return None
    value = max(known, key=lambda v: known[v])
    return value if known[value] >= share * sum(known.values()) else MIXED


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
        script = dominant([script_of(t) for t in corpus_texts])
        return np.array([1.0 if query_passes(q, script) else 0.0 for q in query_texts])
    if mode != "language":
        raise ValueError(f"unknown gate {mode!r}")
    language = dominant(doc_languages)
    if language == MIXED:
        return np.zeros(len(query_languages))
    return np.array([1.0 if language is None or q is None or q == language else 0.0 for q in query_languages])


# -- one query's candidates, as a search fuses them --------------------------------------------------------
def fuse_bm25(
    colbert: np.ndarray, bm25: np.ndarray, gate_open: bool, fusion: Fusion | None = None
) -> np.ndarray:
    """The fused scores of one query's candidates from their MaxSim and BM25 scores (``CHOSEN["bm25"]``
    unless ``fusion`` says otherwise); MaxSim's z-score alone when the gate is closed."""
    fusion = fusion or CHOSEN["bm25"]
    weight = np.array([fusion.bm25 if gate_open else 0.0])
    colbert = np.asarray(colbert, dtype=np.float64)[None, :]
    bm25 = np.asarray(bm25, dtype=np.float64)[None, :]
    return fused_scores(colbert, {"bm25": bm25}, {"bm25": weight}, fusion.method)[0]


def query_passes(query: str, corpus_script: str | None) -> bool:
    """The script gate for one query against a corpus whose :func:`dominant` script is known."""
    if corpus_script == MIXED:
        return False
    mine = script_of(query)
    return corpus_script is None or mine is None or mine == corpus_script
