"""Metrics against values computed by hand (trec_eval definitions: linear gain, log2(rank + 1) discount)."""

from __future__ import annotations

from math import log2

import pytest

from polycolbert.eval.metrics import evaluate, per_query

QRELS = {
    "q1": {"a": 1, "b": 0, "c": 2},  # graded: c is more relevant than a; b judged non-relevant
    "q2": {"x": 1},
    "q3": {"z": 1},  # the run returns nothing for q3: it must count as 0, not be dropped
    "q4": {"w": 1},  # relevant document only at rank 11
    "q5": {"a": 0},  # no relevant document: not a measurable query
}
RUN = {
    "q1": {"a": 0.9, "d": 0.7, "c": 0.5},  # ranks: a=1, d=2, c=3
    "q2": {"y": 1.0, "x": 0.5},  # x at rank 2
    "q4": {**{f"n{i}": 20.0 - i for i in range(10)}, "w": 1.0},
    "q5": {"a": 1.0},
}


def test_per_query_values_match_hand_computation() -> None:
    table = per_query(QRELS, RUN)
    q1_dcg = 1 / log2(2) + 2 / log2(4)
    q1_idcg = 2 / log2(2) + 1 / log2(3)
    assert table["nDCG@10"]["q1"] == pytest.approx(q1_dcg / q1_idcg)  # 0.7602
    assert table["nDCG@10"]["q2"] == pytest.approx(1 / log2(3))
    assert table["nDCG@10"]["q3"] == 0.0
    assert table["nDCG@10"]["q4"] == 0.0
    assert table["MRR@10"] == {"q1": 1.0, "q2": 0.5, "q3": 0.0, "q4": 0.0}
    assert table["Recall@100"] == {"q1": 1.0, "q2": 1.0, "q3": 0.0, "q4": 1.0}
    assert set(table["nDCG@10"]) == {"q1", "q2", "q3", "q4"}  # q5 has nothing relevant


def test_means_over_all_judged_queries() -> None:
    means = evaluate(QRELS, RUN)
    ndcg_q1 = (1 + 2 / log2(4)) / (2 + 1 / log2(3))
    assert means["nDCG@10"] == pytest.approx((ndcg_q1 + 1 / log2(3)) / 4)
    assert means["Recall@100"] == pytest.approx(3 / 4)
    assert means["MRR@10"] == pytest.approx(1.5 / 4)


def test_recall_cut_at_100() -> None:
    run = {"q": {**{f"n{i}": 1000.0 - i for i in range(100)}, "hit": 1.0}}
    assert evaluate({"q": {"hit": 1, "other": 1}}, run)["Recall@100"] == 0.0
    run["q"]["n99"] = 0.5  # the relevant document is now rank 100
    assert evaluate({"q": {"hit": 1, "other": 1}}, run)["Recall@100"] == 0.5


def test_no_relevant_documents_is_an_error() -> None:
    with pytest.raises(ValueError, match="no query with a relevant"):
        evaluate({"q": {"a": 0}}, {"q": {"a": 1.0}})
