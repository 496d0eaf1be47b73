"""Search over a ``Snapshot``: exact MaxSim for small indexes, a cluster scan for big ones, then fusion.

Small indexes (at most ``params.BRUTE_FORCE_TOKENS`` live tokens, or ``exhaustive=True``) decode every
allowed token and score it exactly. Bigger ones scan each query row's nearest clusters straight from
the residual bytes (``warp``: XTR-WARP's candidate stage, compiled) and decode only the best few
documents to score them exactly. Hybrid search fuses that ranking with SQLite FTS5's BM25 ranking by
reciprocal rank. BM25 fusion (``fusion="bm25"``) ranks MaxSim's best ``Fusion.depth`` documents again with
the lexicon's BM25 scores, by the rule and weight of :mod:`polycolbert.fusion` (the one evaluation measured).

Every ranking is ``scoring.top_k`` over candidates put in document-id order first (``best``), so equal
scores fall back to the document id and results never depend on insertion order.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Sequence

import numpy as np

from polycolbert.documents import SearchHit
from polycolbert.filters import Filter
from polycolbert.fusion import CHOSEN, SEARCH_FUSIONS, dominant_of_counts, fuse_bm25, query_passes
from polycolbert.index import params as P
from polycolbert.index import store, warp
from polycolbert.index.snapshot import Snapshot
from polycolbert.lexical import tokenize
from polycolbert.scoring import token_chunks, top_k, without_padding_rows

CHUNK_TOKENS = 1 << 16

Ranked = list[tuple[int, float]]  # (entry, score), best first


def search(
    db: sqlite3.Connection,
    snapshot: Snapshot,
    qs: list[np.ndarray],
    k: int,
    filter: Filter | None = None,
    hybrid_texts: Sequence[str] | None = None,
    exhaustive: bool = False,
    fusion: str = "none",
    fusion_texts: Sequence[str] | None = None,
) -> list[list[SearchHit]]:
    """Top-``k`` hits per query (checked float32 ``[rows, dims]`` arrays), best first; hybrid when the
    query texts are given (one per query); BM25-fused when ``fusion="bm25"`` (with the query texts)."""
    if fusion not in SEARCH_FUSIONS:
        raise ValueError(f"fusion must be one of {', '.join(SEARCH_FUSIONS)}; got {fusion!r}")
    allowed = snapshot.live.copy()
    if filter is not None:
        allowed &= np.isin(snapshot.docs, store.matching(db, filter))
    script: str | None = None
    if fusion == "bm25":
        if fusion_texts is None or len(fusion_texts) != len(qs):
            raise ValueError("BM25 fusion needs the query texts")
        if not store.has_lexicon(db):
            raise ValueError(
                "this index has no BM25 lexicon (it was written before format 3); "
                "any write, or `polycolbert index compact`, adds it"
            )
        script = dominant_of_counts(store.script_counts(db))
        if not any(query_passes(t, script) for t in fusion_texts):
            fusion = "none"  # the gate is closed for every query: the ranking is MaxSim's, at its own cost
    depth = k
    if hybrid_texts is not None:
        depth = max(k, 100)
    if fusion == "bm25":
        depth = max(depth, CHOSEN["bm25"].depth)
    ranked = dense(snapshot, qs, allowed, depth, exhaustive)
    if hybrid_texts is not None:
        ranked = [fuse(db, snapshot, t, r, allowed, depth) for t, r in zip(hybrid_texts, ranked, strict=True)]
    elif fusion == "bm25":
        assert fusion_texts is not None
        ranked = [with_bm25(db, snapshot, t, r, script) for t, r in zip(fusion_texts, ranked, strict=True)]
    return [hits(db, snapshot, r[:k]) for r in ranked]


def with_bm25(
    db: sqlite3.Connection, snapshot: Snapshot, query: str, ranked: Ranked, script: str | None
) -> Ranked:
    """MaxSim's candidates ranked again with their BM25 scores (``fusion.fuse_bm25``; the gate reads the
    corpus's ``script``); ties by document id."""
    if not ranked or not query_passes(query, script):
        return ranked  # nothing to fuse, or the gate is closed: MaxSim's ranking and scores
    entries = np.array([e for e, _ in ranked], dtype=np.int64)
    maxsim = np.array([s for _, s in ranked], dtype=np.float64)
    docs = snapshot.docs[entries]
    found = store.lexicon_scores(db, tokenize(query, None), docs.tolist())
    bm25 = np.array([found.get(int(d), 0.0) for d in docs], dtype=np.float64)
    fused = fuse_bm25(maxsim, bm25, gate_open=True)
    return [(int(entries[i]), float(fused[i])) for i in best(snapshot, fused, entries, len(entries))]


