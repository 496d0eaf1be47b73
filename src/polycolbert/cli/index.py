"""``polycolbert index ...``: create, fill, search and maintain an embedded index folder."""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from polycolbert.cli.errors import friendly_errors

app = typer.Typer(no_args_is_help=True, help="Embedded multi-vector index (a folder; no service to run).")


def read_documents(path: Path) -> tuple[list[str], list[str], list[dict[str, Any]]]:
    """Ids, texts and metadata from JSONL or BEIR ``corpus.jsonl[.gz]``; every bad line is reported.

    A line is ``{"_id"|"id": ..., "text": ..., "title"?: ..., "metadata"?: {...}}``; other fields become
    metadata. Any problem rejects the whole file, so nothing is half-added.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    ids: list[str] = []
    texts: list[str] = []
    metas: list[dict[str, Any]] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    with opener(path, "rt", encoding="utf-8") as handle:  # type: ignore[operator]
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                problems.append(f"line {number}: not valid JSON ({exc.msg})")
                continue
            if not isinstance(row, dict):
                problems.append(f"line {number}: expected a JSON object")
                continue
            doc_id = row.get("_id", row.get("id"))
            text = row.get("text")
            if not isinstance(doc_id, str | int) or isinstance(doc_id, bool) or str(doc_id) == "":
                problems.append(f"line {number}: missing '_id' or 'id' (string)")
                continue
            if not isinstance(text, str):
                problems.append(f"line {number}: missing 'text' (string)")
                continue
            doc_id = str(doc_id)
            if doc_id in seen:
                problems.append(f"line {number}: duplicate id {doc_id!r} (first on line {seen[doc_id]})")
                continue
            seen[doc_id] = number
            title = row.get("title")
            meta = row.get("metadata")
            if meta is None:
                meta = {k: v for k, v in row.items() if k not in ("_id", "id", "text", "metadata")}
            elif not isinstance(meta, dict):
                problems.append(f"line {number}: 'metadata' must be an object")
                continue
            ids.append(doc_id)
            texts.append(f"{title}\n{text}" if isinstance(title, str) and title else text)
            metas.append(meta)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError(f"{path}: {len(problems)} bad line(s); nothing was added:\n  {shown}{more}")
    if not ids:
        raise ValueError(f"{path}: no documents")
    return ids, texts, metas


@app.command()
@friendly_errors
def create(
    path: Path,
    model: Annotated[str, typer.Option(help="Catalogue name, hub id or checkpoint folder.")] = "",
    dimensions: Annotated[int | None, typer.Option(help="A Matryoshka size the model offers.")] = None,
    nbits: Annotated[int, typer.Option(help="Residual bits per dimension: 1, 2 or 4.")] = 2,
) -> None:
    """Create an empty index folder for one model at one size."""
    from polycolbert.index import Index
    from polycolbert.models.catalog import DEFAULT_MODEL

    with Index.create(path, model=model or DEFAULT_MODEL, dimensions=dimensions, nbits=nbits) as index:
        print(
            json.dumps(
                {
                    "path": str(path),
                    "model": index.model_name,
                    "dimensions": index.dimensions,
                    "nbits": index.nbits,
                }
            )
        )


@app.command()
@friendly_errors
def add(
    path: Path,
    file: Annotated[Path, typer.Argument(help="JSONL or BEIR corpus.jsonl[.gz].")],
    batch_size: Annotated[int, typer.Option(help="Texts per encoder batch.")] = 32,
) -> None:
    """Encode and add documents in one atomic commit (bad lines reject the whole file)."""
    from polycolbert.index import Index

    ids, texts, metas = read_documents(file)
    with Index.open(path) as index:
        taken = set(index.ids()) & set(ids)
        if taken:
            raise ValueError(
                f"{len(taken)} id(s) already in the index, e.g. {sorted(taken)[:5]}; nothing added"
            )
        encoder = index._encoder()
        try:
            vectors = encoder.encode_documents(
                texts, dimensions=index.dimensions, batch_size=batch_size, progress=True
            )
        except TypeError:  # encoders without progress bars (test doubles)
            vectors = encoder.encode_documents(texts, dimensions=index.dimensions)
        index.add(texts, ids=ids, metadata=metas, vectors=vectors)
        print(json.dumps({"added": len(ids), "documents": len(index)}))


@app.command()
@friendly_errors
def delete(path: Path, ids: Annotated[list[str], typer.Argument(help="Document ids.")]) -> None:
    """Delete documents by id (unknown ids are counted, not an error)."""
    from polycolbert.index import Index

    with Index.open(path) as index:
        print(json.dumps({"deleted": index.delete(ids), "documents": len(index)}))


@app.command()
@friendly_errors
def search(
    path: Path,
    query: Annotated[str | None, typer.Option(help="One query text.")] = None,
    queries: Annotated[Path | None, typer.Option(help="JSONL of {_id, text} or BEIR queries.jsonl.")] = None,
    k: Annotated[int, typer.Option(help="Results per query.")] = 10,
    exhaustive: Annotated[bool, typer.Option(help="Score every document (for checking).")] = False,
    hybrid: Annotated[bool, typer.Option(help="Fuse FTS5 keyword ranks with MaxSim (RRF).")] = False,
    filter: Annotated[str | None, typer.Option(help='Metadata filter as JSON, e.g. {"lang": "de"}.')] = None,
    output: Annotated[Path | None, typer.Option(help="Write a TREC run file instead of JSON lines.")] = None,
) -> None:
    """Search with one query (--query) or many (--queries); prints JSON or writes a TREC run."""
    from polycolbert.index import Index

    if (query is None) == (queries is None):
        raise ValueError("give exactly one of --query TEXT or --queries FILE")
    if k <= 0:
        raise ValueError(f"--k must be a positive integer; got {k}")
    parsed_filter = None
    if filter is not None:
        try:
            parsed_filter = json.loads(filter)
        except json.JSONDecodeError as exc:
            raise ValueError(f"--filter is not valid JSON: {exc.msg}") from None
    if query is not None:
        qids, qtexts = ["q"], [query]
    else:
        assert queries is not None
        qids, qtexts, _ = read_documents(queries)
    with Index.open(path) as index:
        results = []
        for start in range(0, len(qtexts), 64):
            results += index.search(
                qtexts[start : start + 64], k=k, filter=parsed_filter, hybrid=hybrid, exhaustive=exhaustive
            )
    if output is not None:
        with open(output, "w", encoding="utf-8") as handle:
            for qid, hits in zip(qids, results, strict=True):
                for rank, hit in enumerate(hits, start=1):
                    handle.write(f"{qid} Q0 {hit.id} {rank} {hit.score:.6f} polycolbert\n")
        print(json.dumps({"queries": len(qids), "output": str(output)}))
        return
    for qid, hits in zip(qids, results, strict=True):
        rows = [
            {"id": h.id, "score": round(h.score, 6), "text": h.text, "metadata": h.metadata} for h in hits
        ]
        sys.stdout.write(json.dumps({"query": qid, "hits": rows}, ensure_ascii=False) + "\n")


@app.command()
@friendly_errors
def info(
    path: Path, as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False
) -> None:
    """Documents, tokens, bytes on disk and settings."""
    from polycolbert.index import Index

    with Index.open(path) as index:
        data = index.info()
    if as_json:
        print(json.dumps(data))
        return
    for key, value in data.items():
        print(f"{key}: {value}")


@app.command()
@friendly_errors
def compact(path: Path) -> None:
    """Re-cluster the live tokens and drop deleted entries (also triggered automatically by drift)."""
    from polycolbert.index import Index

    with Index.open(path) as index:
        index.compact()
        problems = index.check()
        if problems:
            raise ValueError("integrity check failed after compaction: " + "; ".join(problems))
        print(json.dumps({"documents": len(index), "compactions": index.info()["compactions"]}))
