"""``polycolbert index ...``: create, fill, search and maintain an index.

Every command takes a LOCATION: an embedded index folder, or a Qdrant collection
(``qdrant://host:port/collection``, ``qdrants://`` for HTTPS, ``qdrant+local://folder/collection``); the
commands are the same for both because they talk only to the ``Backend`` protocol.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from polycolbert.cli.errors import friendly_errors

app = typer.Typer(
    no_args_is_help=True,
    help="Multi-vector index: an embedded folder (no service to run) or a Qdrant collection (qdrant://...).",
)
LOCATION_HELP = "Index folder, qdrant://host:port/collection or qdrant+local://folder/collection."
Location = Annotated[str, typer.Argument(help=LOCATION_HELP, metavar="LOCATION")]


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


def _encoder(backend: Any) -> Any:
    """The model that encodes for this store (loaded on first use; the store's own model name)."""
    from polycolbert.backends.local import LocalBackend

    if isinstance(backend, LocalBackend):
        return backend.index._encoder()
    return backend.model


@app.command()
@friendly_errors
def create(
    location: Location,
    model: Annotated[str, typer.Option(help="Catalogue name, hub id or checkpoint folder.")] = "",
    dimensions: Annotated[int | None, typer.Option(help="A Matryoshka size the model offers.")] = None,
    nbits: Annotated[int, typer.Option(help="Embedded index: residual bits per dimension, 1, 2 or 4.")] = 2,
    prefetch: Annotated[
        str | None, typer.Option(help="Qdrant: single-vector prefetch, mean | muvera | none.")
    ] = None,
    distance: Annotated[str | None, typer.Option(help="Qdrant: cosine | dot.")] = None,
    quantization: Annotated[str | None, typer.Option(help="Qdrant: scalar | binary.")] = None,
    on_disk: Annotated[bool | None, typer.Option(help="Qdrant: keep vectors and payload on disk.")] = None,
    shard_number: Annotated[int | None, typer.Option(help="Qdrant: shards of the collection.")] = None,
    replication_factor: Annotated[int | None, typer.Option(help="Qdrant: copies of each shard.")] = None,
    write_consistency_factor: Annotated[
        int | None, typer.Option(help="Qdrant: replicas that must confirm a write.")
    ] = None,
) -> None:
    """Create an empty index for one model at one size (an existing one is an error)."""
    from polycolbert.backends.base import create_backend
    from polycolbert.models.catalog import DEFAULT_MODEL

    given = {
        "distance": distance,
        "quantization": quantization,
        "on_disk": on_disk,
        "shard_number": shard_number,
        "replication_factor": replication_factor,
        "write_consistency_factor": write_consistency_factor,
    }
    qdrant_options: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    if prefetch is not None:
        qdrant_options["prefetch"] = None if prefetch == "none" else prefetch
    backend = create_backend(
        location, model=model or DEFAULT_MODEL, dimensions=dimensions, nbits=nbits, **qdrant_options
    )
    with contextlib.closing(backend):
        info = backend.info()
        print(json.dumps({"location": location, "model": info["model"], "dimensions": info["dimensions"]}))


@app.command()
@friendly_errors
def add(
    location: Location,
    file: Annotated[Path, typer.Argument(help="JSONL or BEIR corpus.jsonl[.gz].")],
    batch_size: Annotated[int, typer.Option(help="Texts per encoder batch.")] = 32,
) -> None:
    """Encode and add documents in one atomic commit (bad lines or known ids reject the whole file)."""
    from polycolbert.backends.base import open_backend

    ids, texts, metas = read_documents(file)
    with contextlib.closing(open_backend(location)) as backend:
        taken = backend.existing(ids)
        if taken:
            raise ValueError(
                f"{len(taken)} id(s) already in the index, e.g. {sorted(taken)[:5]}; nothing added"
            )
        encoder = _encoder(backend)
        try:
            vectors = encoder.encode_documents(
                texts, dimensions=backend.dimensions, batch_size=batch_size, progress=True
            )
        except TypeError:  # encoders without progress bars (test doubles)
            vectors = encoder.encode_documents(texts, dimensions=backend.dimensions)
        backend.add(texts, ids=ids, metadata=metas, vectors=vectors)
        print(json.dumps({"added": len(ids), "documents": backend.info()["documents"]}))


@app.command()
@friendly_errors
def delete(location: Location, ids: Annotated[list[str], typer.Argument(help="Document ids.")]) -> None:
    """Delete documents by id (unknown ids are counted, not an error)."""
    from polycolbert.backends.base import open_backend

    with contextlib.closing(open_backend(location)) as backend:
        print(json.dumps({"deleted": backend.delete(ids), "documents": backend.info()["documents"]}))


@app.command()
@friendly_errors
def search(
    location: Location,
    query: Annotated[str | None, typer.Option(help="One query text.")] = None,
    queries: Annotated[Path | None, typer.Option(help="JSONL of {_id, text} or BEIR queries.jsonl.")] = None,
    k: Annotated[int, typer.Option(help="Results per query.")] = 10,
    exhaustive: Annotated[bool, typer.Option(help="Score every document (for checking).")] = False,
    hybrid: Annotated[bool, typer.Option(help="Fuse FTS5 keyword ranks with MaxSim (RRF).")] = False,
    filter: Annotated[str | None, typer.Option(help='Metadata filter as JSON, e.g. {"lang": "de"}.')] = None,
    output: Annotated[Path | None, typer.Option(help="Write a TREC run file instead of JSON lines.")] = None,
) -> None:
    """Search with one query (--query) or many (--queries); prints JSON or writes a TREC run."""
    from polycolbert.backends.base import open_backend, validate_filter

    if (query is None) == (queries is None):
        raise ValueError("give exactly one of --query TEXT or --queries FILE")
    if k <= 0:
        raise ValueError(f"--k must be a positive integer; got {k}")
    parsed_filter = None
    if filter is not None:
        try:
            parsed_filter = validate_filter(json.loads(filter), "--filter")
        except json.JSONDecodeError as exc:
            raise ValueError(f"--filter is not valid JSON: {exc.msg}") from None
    if query is not None:
        qids, qtexts = ["q"], [query]
    else:
        assert queries is not None
        qids, qtexts, _ = read_documents(queries)
    with contextlib.closing(open_backend(location)) as backend:
        results = []
        for start in range(0, len(qtexts), 64):
            results += backend.search(
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
    location: Location, as_json: Annotated[bool, typer.Option("--json", help="Machine-readable.")] = False
) -> None:
    """Documents, tokens, bytes on disk and settings."""
    from polycolbert.backends.base import open_backend

    with contextlib.closing(open_backend(location)) as backend:
        data = backend.info()
    if as_json:
        print(json.dumps(data))
        return
    for key, value in data.items():
        print(f"{key}: {value}")


@app.command()
@friendly_errors
def compact(location: Location) -> None:
    """Re-cluster the live tokens and drop deleted entries (also triggered automatically by drift)."""
    from polycolbert.backends.base import open_backend

    with contextlib.closing(open_backend(location)) as backend:
        result = backend.compact()
        print(json.dumps({**result, "documents": backend.info()["documents"]}))