def dense(
    snapshot: Snapshot, qs: list[np.ndarray], allowed: np.ndarray, k: int, exhaustive: bool
) -> list[Ranked]:
    """The ``k`` best allowed entries per query by MaxSim (every token, or the cluster scan when big)."""
    entries = np.flatnonzero(allowed)
    if len(entries) == 0:
        return [[] for _ in qs]
    live_tokens = int(snapshot.lengths[entries].sum())
    p = P.derive(k, live_tokens, snapshot.n_centroids, exhaustive or snapshot.raw)
    distinct = [distinct_rows(q) for q in qs]
    if snapshot.codec is not None:  # compressed tokens are scored in the codec's rotated frame
        rotated = snapshot.codec.to_search_frame(np.concatenate([rows for rows, _ in distinct]))
        bounds = np.cumsum([0] + [len(rows) for rows, _ in distinct])
        distinct = [(rotated[a:b], w) for a, b, (_, w) in zip(bounds[:-1], bounds[1:], distinct, strict=True)]
    if p.brute_force:
        scores = exact(
            snapshot,
            np.concatenate([rows for rows, _ in distinct]),
            [len(rows) for rows, _ in distinct],
            np.concatenate([weights for _, weights in distinct]),
            entries,
            cache=bool(allowed.all()) and live_tokens <= P.BRUTE_FORCE_TOKENS,
        )
        out = []
        for row in scores:
            chosen = best(snapshot, row, entries, k)
            out.append([(int(entries[i]), float(row[i])) for i in chosen])
        return out
    return clustered(snapshot, distinct, allowed, k, p)


def clustered(
    snapshot: Snapshot,
    distinct: list[tuple[np.ndarray, np.ndarray]],
    allowed: np.ndarray,
    k: int,
    p: P.SearchParams,
) -> list[Ranked]:
    """The cluster scan's estimate (``warp``) picks ``ndecode`` documents per query, scored exactly."""
    assert snapshot.codec is not None, "the cluster scan needs a compressed snapshot"
    estimates = warp.candidates(snapshot.codec, snapshot.token_lists, distinct, allowed, p.nprobe)
    keeps = []
    for estimate in estimates:
        pool = np.flatnonzero(np.isfinite(estimate))
        if len(pool) < p.ndecode:  # too few documents hit: the other allowed ones follow, unordered
            estimate = np.where(np.isfinite(estimate), estimate, np.float32(-1e30))
            pool = np.flatnonzero(allowed)
        keeps.append(pool[best(snapshot, estimate[pool], pool, p.ndecode)])
    # Every query's candidates re-ranked exactly in one compiled call (each against its own rows); a
    # document several queries picked is gathered and decoded once.
    docs, doc_of = np.unique(np.concatenate(keeps), return_inverse=True)
    codes, packed = snapshot.tokens.gather(snapshot.positions(docs))
    scores = warp.maxsim(
        snapshot.codec,
        np.concatenate([rows for rows, _ in distinct]),
        [len(rows) for rows, _ in distinct],
        np.concatenate([weights for _, weights in distinct]),
        codes,
        packed,
        snapshot.lengths[docs],
        pairs=(np.repeat(np.arange(len(keeps)), [len(k) for k in keeps]), doc_of),
    )
    out, at = [], 0
    for mine in keeps:
        own = scores[at : at + len(mine)]
        out.append([(int(mine[i]), float(own[i])) for i in best(snapshot, own, mine, k)])
        at += len(mine)
    return out


