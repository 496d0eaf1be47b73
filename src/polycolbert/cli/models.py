"""``polycolbert models``: the models polycolbert knows by name, ColBERT and single-vector.

The table never cuts a name: in a narrow terminal it becomes one block per model (``cli/tables.py``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from polycolbert.cli.errors import friendly_errors

app = typer.Typer()
HEADERS = ("name", "kind", "source", "dims", "tokens", "languages", "licence")


def catalogue() -> list[dict[str, Any]]:
    """Every known model as a plain record: the ColBERT catalogue, then the single-vector models."""
    from polycolbert.encoding.dense import DENSE_MODELS
    from polycolbert.models.catalog import CATALOG

    rows: list[dict[str, Any]] = [
        {
            "name": e.name,
            "kind": "multi-vector",
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
    rows += [
        {
            "name": d.name,
            "kind": "single-vector",
            "source": d.source,
            "dimensions": [d.hidden_size],
            "max_tokens": d.max_tokens,
            "prefixes": dict(d.prefixes),
            "languages": d.languages,
            "license": d.license,
            "description": d.description,
        }
        for d in DENSE_MODELS.values()
    ]
    return rows


def _cells(row: dict[str, Any]) -> list[str]:
    tokens = f"{row['query_maxlen']}/{row['doc_maxlen']}" if "query_maxlen" in row else str(row["max_tokens"])
    dims = "/".join(str(d) for d in row["dimensions"])
    return [row["name"], row["kind"], row["source"], dims, tokens, row["languages"], row["license"]]


@app.command()
@friendly_errors
def models(as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False) -> None:
    """List the models polycolbert knows by name."""
    rows = catalogue()
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    from rich.console import Console

    from polycolbert.cli.tables import print_records

    console = Console()
    print_records(console, "polycolbert models", HEADERS, [_cells(row) for row in rows])
    console.print(precision_note())


def precision_note() -> str:
    """Which precision ``dtype="auto"`` gives on this machine, and why (encoding/precision.py)."""
    import torch

    from polycolbert.encoding.precision import choose_precision, precision_line

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return "dtype auto on this machine: " + precision_line(choose_precision("auto", device), device)
