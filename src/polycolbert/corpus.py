"""Files in and runs out: the one reader of JSONL / BEIR files, the one title + text rule, the TREC writer.

Evaluation, training and ``polycolbert index add`` all turn a record with a title into the same string,
so the quality measured by ``polycolbert eval`` is the quality of what the index encodes. The rule is
BEIR's own: ``"{title} {text}"`` stripped, or the text unchanged when the title is absent or empty
(:func:`join_title`).

Two kinds of file are read here, with one JSON line parser under both:

- BEIR folders (``corpus.jsonl[.gz]``, ``queries.jsonl[.gz]``, ``qrels/<split>.tsv``), read strictly:
  the first problem stops the read with a :class:`CorpusError` naming the file and line, because a bad
  set found half-way through a long encoding run costs minutes.
- Document files for an index (``{"_id"|"id", "text", "title"?, "metadata"?}`` lines): every bad line
  is collected and the whole file is refused with all of them listed, so nothing is half-added; they
  are read twice in a stream (check, then add), never held whole.

>>> import tempfile, pathlib, json
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> rows = [{"_id": "d1", "title": "Cats", "text": "The cat sat."}, {"_id": "d2", "text": "Dogs."}]
>>> _ = (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\\n" for r in rows))
>>> read_records(find_file(root, "corpus.jsonl"), with_title=True)
(['d1', 'd2'], ['Cats The cat sat.', 'Dogs.'])
>>> [(d.id, d.text, d.metadata) for d in iter_documents(root / "corpus.jsonl")][0]
('d1', 'Cats The cat sat.', {'title': 'Cats'})
>>> write_trec(root / "run.trec", {"q1": {"d2": 0.5, "d1": 2.0}}, tag="demo")
>>> print((root / "run.trec").read_text(), end="")
q1 Q0 d1 1 2.000000 demo
q1 Q0 d2 2 0.500000 demo
"""

from __future__ import annotations

import gzip
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, NamedTuple

QRELS_HEADER = ("query-id", "corpus-id", "score")
# A refused document file lists at most this many of its bad lines.
SHOWN_PROBLEMS = 20

Run = Mapping[str, Mapping[str, float]]  # {query id: {document id: score}}
Qrels = Mapping[str, Mapping[str, int]]  # {query id: {document id: grade}}


class CorpusError(ValueError):
    """A file or folder that cannot be used as it is; the message names the file and, if any, the line."""


def join_title(title: str | None, text: str) -> str:
    """The text a model sees for a record: ``"{title} {text}"`` stripped, or ``text`` when untitled."""
    return f"{title} {text}".strip() if title else text


def open_text(path: Path) -> IO[str]:
    """A UTF-8 text handle, decompressing when the name ends in ``.gz``."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def find_file(root: Path, name: str) -> Path:
    """``root/name`` or, failing that, ``root/name.gz``."""
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise CorpusError(f"{root / name}: file not found (expected {name} or {name}.gz in the dataset folder)")


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Each non-blank line's number and its JSON object, or a problem (a string) where it has none.

    A file that cannot be opened or decoded is a :class:`CorpusError` naming the file.
    """
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if line.strip():
                    yield number, _parse_object(line)
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot be read ({exc})") from None


