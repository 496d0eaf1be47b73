"""nDCG@10, Recall@100 and MRR@10 computed by ``ir-measures`` (trec_eval's definitions, via pytrec_eval).

Averages are taken over every judged query that has at least one relevant document, including queries a
system returned nothing for (they score 0): dropping them, as a plain trec_eval call over the run would,
flatters a system that abstains.

>>> qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
>>> run = {"q1": {"a": 2.0, "b": 1.0}, "q2": {"a": 2.0, "b": 1.0}}
>>> evaluate(qrels, run)["MRR@10"]
0.75
"""

from __future__ import annotations

import ir_measures
from ir_measures import RR, R, nDCG

from polycolbert.corpus import Qrels, Run

# Report names (what metrics.json and the tables say) -> ir-measures measure objects.
MEASURES = {"nDCG@10": nDCG @ 10, "Recall@100": R @ 100, "MRR@10": RR @ 10}
METRIC_NAMES = tuple(MEASURES)


def _judged(qrels: Qrels) -> list[str]:
    return sorted(qid for qid, judged in qrels.items() if any(g > 0 for g in judged.values()))


def per_query(qrels: Qrels, run: Run) -> dict[str, dict[str, float]]:
    """``{metric: {query: value}}`` for every judged query (0 where the run has nothing for it)."""
    queries = _judged(qrels)
    if not queries:
        raise ValueError("the qrels have no query with a relevant (score > 0) document")
    wanted = set(queries)
    scores: dict[str, dict[str, float]] = {name: dict.fromkeys(queries, 0.0) for name in MEASURES}
    names = {measure: name for name, measure in MEASURES.items()}
    clean_qrels = {qid: dict(qrels[qid]) for qid in queries}
    clean_run = {qid: dict(docs) for qid, docs in run.items() if qid in wanted and docs}
    if clean_run:
        for metric in ir_measures.iter_calc(list(MEASURES.values()), clean_qrels, clean_run):
            if metric.query_id in wanted:
                scores[names[metric.measure]][metric.query_id] = float(metric.value)
    return scores


def evaluate(qrels: Qrels, run: Run) -> dict[str, float]:
    """Mean of each metric over the judged queries."""
    table = per_query(qrels, run)
    return {name: sum(values.values()) / len(values) for name, values in table.items()}
