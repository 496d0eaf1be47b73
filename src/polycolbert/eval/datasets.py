"""An evaluation set in memory: a BEIR folder's corpus, its judged queries and their qrels, and the language.

The files are read by :mod:`polycolbert.corpus` (so a titled document is the same string here as in an
index); this module checks that the three files agree, keeps the judged queries and names the language.
Every problem is a :class:`~polycolbert.corpus.CorpusError` naming the file and the line.

>>> import tempfile, pathlib, json
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> _ = (root / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "title": "T", "text": "body"}) + "\\n")
>>> _ = (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "what?"}) + "\\n")
>>> (root / "qrels").mkdir()
>>> _ = (root / "qrels" / "test.tsv").write_text("query-id\\tcorpus-id\\tscore\\nq1\\td1\\t1\\n")
>>> ds = load_beir(root, language="en")
>>> ds.corpus_texts, ds.query_texts, ds.qrels
(['T body'], ['what?'], {'q1': {'d1': 1}})
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from polycolbert.corpus import CorpusError, find_file, read_qrels, read_records


@dataclass
class Dataset:
    """A retrieval test collection held in memory, already restricted to the judged queries.

    ``doc_languages`` / ``query_languages`` hold one ISO 639-1 code (or ``None`` when unknown) per text,
    so a mixed-language pool can tokenise each text for BM25 by its own language.
    """

    name: str
    corpus_ids: list[str]
    corpus_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]
    doc_languages: list[str | None] = field(default_factory=list)
    query_languages: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.doc_languages:
            self.doc_languages = [None] * len(self.corpus_ids)
        if not self.query_languages:
            self.query_languages = [None] * len(self.query_ids)
        if len(self.doc_languages) != len(self.corpus_ids) or len(self.query_languages) != len(
            self.query_ids
        ):
            raise ValueError("one language entry per text is required")


_LANGUAGE_LINE = re.compile(r"^-\s*Language\(s\):\s*([A-Za-z-]+)\s*$", re.MULTILINE)
_NAME_SUFFIX = re.compile(r"-([a-z]{2})$")


def guess_language(root: Path) -> str | None:
    """The folder's language: ``SOURCES.md``'s ``Language(s):`` line, else a ``-xx`` name suffix."""
    sources = root / "SOURCES.md"
    if sources.is_file():
        match = _LANGUAGE_LINE.search(sources.read_text(encoding="utf-8", errors="replace"))
        if match:
            return match.group(1).lower()
    match = _NAME_SUFFIX.search(root.name)
    return match.group(1) if match else None


def load_beir(root: str | Path, split: str = "test", language: str | None = None) -> Dataset:
    """Read a BEIR folder, keeping only the queries judged in ``qrels/<split>.tsv`` (BEIR practice).

    Judged query or document ids that the files do not contain are an error: silently dropping them would
    inflate every metric.
    """
    root = Path(root)
    if not root.is_dir():
        raise CorpusError(f"{root}: dataset folder not found")
    corpus_path = find_file(root, "corpus.jsonl")
    queries_path = find_file(root, "queries.jsonl")
    qrels_path = root / "qrels" / f"{split}.tsv"
    corpus_ids, corpus_texts = read_records(corpus_path, with_title=True)
    query_ids, query_texts = read_records(queries_path, with_title=False)
    qrels, lines = read_qrels(qrels_path)
    known_docs = set(corpus_ids)
    known_queries = set(query_ids)
    for (qid, did), number in lines.items():
        if qid not in known_queries:
            raise CorpusError(f"{qrels_path}:{number}: query-id {qid!r} is not in {queries_path.name}")
        if did not in known_docs:
            raise CorpusError(f"{qrels_path}:{number}: corpus-id {did!r} is not in {corpus_path.name}")
    keep = [i for i, qid in enumerate(query_ids) if qid in qrels]
    lang = language if language is not None else guess_language(root)
    return Dataset(
        name=root.name,
        corpus_ids=corpus_ids,
        corpus_texts=corpus_texts,
        query_ids=[query_ids[i] for i in keep],
        query_texts=[query_texts[i] for i in keep],
        qrels=qrels,
        doc_languages=[lang] * len(corpus_ids),
        query_languages=[lang] * len(keep),
    )
