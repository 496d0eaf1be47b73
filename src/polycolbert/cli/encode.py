"""``polycolbert encode`` and ``polycolbert models``: the engine from the command line."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from polycolbert.cli.errors import friendly_errors
from polycolbert.formats import EMBEDDING_TYPES, check_embedding_type, to_json_vectors
from polycolbert.models.catalog import CATALOG, DEFAULT_MODEL

app = typer.Typer()


@app.command()
@friendly_errors
def encode(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to encode; '-' or none reads lines from stdin.")
    ] = None,
    model: Annotated[str, typer.Option(help="Catalogue name, hub id or checkpoint folder.")] = DEFAULT_MODEL,
    input_type: Annotated[str, typer.Option(help="query or document.")] = "document",
    dimensions: Annotated[int | None, typer.Option(help="128, 96 or 64 (what the model offers).")] = None,
    embedding_type: Annotated[str, typer.Option(help=f"One of {', '.join(EMBEDDING_TYPES)}.")] = "float",
    dtype: Annotated[str, typer.Option(help="auto, float32 or bfloat16.")] = "auto",
) -> None:
    """Print token vectors as the JSON body Jina's ``/v1/multi-vector`` returns."""
    from polycolbert.encoding.encoder import ColBERT

    check_embedding_type(embedding_type)
    if input_type not in ("query", "document"):
        raise ValueError(f"--input-type must be query or document; got {input_type!r}")
    if not texts or texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ValueError("no texts given: pass them as arguments or one per line on stdin")
    colbert = ColBERT.load(model, dtype=dtype)  # type: ignore[arg-type]
    dim = colbert.check_dimensions(dimensions)
    vectors = colbert.encode_multi(texts, input_type, (dim,))[dim]  # type: ignore[arg-type]
    tokens = colbert.count_tokens(texts, input_type)  # type: ignore[arg-type]
    body = {
        "model": colbert.name,
        "object": "list",
        "usage": {"total_tokens": sum(tokens)},
        "data": [
            {"object": "embeddings", "index": i, "embeddings": to_json_vectors(v, embedding_type)}
            for i, v in enumerate(vectors)
        ],
    }
    json.dump(body, sys.stdout)
    sys.stdout.write("\n")


@app.command()
@friendly_errors
def models(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the models polycolbert knows by name."""
    rows = [
        {
            "name": e.name,
            "source": e.source,
            "layout": e.layout,
            "dimensions": list(e.dims),
            "query_maxlen": e.query_maxlen,
            "doc_maxlen": e.doc_maxlen,
            "languages": e.languages,
            "license": e.license,
            "description": e.description,
        }
        for e in CATALOG
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="polycolbert models")
    for column in ("name", "source", "dims", "query/doc tokens", "languages", "licence"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["source"]),
            "/".join(map(str, row["dimensions"])),  # type: ignore[call-overload]
            f"{row['query_maxlen']}/{row['doc_maxlen']}",
            str(row["languages"]),
            str(row["license"]),
        )
    Console().print(table)
