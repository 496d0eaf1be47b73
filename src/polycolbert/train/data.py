"""Training data: pairs, triplets with hard negatives, and distillation examples with teacher scores.

Every reader returns :class:`TrainingExample` lists, so losses and the loop never care where data came
from. Files are read by :mod:`polycolbert.corpus`, so a titled document is the same string in training
as in evaluation and in an index. Evaluation sets are refused by name: a model must be evaluated on sets
it never saw.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from polycolbert import corpus

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
    for number, record in corpus.read_jsonl(path):
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
            raise corpus.CorpusError(f"{path}:{number}: needs non-empty string fields 'query' and 'positive'")
        if not isinstance(negatives, list) or not all(isinstance(n, str) for n in negatives):
            raise corpus.CorpusError(f"{path}:{number}: 'negatives' must be a list of strings")
        if scores is not None and (
            not isinstance(scores, list)
            or len(scores) != 1 + len(negatives)
            or not all(isinstance(s, int | float) for s in scores)
        ):
            raise corpus.CorpusError(
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
    """``{id: text}`` of a BEIR folder's ``corpus.jsonl[.gz]``, titles joined by :func:`corpus.join_title`."""
    ids, texts = corpus.read_records(corpus.find_file(folder, "corpus.jsonl"), with_title=True)
    return dict(zip(ids, texts, strict=True))


def read_queries(folder: Path) -> dict[str, str]:
    """``{id: text}`` of a BEIR folder's ``queries.jsonl[.gz]``."""
    ids, texts = corpus.read_records(corpus.find_file(folder, "queries.jsonl"), with_title=False)
    return dict(zip(ids, texts, strict=True))


def read_qrels(path: Path) -> list[tuple[str, str]]:
    """The (query, document) pairs judged relevant (score above 0), in file order."""
    grades, lines = corpus.read_qrels(path)
    return [(qid, did) for qid, did in lines if grades[qid][did] > 0]


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
