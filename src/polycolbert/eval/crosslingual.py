"""Cross-lingual pools built from parallel BEIR folders such as ``xquad-<lang>``.

XQuAD is 11-way parallel with identical question and paragraph ids in every language, so two kinds of
pool need no new judgments:

* :func:`crosslingual_pool`: queries in one language against the corpus of another (e.g. de -> en);
* :func:`mixed_pool`: queries in one language against the union of every language's corpus. Following
  LAReQA (the source of these folders), every translation of the right paragraph counts as relevant, so
  a system scores well only if it retrieves the answer whatever language it is written in.

A dataset spec ``DIR@en`` / ``DIR@mixed`` names these pools on the command line (see :func:`load_spec`).
"""

from __future__ import annotations

import re
from pathlib import Path

from polycolbert.corpus import CorpusError
from polycolbert.eval.datasets import Dataset, load_beir

_PARALLEL_NAME = re.compile(r"^(?P<family>.+)-(?P<lang>[a-z]{2})$")
MIXED = "mixed"


def _family(folder: Path) -> tuple[str, str]:
    match = _PARALLEL_NAME.match(folder.name)
    if not match:
        raise CorpusError(
            f"{folder}: a cross-lingual pool needs a folder named <family>-<lang> (e.g. xquad-de), "
            f"with sibling folders for the other languages"
        )
    return match.group("family"), match.group("lang")


def sibling_languages(folder: Path) -> list[str]:
    """Languages of the parallel folders next to ``folder`` (``xquad-de`` -> every ``xquad-xx``)."""
    family, _ = _family(folder)
    found = []
    for candidate in sorted(folder.parent.glob(f"{family}-*")):
        match = _PARALLEL_NAME.match(candidate.name)
        if match and match.group("family") == family and candidate.is_dir():
            found.append(match.group("lang"))
    return found


def _check_parallel(queries: Dataset, corpus: Dataset) -> None:
    missing = {did for judged in queries.qrels.values() for did in judged} - set(corpus.corpus_ids)
    if missing:
        example = sorted(missing)[0]
        raise CorpusError(
            f"{corpus.name}: {len(missing)} paragraph ids judged in {queries.name} are missing "
            f"(e.g. {example!r}); the folders are not parallel"
        )


def crosslingual_pool(query_folder: str | Path, corpus_language: str, split: str = "test") -> Dataset:
    """Queries of ``query_folder`` against the corpus of its ``-<corpus_language>`` sibling."""
    query_folder = Path(query_folder)
    family, _ = _family(query_folder)
    corpus_folder = query_folder.parent / f"{family}-{corpus_language}"
    if not corpus_folder.is_dir():
        raise CorpusError(
            f"{corpus_folder}: dataset folder not found (needed as the {corpus_language} corpus)"
        )
    queries = load_beir(query_folder, split)
    corpus = load_beir(corpus_folder, split)
    _check_parallel(queries, corpus)
    return Dataset(
        name=f"{query_folder.name}@{corpus_language}",
        corpus_ids=corpus.corpus_ids,
        corpus_texts=corpus.corpus_texts,
        query_ids=queries.query_ids,
        query_texts=queries.query_texts,
        qrels=queries.qrels,
        doc_languages=corpus.doc_languages,
        query_languages=queries.query_languages,
    )


def mixed_pool(query_folder: str | Path, languages: list[str] | None = None, split: str = "test") -> Dataset:
    """Queries of ``query_folder`` against every sibling's corpus, ids prefixed ``<lang>:``.

    Each judged paragraph is relevant in every language (LAReQA's convention).
    """
    query_folder = Path(query_folder)
    family, _ = _family(query_folder)
    langs = languages if languages is not None else sibling_languages(query_folder)
    if len(langs) < 2:
        raise CorpusError(f"{query_folder}: a mixed pool needs at least two {family}-<lang> folders")
    queries = load_beir(query_folder, split)
    corpus_ids: list[str] = []
    corpus_texts: list[str] = []
    doc_languages: list[str | None] = []
    for lang in langs:
        part = load_beir(query_folder.parent / f"{family}-{lang}", split)
        _check_parallel(queries, part)
        corpus_ids.extend(f"{lang}:{did}" for did in part.corpus_ids)
        corpus_texts.extend(part.corpus_texts)
        doc_languages.extend(part.doc_languages)
    qrels = {
        qid: {f"{lang}:{did}": grade for did, grade in judged.items() for lang in langs}
        for qid, judged in queries.qrels.items()
    }
    return Dataset(
        name=f"{query_folder.name}@{MIXED}",
        corpus_ids=corpus_ids,
        corpus_texts=corpus_texts,
        query_ids=queries.query_ids,
        query_texts=queries.query_texts,
        qrels=qrels,
        doc_languages=doc_languages,
        query_languages=queries.query_languages,
    )


def load_spec(spec: str | Path, split: str = "test") -> Dataset:
    """``DIR`` (a BEIR folder), ``DIR@<lang>`` (cross-lingual pool) or ``DIR@mixed`` (all languages)."""
    text = str(spec)
    folder, sep, target = text.rpartition("@")
    if sep and target and not Path(text).exists():
        if target == MIXED:
            return mixed_pool(folder, split=split)
        if re.fullmatch(r"[a-z]{2}", target):
            return crosslingual_pool(folder, target, split)
        raise CorpusError(f"{text}: after '@' put a two-letter language code or '{MIXED}'")
    return load_beir(text, split)
