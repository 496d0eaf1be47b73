"""Losses for late interaction: in-batch contrastive, KL distillation, and their Matryoshka sum.

Scores are MaxSim sums over query tokens (:func:`polycolbert.scoring.maxsim_padded`); a temperature
turns them into logits (jina-colbert-v2 and PyLate both train on such sums).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def contrastive_loss(
    scores: torch.Tensor, positives: torch.Tensor, temperature: float, exclude: torch.Tensor | None = None
) -> torch.Tensor:
    """Cross-entropy of each query's positive against every document in the batch (and hard negatives).

    ``exclude`` (bool, like ``scores``) drops columns that must not count as negatives of a row: copies
    of its own positive (see ``duplicate_positives``).
    """
    if exclude is not None:
        scores = scores.masked_fill(exclude, float("-inf"))
    return F.cross_entropy(scores / temperature, positives)


def duplicate_positives(positives: list[str], documents: list[str]) -> torch.Tensor:
    """Columns holding the same text as a row's positive, other than the positive's own column.

    QA sets ask several questions about one paragraph (SQuAD-style sets: 3-4 per paragraph), so a
    batch drawn from one source often holds the same paragraph twice, or as another row's BM25
    negative; pushing a query away from a copy of its own answer is a false negative.
    """
    text_id = {text: i for i, text in enumerate(dict.fromkeys([*positives, *documents]))}
    rows = torch.tensor([text_id[t] for t in positives])
    columns = torch.tensor([text_id[t] for t in documents])
    exclude = rows[:, None] == columns[None, :]
    own = torch.arange(min(len(positives), len(documents)))
    exclude[own, own] = False
    return exclude


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) over each query's candidate list, both as softmax distributions."""
    return F.kl_div(
        F.log_softmax(student / temperature, dim=-1),
        F.log_softmax(teacher / temperature, dim=-1),
        log_target=True,
        reduction="batchmean",
    )


def matryoshka_sum(losses: dict[int, torch.Tensor], weights: dict[int, float] | None = None) -> torch.Tensor:
    """Sum of per-size losses: every head is trained for its own size, jointly (independent heads)."""
    total = torch.zeros(())
    for dim, loss in losses.items():
        total = total + (1.0 if weights is None else weights.get(dim, 1.0)) * loss
    return total
