"""Exhaustive search for evaluation: every query scored against every document, kept as runs.

The kernel is :func:`polycolbert.scoring.maxsim_buckets` (fast enough for a whole corpus on a CPU); this
module turns score matrices into TREC-style runs with the project's one ``top_k`` tie rule (equal
scores in corpus order).

>>> import numpy as np
>>> ranked_runs(np.array([[0.1, 0.9, 0.5, 0.9]], np.float32), ["a", "b", "c", "d"], 3)
[{'b': 0.8999999761581421, 'd': 0.8999999761581421, 'c': 0.5}]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from polycolbert.scoring import top_k


def ranked_runs(scores: np.ndarray, ids: Sequence[str], k: int) -> list[dict[str, float]]:
    """For each row of ``[queries, documents]`` scores, the ``k`` best ``{doc_id: score}``, best first."""
    return [{ids[j]: float(row[j]) for j in top_k(row, k).tolist()} for row in scores]
