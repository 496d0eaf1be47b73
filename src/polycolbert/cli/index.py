"""``polycolbert index ...``: create, fill, search and maintain an index.

Every command takes a LOCATION: an embedded index folder, or a Qdrant collection
(``qdrant://host:port/collection``, ``qdrants://`` for HTTPS, ``qdrant+local://folder/collection``); the
commands are the same for both because they talk only to the ``Backend`` protocol.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from polycolbert.cli.errors import friendly_errors
from polycolbert.corpus import Document, iter_documents, read_documents, scan_documents, write_trec
from polycolbert.index.params import NBITS, K

if TYPE_CHECKING:
    from polycolbert.documents import DocumentBatch

app = typer.Typer(
    no_args_is_help=True,
    help="Multi-vector index: an embedded folder (no service to run) or a Qdrant collection (qdrant://...).",
)
LOCATION_HELP = "Index folder, qdrant://host:port/collection or qdrant+local://folder/collection."
LockTimeout = Annotated[
    float | None,
    typer.Option(
        "--lock-timeout",
        metavar="S",
        min=0,
        help="How long a write waits for another writer of an embedded index before giving up (default 30).",
    ),
]
Location = Annotated[str, typer.Argument(help=LOCATION_HELP, metavar="LOCATION")]


# Rows a document's vectors have beyond its subwords: [CLS], the document marker and [SEP].
ROWS_BEYOND_SUBWORDS = 3


@app.command()
@friendly_errors
def create(
    location: Location,
    model: Annotated[str, typer.Option(help="Catalogue name, hub id or checkpoint folder.")] = "",
    dimensions: Annotated[int | None, typer.Option(help="A Matryoshka size the model offers.")] = None,
    nbits: Annotated[
        int, typer.Option(help="Embedded index: residual bits per dimension, 1, 2 or 4.")
    ] = NBITS,
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
    from polycolbert.backends import create_backend
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
        print(json.dumps({"location": location, "model": info.model, "dimensions": info.dimensions}))


@app.command()
@friendly_errors
def add(
    location: Location,
    file: Annotated[Path, typer.Argument(help="JSONL or BEIR corpus.jsonl[.gz].")],
    batch_size: Annotated[int, typer.Option(help="Texts per encoder batch.")] = 32,
    memory_budget: Annotated[
        float | None,
        typer.Option(
            "--memory-budget",
            metavar="MB",
            help="MiB of token vectors to hold at once while encoding and writing (default 1024).",
        ),
    ] = None,
    lock_timeout: LockTimeout = None,
) -> None:
    """Encode and add documents; bad lines or known ids reject the whole file, before any encoding.

    The file is read twice: once to check every line (keeping only ids), then in chunks that are encoded
    and written one after another, so memory follows --memory-budget, not the file's size. An embedded
    index encodes without holding its write lock and commits the whole file at once (all or nothing; other
    writers and readers go on meanwhile, and a commit waits --lock-timeout for another one). A Qdrant
    collection stores chunk after chunk: a failure part-way (e.g. the network) keeps the chunks before it.
    """
    from polycolbert.backends import open_backend
    from polycolbert.index import params

    budget = params.MEMORY_BUDGET_MB if memory_budget is None else memory_budget
    params.chunk_tokens(budget, 1)  # a bad budget is refused before the file is read
    ids = scan_documents(file)
    with contextlib.closing(open_backend(location, **_waiting(lock_timeout))) as backend:
        taken = backend.existing(ids)
        if taken:
            raise ValueError(
                f"{len(taken)} id(s) already in the index, e.g. {sorted(taken)[:5]}; nothing added"
            )
        total = len(ids)
        del ids
        chunk = params.chunk_tokens(budget, backend.dimensions)
        blank: list[str] = []
        with _progress_bar(total) as advance:
            batches = _encoded_batches(
                iter_documents(file), backend.encoder(), backend.dimensions, batch_size, chunk, advance, blank
            )
            added = backend.add_stream(batches, memory_budget_mb=budget)
        if blank:
            shown = ", ".join(repr(i) for i in blank[:10]) + (" ..." if len(blank) > 10 else "")
            print(
                f"warning: {len(blank)} document(s) have nothing to match (empty, or only punctuation and "
                f"symbols) and were stored with their special rows only: {shown}",
                file=sys.stderr,
            )
        print(json.dumps({"added": added, "documents": backend.info().documents}))


def _encoded_batches(
    documents: Iterator[Document],
    encoder: Any,
    dimensions: int,
    batch_size: int,
    chunk_tokens: int,
    advance: Callable[[int], None],
    blank: list[str] | None = None,
) -> Iterator[DocumentBatch]:
    """Documents in groups of about one chunk of token vectors, each group encoded when it is reached.

    Why characters: a group must be cut before it is encoded, and a subword covers at least one
    character, so ``len(text) + ROWS_BEYOND_SUBWORDS`` bounds a document's vectors (the index cuts its
    chunks by the real counts; this keeps the encoder's output near one chunk). The ids of documents with
    nothing to match (empty, or only symbols) are collected in ``blank``: they are stored all the same.
    """
    from polycolbert.encoding.recipe import is_blank

    group: list[Document] = []
    rows = 0
    for document in documents:
        n = len(document.text) + ROWS_BEYOND_SUBWORDS
        if group and rows + n > chunk_tokens:
            yield _encode_group(group, encoder, dimensions, batch_size)
            advance(len(group))
            group, rows = [], 0
        group.append(document)
        rows += n
        if blank is not None and is_blank(document.text):
            blank.append(document.id)
    if group:
        yield _encode_group(group, encoder, dimensions, batch_size)
        advance(len(group))


def _encode_group(group: list[Document], encoder: Any, dimensions: int, batch_size: int) -> DocumentBatch:
    from polycolbert.documents import DocumentBatch

    ids, texts, metas = (list(column) for column in zip(*group, strict=True))
    if "batch_size" in inspect.signature(encoder.encode_documents).parameters:
        vectors = encoder.encode_documents(texts, dimensions=dimensions, batch_size=batch_size)
    else:  # encoders without batching (test doubles)
        vectors = encoder.encode_documents(texts, dimensions=dimensions)
    return DocumentBatch(texts, ids=ids, metadata=metas, vectors=vectors)


@contextlib.contextmanager
def _progress_bar(total: int) -> Iterator[Callable[[int], None]]:
    """One bar over the whole file (documents encoded and written), on stderr: stdout is the result."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("adding"), BarColumn(), MofNCompleteColumn(), TextColumn("documents"))
    with Progress(*columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("adding", total=total)
        yield lambda n: bar.advance(task, n)


def _waiting(lock_timeout: float | None) -> dict[str, float]:
    """The open option for --lock-timeout, only when given (a Qdrant collection refuses it by name)."""
    return {} if lock_timeout is None else {"lock_timeout": lock_timeout}


@app.command()
@friendly_errors
def delete(
    location: Location,
    ids: Annotated[list[str], typer.Argument(help="Document ids.")],
    lock_timeout: LockTimeout = None,
) -> None:
    """Delete documents by id (unknown ids are counted, not an error)."""
    from polycolbert.backends import open_backend

    with contextlib.closing(open_backend(location, **_waiting(lock_timeout))) as backend:
        print(json.dumps({"deleted": backend.delete(ids), "documents": backend.info().documents}))


@app.command()
@friendly_errors
def search(
    location: Location,
    query: Annotated[str | None, typer.Option(help="One query text.")] = None,
    queries: Annotated[Path | None, typer.Option(help="JSONL of {_id, text} or BEIR queries.jsonl.")] = None,
    k: Annotated[int, typer.Option(help="Results per query.")] = K,
    exhaustive: Annotated[bool, typer.Option(help="Score every document (for checking).")] = False,
    hybrid: Annotated[bool, typer.Option(help="Fuse FTS5 keyword ranks with MaxSim (RRF).")] = False,
    fusion: Annotated[
        str, typer.Option(help="none, or bm25: rank MaxSim's best 100 again with BM25 (docs/quality.md).")
    ] = "none",
    filter: Annotated[str | None, typer.Option(help='Metadata filter as JSON, e.g. {"lang": "de"}.')] = None,
    output: Annotated[Path | None, typer.Option(help="Write a TREC run file instead of JSON lines.")] = None,
) -> None:
    """Search with one query (--query) or many (--queries); prints JSON or writes a TREC run."""
    from polycolbert.backends import open_backend
    from polycolbert.filters import validate_filter

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
                qtexts[start : start + 64],
                k=k,
                filter=parsed_filter,
                hybrid=hybrid,
                exhaustive=exhaustive,
                fusion=fusion,
            )
    if output is not None:
        run = {qid: {hit.id: hit.score for hit in hits} for qid, hits in zip(qids, results, strict=True)}
        write_trec(output, run, tag="polycolbert")
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
    from polycolbert.backends import open_backend

    with contextlib.closing(open_backend(location)) as backend:
        data = backend.info().to_dict()
    if as_json:
        print(json.dumps(data))
        return
    for key, value in data.items():
        print(f"{key}: {value}")


@app.command()
@friendly_errors
def compact(location: Location, lock_timeout: LockTimeout = None) -> None:
    """Re-cluster the live tokens and drop deleted entries (also triggered automatically by drift)."""
    from polycolbert.backends import open_backend

    with contextlib.closing(open_backend(location, **_waiting(lock_timeout))) as backend:
        result = backend.compact()
        print(json.dumps({**result, "documents": backend.info().documents}))


@app.command()
@friendly_errors
def check(location: Location) -> None:
    """Verify an embedded index: its database, every file's checksum, shapes, values; exit 1 on problems."""
    from polycolbert.backends import is_qdrant
    from polycolbert.index import check_folder

    if is_qdrant(location):
        raise ValueError("check verifies embedded index folders; Qdrant checks its own collections")
    problems = check_folder(location)
    print(json.dumps({"location": location, "healthy": not problems, "problems": problems}))
    if problems:
        raise typer.Exit(code=1)