def _finite(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise ValueError(f"{literal} is outside the range of a float")
    return value


def _no_constant(literal: str) -> float:
    raise ValueError(f"{literal} is not a JSON number; use a finite number or null")


def _parse_object(line: str) -> dict[str, Any] | str:
    """One line as a JSON object; strict JSON (no NaN/Infinity, which no store round-trips)."""
    try:
        record = json.loads(line, parse_constant=_no_constant, parse_float=_finite)
    except json.JSONDecodeError as exc:
        return f"not valid JSON ({exc.msg})"
    except ValueError as exc:
        return f"not valid JSON ({exc})"
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}"
    return record


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Non-blank lines of a JSONL(.gz) file as (line number, object); the first bad line is an error."""
    path = Path(path)
    for number, row in jsonl_rows(path):
        if isinstance(row, str):
            raise CorpusError(f"{path}:{number}: {row}")
        yield number, row


def _is_id(value: object) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool) and str(value) != ""


# ---------------------------------------------------------------- BEIR folders (strict)


def read_records(path: Path, with_title: bool) -> tuple[list[str], list[str]]:
    """Ids and texts of a BEIR ``corpus.jsonl`` (``with_title``) or ``queries.jsonl``, checked line by line.

    Each line needs a non-empty ``_id`` and a string ``text``; ids are unique; the title, when read, must
    be a string and is joined by :func:`join_title`. An empty text is kept: it is one document's content,
    not a broken file (the encoder gives it a defined result and jobs name it in a warning).
    """
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, int] = {}
    for number, record in read_jsonl(path):
        raw_id = record.get("_id")
        text = record.get("text")
        if not _is_id(raw_id):
            raise CorpusError(f"{path}:{number}: missing or empty '_id'")
        if not isinstance(text, str):
            raise CorpusError(f"{path}:{number}: 'text' must be a string")
        doc_id = str(raw_id)
        if doc_id in seen:
            raise CorpusError(f"{path}:{number}: duplicate _id {doc_id!r} (first on line {seen[doc_id]})")
        seen[doc_id] = number
        title = record.get("title") if with_title else None
        if title is not None and not isinstance(title, str):
            raise CorpusError(f"{path}:{number}: 'title' must be a string")
        ids.append(doc_id)
        texts.append(join_title(title, text))
    if not ids:
        raise CorpusError(f"{path}: no records")
    return ids, texts


def read_qrels(path: Path) -> tuple[dict[str, dict[str, int]], dict[tuple[str, str], int]]:
    """Judgments ``{query: {doc: grade}}`` of a BEIR ``qrels/*.tsv`` and the line of each pair, in file order.

    Three tab-separated columns (query-id, corpus-id, integer score) after an optional header line.
    """
    if not path.is_file():
        raise CorpusError(f"{path}: file not found (qrels are expected at qrels/<split>.tsv)")
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
                raise CorpusError(
                    f"{path}:{number}: expected 3 tab-separated columns (query-id, corpus-id, score), "
                    f"got {len(cells)}"
                )
            qid, did, grade = (c.strip() for c in cells)
            try:
                value = int(grade)
            except ValueError:
                raise CorpusError(f"{path}:{number}: score {grade!r} is not an integer") from None
            if (qid, did) in lines:
                raise CorpusError(f"{path}:{number}: duplicate judgment for ({qid}, {did})")
            qrels.setdefault(qid, {})[did] = value
            lines[(qid, did)] = number
    if not qrels:
        raise CorpusError(f"{path}: no judgments")
    return qrels, lines


def read_lines(path: Path) -> list[str]:
    """The non-blank lines of a plain (or ``.gz``) text file, one text each, without their line ends."""
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    try:
        with open_text(path) as handle:
            return [line.rstrip("\r\n") for line in handle if line.strip()]
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise CorpusError(f"{path}: cannot be read ({exc})") from None


# ---------------------------------------------------------------- document files for an index


class Document(NamedTuple):
    """One line of a document file: its id, its text (title joined) and its metadata."""

    id: str
    text: str
    metadata: dict[str, Any]


def read_documents(path: Path) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Ids, texts and metadata of a JSONL or BEIR ``corpus.jsonl[.gz]``; every bad line is reported.

    A line is ``{"_id"|"id": ..., "text": ..., "title"?: ..., "metadata"?: {...}}``; without
    ``metadata``, the other fields (the title included) become the metadata. Any problem refuses the
    whole file, so nothing is half-added.
    """
    ids: list[str] = []
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    problems: list[str] = []
    for parsed in _checked_documents(path):
        if isinstance(parsed, str):
            problems.append(parsed)
        elif not problems:
            ids.append(parsed.id)
            texts.append(parsed.text)
            metas.append(parsed.metadata)
    _refuse(path, problems, len(ids))
    return ids, texts, metas


def scan_documents(path: Path) -> list[str]:
    """The ids of a document file, in order, after checking every line (as :func:`read_documents`).

    The first of two passes: it keeps only ids and their line numbers, so a file larger than memory is
    still checked completely before anything is encoded or added.
    """
    ids: list[str] = []
    problems: list[str] = []
    for parsed in _checked_documents(path):
        if isinstance(parsed, str):
            problems.append(parsed)
        else:
            ids.append(parsed.id)
    _refuse(path, problems, len(ids))
    return ids


def iter_documents(path: Path) -> Iterator[Document]:
    """The documents of a file :func:`scan_documents` accepted, one at a time (the second pass)."""
    for _, parsed in _parsed_documents(path):
        if isinstance(parsed, str):
            raise CorpusError(f"{path}: {parsed} (the file changed while it was being added)")
        yield parsed


def _parsed_documents(path: Path) -> Iterator[tuple[int, Document | str]]:
    """Each non-blank line's number and the line as a document or as a problem ("line N: ...")."""
    if not path.is_file():
        raise CorpusError(f"{path}: no such file")
    for number, row in jsonl_rows(path):
        parsed = _document(row) if isinstance(row, dict) else row
        yield number, parsed if isinstance(parsed, Document) else f"line {number}: {parsed}"


def _checked_documents(path: Path) -> Iterator[Document | str]:
    """:func:`_parsed_documents` plus duplicate ids, reported with the line of their first occurrence."""
    seen: dict[str, int] = {}
    for number, parsed in _parsed_documents(path):
        if isinstance(parsed, Document):
            if parsed.id in seen:
                parsed = f"line {number}: duplicate id {parsed.id!r} (first on line {seen[parsed.id]})"
            else:
                seen[parsed.id] = number
        yield parsed


def _document(row: dict[str, Any]) -> Document | str:
    doc_id = row.get("_id", row.get("id"))
    text = row.get("text")
    if not _is_id(doc_id):
        return "missing '_id' or 'id' (string)"
    if not isinstance(text, str):
        return "missing 'text' (string)"
    title = row.get("title")
    meta = row.get("metadata")
    if meta is None:
        meta = {k: v for k, v in row.items() if k not in ("_id", "id", "text", "metadata")}
    elif not isinstance(meta, dict):
        return "'metadata' must be an object"
    return Document(str(doc_id), join_title(title if isinstance(title, str) else None, text), meta)


def _refuse(path: Path, problems: list[str], n_documents: int) -> None:
    if problems:
        shown = "\n  ".join(problems[:SHOWN_PROBLEMS])
        extra = len(problems) - SHOWN_PROBLEMS
        more = f"\n  ... and {extra} more" if extra > 0 else ""
        raise CorpusError(f"{path}: {len(problems)} bad line(s); nothing was added:\n  {shown}{more}")
    if not n_documents:
        raise CorpusError(f"{path}: no documents")


# ---------------------------------------------------------------- runs out


def write_trec(path: Path, run: Run, tag: str) -> None:
    """``qid Q0 docid rank score tag`` lines (trec_eval's run format): queries in the run's order, each
    query's documents best first (equal scores keep the run's order)."""
    with path.open("w", encoding="utf-8") as handle:
        for qid, scores in run.items():
            ranked = sorted(scores.items(), key=lambda item: -item[1])
            for rank, (did, score) in enumerate(ranked, start=1):
                handle.write(f"{qid} Q0 {did} {rank} {score:.6f} {tag}\n")
