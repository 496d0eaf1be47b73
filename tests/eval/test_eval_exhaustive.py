from __future__ import annotations

import numpy as np
import pytest

from polycolbert.eval.exhaustive import ranked_runs


def test_ranked_runs_order_by_score_then_corpus_order() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.9]], np.float32)
    assert list(ranked_runs(scores, ["a", "b", "c", "d"], 3)[0].items()) == [
        ("b", pytest.approx(0.9)),
        ("d", pytest.approx(0.9)),
        ("c", pytest.approx(0.5)),
    ]


def test_ranked_runs_keep_at_most_the_corpus() -> None:
    scores = np.array([[0.2, 0.1], [0.0, 0.3]], np.float32)
    assert [list(run) for run in ranked_runs(scores, ["a", "b"], 10)] == [["a", "b"], ["b", "a"]]