def exact(
    snapshot: Snapshot,
    q: np.ndarray,
    rows: list[int],
    weights: np.ndarray,
    entries: np.ndarray,
    cache: bool,
) -> np.ndarray:
    """``[queries, entries]`` MaxSim of the queries' stacked distinct ``rows`` against these entries'
    decoded tokens, one chunk at a time (``cache``: all entries, decoded once per snapshot)."""
    lengths = snapshot.lengths[entries]
    decoded_all = snapshot.decoded if cache else None
    out = np.empty((len(rows), len(entries)), dtype=np.float32)
    tok_start = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    for a, b in token_chunks(lengths, CHUNK_TOKENS):
        if decoded_all is None and snapshot.codec is not None:  # decoded and scored in one kernel
            codes, packed = snapshot.tokens.gather(snapshot.positions(entries[a:b]))
            out[:, a:b] = warp.maxsim(snapshot.codec, q, rows, weights, codes, packed, lengths[a:b])
            continue
        if decoded_all is not None:
            block = decoded_all[tok_start[a] : tok_start[b]]
        else:
            block = snapshot.decode(snapshot.positions(entries[a:b]), search_frame=True)
        out[:, a:b] = warp.maxsim_vectors(q, rows, weights, block, lengths[a:b])
    return out


def fuse(
    db: sqlite3.Connection, snapshot: Snapshot, query: str, dense: Ranked, allowed: np.ndarray, depth: int
) -> Ranked:
    """The dense ranking and FTS5's BM25 ranking of the query's words (both cut at ``depth``), fused by
    reciprocal rank; ties by document id."""
    words = re.findall(r"\w+", query)
    keyword: list[int] = []
    if words:
        found = store.keyword_ranked(db, words, depth * 4)
        entry_of = dict(zip(snapshot.docs[allowed].tolist(), np.flatnonzero(allowed).tolist(), strict=True))
        keyword = [entry_of[d] for d in found if d in entry_of][:depth]
    fused = rrf([[e for e, _ in dense], keyword])
    entries = np.fromiter(fused, dtype=np.int64, count=len(fused))
    scores = np.fromiter(fused.values(), dtype=np.float64, count=len(fused))
    return [(int(entries[i]), fused[int(entries[i])]) for i in best(snapshot, scores, entries, len(entries))]


def hits(db: sqlite3.Connection, snapshot: Snapshot, ranked: Ranked) -> list[SearchHit]:
    """The ranked entries as hits (a document deleted after the snapshot is dropped, not returned dead)."""
    if not ranked:
        return []
    docs = [int(snapshot.docs[e]) for e, _ in ranked]
    stored = store.documents(db, docs)
    out = []
    for d, (_, score) in zip(docs, ranked, strict=True):
        if d in stored:
            id_, text, metadata = stored[d]
            out.append(SearchHit(id=id_, score=score, text=text, metadata=metadata))
    return out


def distinct_rows(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A query's distinct rows and how often each occurs: MaxSim sums over rows, so a repeated row
    (queries padded by repetition, or a repeated word) is scored once and counted twice. Zero rows
    (``query_padding="zero"``) score 0 against everything, so they are dropped before any centroid is
    probed for them."""
    rows = without_padding_rows(q)
    slot: dict[bytes, int] = {}
    picks: list[int] = []
    counts: list[int] = []
    for i, row in enumerate(rows):  # a dict of row bytes: np.unique(axis=0) sorts, at 30x the cost
        j = slot.setdefault(row.tobytes(), len(picks))
        if j == len(picks):
            picks.append(i)
            counts.append(0)
        counts[j] += 1
    return np.ascontiguousarray(rows[picks]), np.array(counts, dtype=np.float32)


# ----------------------------------------------------------------- ranking
def best(snapshot: Snapshot, scores: np.ndarray, entries: np.ndarray, k: int) -> np.ndarray:
    """Positions (into ``entries``) of the ``k`` best scores, best first, equal scores by document id."""
    order = np.argsort(snapshot.id_rank[entries], kind="stable")
    return order[top_k(scores[order], k)]


def rrf(rankings: list[list[int]], k0: int = 60) -> dict[int, float]:
    """Reciprocal rank fusion: ``sum 1 / (k0 + rank)`` over the rankings each item appears in."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k0 + rank)
    return fused
