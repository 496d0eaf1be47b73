"""Losses against hand-computed values; data readers' error paths."""

from __future__ import annotations

import json
import math

import pytest
import torch

from polycolbert.train.data import beir_pairs, read_examples_jsonl
from polycolbert.train.losses import (
    contrastive_loss,
    distillation_loss,
    duplicate_positives,
    matryoshka_sum,
)


def test_contrastive_loss_by_hand():
    scores = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    expected = (-math.log(math.exp(2) / (math.exp(2) + 1)) - math.log(0.5)) / 2
    assert float(contrastive_loss(scores, torch.tensor([0, 1]), 1.0)) == pytest.approx(expected)


def test_copies_of_a_rows_positive_are_not_its_negatives():
    # rows 0 and 1 ask about the same paragraph "p"; row 2's BM25 negative is also "p"
    documents = ["p", "p", "q", "r", "p"]
    exclude = duplicate_positives(documents[:3], documents)
    assert exclude.tolist() == [
        [False, True, False, False, True],
        [True, False, False, False, True],
        [False, False, False, False, False],
    ]
    scores = torch.tensor([[2.0, 2.0, 0.0, 1.0, 2.0], [2.0, 2.0, 0.0, 1.0, 2.0], [0.0, 0.0, 1.0, 0.0, 1.0]])
    # by hand: rows 0/1 compete against {0 (or 1), q, r} only; row 2 against every column
    row01 = -math.log(math.exp(2) / (math.exp(2) + 1 + math.exp(1)))
    row2 = -math.log(math.exp(1) / (3 + 2 * math.exp(1)))
    got = contrastive_loss(scores, torch.tensor([0, 1, 2]), 1.0, exclude)
    assert float(got) == pytest.approx((2 * row01 + row2) / 3)
    assert float(got) < float(contrastive_loss(scores, torch.tensor([0, 1, 2]), 1.0))


def test_distillation_is_zero_for_identical_scores_and_positive_otherwise():
    teacher = torch.tensor([[3.0, 1.0, 0.0]])
    assert float(distillation_loss(teacher, teacher, 1.0)) == pytest.approx(0.0, abs=1e-7)
    assert float(distillation_loss(torch.tensor([[0.0, 1.0, 3.0]]), teacher, 1.0)) > 0.5


def test_matryoshka_sum_weights_each_size():
    losses = {128: torch.tensor(1.0), 64: torch.tensor(2.0)}
    assert float(matryoshka_sum(losses)) == 3.0
    assert float(matryoshka_sum(losses, {64: 0.5})) == 2.0


def test_jsonl_reader_names_bad_lines(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text(
        json.dumps({"query": "q", "positive": "p", "negatives": ["n"], "scores": [2.0, 1.0]}) + "\n{oops\n"
    )
    with pytest.raises(ValueError, match=r"train.jsonl:2: not valid JSON"):
        read_examples_jsonl(path)
    path.write_text(json.dumps({"query": "q", "positive": "p", "negatives": ["n"], "scores": [1.0]}) + "\n")
    with pytest.raises(ValueError, match=r":1: 'scores' must give one number"):
        read_examples_jsonl(path)
    path.write_text(json.dumps({"query": "q", "document": "p"}) + "\n")
    [example] = read_examples_jsonl(path)
    assert (example.query, example.positive, example.negatives) == ("q", "p", [])


def write_beir(folder, qrels_name="train.tsv"):
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"}) for i in range(3))
    )
    (folder / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": f"q{i}", "text": f"q {i}"}) for i in range(3))
    )
    (folder / "qrels" / qrels_name).write_text(
        "query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td2\t1\nq2\td1\t0\n"
    )


def test_beir_pairs_keep_relevant_pairs_only(tmp_path):
    write_beir(tmp_path / "set")
    pairs = sorted((e.query, e.positive) for e in beir_pairs(tmp_path / "set"))
    assert pairs == [("q 0", "T0 text 0"), ("q 1", "T2 text 2")]
    held_out = beir_pairs(tmp_path / "set", keep_query=lambda query_id: query_id != "q1")
    assert [(e.query, e.positive) for e in held_out] == [("q 0", "T0 text 0")]


@pytest.mark.parametrize(
    ("name", "qrels"), [("xquad-de", "test.tsv"), ("belebele-en", "test.tsv"), ("scifact", "test.tsv")]
)
def test_evaluation_sets_are_refused(tmp_path, name, qrels):
    write_beir(tmp_path / name, qrels)
    with pytest.raises(ValueError, match="evaluation set"):
        beir_pairs(tmp_path / name, qrels)
