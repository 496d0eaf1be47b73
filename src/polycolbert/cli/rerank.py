"""``polycolbert rerank``: rank documents for one query (no index), as a table or as JSON.

The JSON is the ``results`` of Jina's ``/v1/rerank`` (``index``, ``relevance_score``, ``document``, and
with ``--explain`` the token ``matches``), so scripts can read either.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from polycolbert.cli.errors import friendly_errors
from polycolbert.models.catalog import DEFAULT_MODEL

app = typer.Typer()
SHOWN_MATCHES = 5  # strongest token matches per document in the table (--json has them all)


@app.command()
@friendly_errors
def rerank(
    query: Annotated[str, typer.Option("--query", "-q", help="The query.")],
    documents: Annotated[list[str] | None, typer.Argument(help="Documents to rank.")] = None,
    file: Annotated[
        Path | None,
        typer.Option(help="More documents: .txt (one per line) or JSONL of {id, text, title?}."),
    ] = None,
    top_n: Annotated[int | None, typer.Option(help="Keep the best N (default: all).")] = None,
    model: Annotated[str, typer.Option(help="Catalogue name, hub id or checkpoint folder.")] = DEFAULT_MODEL,
    dimensions: Annotated[int | None, typer.Option(help="128, 96 or 64 (what the model offers).")] = None,
    explain: Annotated[bool, typer.Option(help="Show which query tokens matched what.")] = False,
    fusion: Annotated[
        str, typer.Option(help="none, or bm25: rank again with BM25 over these documents (fused score).")
    ] = "none",
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Rank DOCUMENTS (and those in --file) by MaxSim against --query, best first."""
    from polycolbert.encoding.encoder import ColBERT
    from polycolbert.rerank import check_fusion, rerank_texts

    check_fusion(fusion)

    texts = list(documents or [])
    ids: list[str | None] = [None] * len(texts)
    if file is not None:
        more_texts, more_ids = _read(file)
        texts, ids = texts + more_texts, ids + more_ids
    if not texts:
        raise ValueError("no documents given: pass them as arguments or with --file")
    if top_n is not None and top_n <= 0:
        raise ValueError(f"--top-n must be a positive integer; got {top_n}")
    colbert = ColBERT.load(model)
    ranked = rerank_texts(
        colbert, query, texts, top_n=top_n, dimensions=dimensions, explain=explain, fusion=fusion
    )
    if as_json:
        results = []
        for r in ranked:
            document: dict[str, Any] = {"text": r.text}
            if ids[r.index] is not None:
                document = {"id": ids[r.index], **document}
            result: dict[str, Any] = {"index": r.index, "relevance_score": r.score, "document": document}
            if r.matches is not None:
                result["matches"] = [asdict(m) for m in r.matches]
            results.append(result)
        json.dump({"model": colbert.name, "results": results}, sys.stdout, ensure_ascii=False)
        sys.stdout.write("\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{query!r} ({colbert.name})")
    for column in ("rank", "index", "score", "document"):
        table.add_column(column, justify="right" if column != "document" else "left")
    if explain:
        table.add_column("matches")
    for rank, r in enumerate(ranked, start=1):
        label = r.text if ids[r.index] is None else f"[{ids[r.index]}] {r.text}"
        row = [str(rank), str(r.index), f"{r.score:.3f}", label]
        if r.matches is not None:
            best = sorted(r.matches, key=lambda m: -m.score)[:SHOWN_MATCHES]
            row.append(", ".join(f"{m.query_token}→{m.document_token} {m.score:.2f}" for m in best))
        table.add_row(*row)
    Console().print(table)


def _read(path: Path) -> tuple[list[str], list[str | None]]:
    """Texts (and ids, for JSONL) of a documents file: ``.txt`` one per non-blank line, else JSONL."""
    from polycolbert.corpus import read_documents, read_lines

    if path.suffix == ".txt":
        lines = read_lines(path)
        return lines, [None] * len(lines)
    ids, texts, _ = read_documents(path)
    return texts, list(ids)
