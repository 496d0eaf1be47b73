"""Training data: pairs, triplets with hard negatives, and distillation examples with teacher scores.

Every reader returns :class:`TrainingExample` lists, so losses and the loop never care where data came
from. Evaluation sets are refused by name: a model must be evaluated on sets it never saw.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from polycolbert.eval.datasets import read_jsonl

# Folders that shared/data/README.md reserves for evaluation (scifact only for its test qrels).
EVALUATION_SETS = ("xquad-", "belebele-")


@dataclass
class TrainingExample:
    """One query with its positive, optional hard negatives, and optional teacher scores.

    ``teacher_scores`` (when given) score ``[positive, *negatives]`` in that order.
    """

    query: str
    positive: str
    negatives: list[str] = field(default_factory=list)
    teacher_scores: list[float] | None = None
    source: str = ""


def read_examples_jsonl(path: str | Path) -> list[TrainingExample]:
    """Read ``{"query", "positive", "negatives"?, "scores"?}`` JSON lines (``document`` = ``positive``)."""
    path = Path(path)
    examples = []
    for number, record in read_jsonl(path):
        query = record.get("query")
        positive = record.get("positive", record.get("document"))
        negatives = record.get("negatives", [])
        scores = record.get("scores")
        if (
            not isinstance(query, str)
            or not isinstance(positive, str)
            or not query.strip()
            or not positive.strip()
        ):
            raise ValueError(f"{path}:{number}: needs non-empty string fields 'query' and 'positive'")
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            raise ValueError(f"{path}:{number}: 'negatives' must be a list of strings")
        if scores is not None and (
            not isinstance(scores, list)
            or len(scores) != 1 + len(negatives)
            or not all(isinstance(s, int | float) for s in scores)
        ):
            raise ValueError(
                f"{path}:{number}: 'scores' must give one number for the positive and each negative"
            )
        examples.append(TrainingExample(query, positive, list(negatives), scores, source=path.name))
    return examples


def check_training_set(folder: Path, qrels_file: str) -> None:
    name = folder.name
    if name.startswith(EVALUATION_SETS) or (name == "scifact" and qrels_file != "train.tsv"):
        raise ValueError(
            f"{folder} ({qrels_file}) is an evaluation set; training on it would spoil the evaluation"
        )


def read_corpus(folder: Path) -> dict[str, str]:
    path = folder / "corpus.jsonl"
    if not path.exists():
        path = folder / "corpus.jsonl.gz"
    corpus = {}
    for _, record in read_jsonl(path):
        title, text = str(record.get("title") or ""), str(record.get("text") or "")
        corpus[str(record["_id"])] = f"{title}. {text}" if title else text
    return corpus


def read_queries(folder: Path) -> dict[str, str]:
    return {str(r["_id"]): str(r["text"]) for _, r in read_jsonl(folder / "queries.jsonl")}


def read_qrels(path: Path) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    start = 1 if rows and rows[0] and rows[0][0] == "query-id" else 0
    return [(r[0], r[1]) for r in rows[start:] if len(r) >= 3 and float(r[2]) > 0]


def beir_pairs(
    folder: str | Path,
    qrels_file: str = "train.tsv",
    limit: int | None = None,
    seed: int = 0,
    keep_query: Callable[[str], bool] | None = None,
) -> list[TrainingExample]:
    """(query, relevant document) pairs of a BEIR-layout folder; also reads translation-pair folders.

    ``keep_query(query_id)`` drops queries before shuffling and limiting, so a validation split held out
    by id (scripts/head_lab.py) never reaches training.
    """
    folder = Path(folder)
    check_training_set(folder, qrels_file)
    corpus, queries = read_corpus(folder), read_queries(folder)
    pairs = read_qrels(folder / "qrels" / qrels_file)
    examples = [
        TrainingExample(queries[q], corpus[d], source=folder.name)
        for q, d in pairs
        if (keep_query is None or keep_query(q))
        and q in queries
        and d in corpus
        and queries[q].strip()
        and corpus[d].strip()
    ]
    random.Random(seed).shuffle(examples)
    return examples[:limit] if limit else examples


def add_bm25_negatives(examples: list[TrainingExample], per_example: int = 1, seed: int = 0) -> None:
    """Give each example hard negatives: top BM25 documents of its own source that are not its positive."""
    import bm25s

    rng = random.Random(seed)
    by_source: dict[str, list[TrainingExample]] = {}
    for example in examples:
        by_source.setdefault(example.source, []).append(example)
    for group in by_source.values():
        documents = sorted({e.positive for e in group})
        if len(documents) <= per_example:
            continue
        retriever = bm25s.BM25()
        retriever.index(bm25s.tokenize(documents, show_progress=False), show_progress=False)
        k = min(len(documents), per_example + 3)
        results, _ = retriever.retrieve(
            bm25s.tokenize([e.query for e in group], show_progress=False), k=k, show_progress=False
        )
        for example, row in zip(group, results, strict=True):
            candidates = [documents[int(i)] for i in row if documents[int(i)] != example.positive]
            if len(candidates) < per_example:
                candidates += rng.sample(documents, per_example)
            example.negatives = candidates[:per_example]
