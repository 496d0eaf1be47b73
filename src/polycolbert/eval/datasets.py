"""Read BEIR-layout folders (``corpus.jsonl[.gz]``, ``queries.jsonl``, ``qrels/<split>.tsv``).

Every problem is reported as a :class:`DatasetError` naming the file and the line, because a bad
evaluation set found half-way through a long encoding run costs minutes; reading checks everything first.

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

import gzip
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

QRELS_HEADER = ("query-id", "corpus-id", "score")


class DatasetError(ValueError):
    """An evaluation folder that cannot be used as it is; the message says which file and line."""


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


def _open_text(path: Path) -> IO[str]:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def _find(root: Path, stem: str) -> Path:
    for candidate in (root / stem, root / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{root / stem}: file not found (expected {stem} or {stem}.gz in the dataset folder)")


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Non-empty lines of a JSONL(.gz) file as (line number, object); errors name the file and line."""
    try:
        with _open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise DatasetError(
                        f"{path}:{number}: expected a JSON object, got {type(record).__name__}"
                    )
                yield number, record
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot be read ({exc})") from None


def _read_records(path: Path, with_title: bool) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for number, record in read_jsonl(path):
        raw_id = record.get("_id")
        text = record.get("text")
        if not isinstance(raw_id, (str, int)) or isinstance(raw_id, bool) or str(raw_id) == "":
            raise DatasetError(f"{path}:{number}: missing or empty '_id'")
        if not isinstance(text, str):
            raise DatasetError(f"{path}:{number}: 'text' must be a string")
        doc_id = str(raw_id)
        if doc_id in seen:
            raise DatasetError(f"{path}:{number}: duplicate _id {doc_id!r} (first on line {seen[doc_id]})")
        seen[doc_id] = number
        title = record.get("title") if with_title else None
        if title is not None and not isinstance(title, str):
            raise DatasetError(f"{path}:{number}: 'title' must be a string")
        # BEIR's own convention: the title, when there is one, is prepended to the text.
        full = f"{title} {text}".strip() if title else text
        if not full.strip():
            raise DatasetError(f"{path}:{number}: empty text for _id {doc_id!r}")
        ids.append(doc_id)
        texts.append(full)
    if not ids:
        raise DatasetError(f"{path}: no records")
    return ids, texts


def read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], int]]:
    """Judgments ``{query: {doc: grade}}`` and, for error messages, the line of each pair."""
    if not path.is_file():
        raise DatasetError(f"{path}: file not found (qrels are expected at qrels/<split>.tsv)")
    qrels: dict[str, dict[str, int]] = {}
    lines: dict[tuple[str, str], int] = {}
    with path.open("r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            cells = line.rstrip("\n").rstrip("\r").split("\t")
            if number == 1 and tuple(c.strip().lower() for c in cells) == QRELS_HEADER:
                continue
            if len(cells) != 3:
                raise DatasetError(
                    f"{path}:{number}: expected 3 tab-separated columns (query-id, corpus-id, score), "
                    f"got {len(cells)}"
                )
            qid, did, grade = (c.strip() for c in cells)
            try:
                value = int(grade)
            except ValueError:
                raise DatasetError(f"{path}:{number}: score {grade!r} is not an integer") from None
            if (qid, did) in lines:
                raise DatasetError(f"{path}:{number}: duplicate judgment for ({qid}, {did})")
            qrels.setdefault(qid, {})[did] = value
            lines[(qid, did)] = number
    if not qrels:
        raise DatasetError(f"{path}: no judgments")
    return qrels, lines


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
        raise DatasetError(f"{root}: dataset folder not found")
    corpus_path = _find(root, "corpus.jsonl")
    queries_path = _find(root, "queries.jsonl")
    qrels_path = root / "qrels" / f"{split}.tsv"
    corpus_ids, corpus_texts = _read_records(corpus_path, with_title=True)
    query_ids, query_texts = _read_records(queries_path, with_title=False)
    qrels, lines = read_qrels(qrels_path)
    known_docs = set(corpus_ids)
    known_queries = set(query_ids)
    for (qid, did), number in lines.items():
        if qid not in known_queries:
            raise DatasetError(f"{qrels_path}:{number}: query-id {qid!r} is not in {queries_path.name}")
        if did not in known_docs:
            raise DatasetError(f"{qrels_path}:{number}: corpus-id {did!r} is not in {corpus_path.name}")
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
