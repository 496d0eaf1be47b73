"""``polycolbert encode``: token vectors (or, for a single-vector model, one vector) per text."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from polycolbert.cli.errors import friendly_errors
from polycolbert.formats import EMBEDDING_TYPES, check_embedding_type, to_json_vectors
from polycolbert.models.catalog import DEFAULT_MODEL

app = typer.Typer()


@app.command()
@friendly_errors
def encode(
    texts: Annotated[
        list[str] | None, typer.Argument(help="Texts to encode; '-' or none reads lines from stdin.")
    ] = None,
    model: Annotated[
        str,
        typer.Option(help="Catalogue name, hub id or checkpoint folder; multilingual-e5-small: one vector."),
    ] = DEFAULT_MODEL,
    input_type: Annotated[str, typer.Option(help="query or document.")] = "document",
    dimensions: Annotated[int | None, typer.Option(help="128, 96 or 64 (what the model offers).")] = None,
    embedding_type: Annotated[str, typer.Option(help=f"One of {', '.join(EMBEDDING_TYPES)}.")] = "float",
    dtype: Annotated[
        str, typer.Option(help="auto, float32, bfloat16 or int8 (approximate, on request only).")
    ] = "auto",
) -> None:
    """Print vectors as the JSON body the server returns: Jina's ``/v1/multi-vector`` for a ColBERT model,
    ``/v1/embeddings`` (one vector per text) for a single-vector model.

    A text that is empty or only punctuation and symbols is encoded as its special rows and named in a
    warning on stderr (by its position, ``input[i]``); it never stops the run.
    """
    from polycolbert.encoding.dense import DENSE_MODELS

    check_embedding_type(embedding_type)
    if input_type not in ("query", "document"):
        raise ValueError(f"--input-type must be query or document; got {input_type!r}")
    if not texts or texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if not texts:
        raise ValueError("no texts given: pass them as arguments or one per line on stdin")
    _warn_blank(texts)
    if model in DENSE_MODELS:
        body = _dense_body(texts, model, input_type, dimensions, embedding_type, dtype)
    else:
        body = _multi_vector_body(texts, model, input_type, dimensions, embedding_type, dtype)
    json.dump(body, sys.stdout)
    sys.stdout.write("\n")


def _warn_blank(texts: list[str], shown: int = 10) -> None:
    from polycolbert.encoding.recipe import blank_positions

    blank = [f"input[{i}]" for i in blank_positions(texts)]
    if blank:
        listed = ", ".join(blank[:shown]) + (f" and {len(blank) - shown} more" if len(blank) > shown else "")
        print(
            f"warning: {len(blank)} text(s) empty or only punctuation and symbols, encoded as their special "
            f"rows only: {listed}",
            file=sys.stderr,
        )


def _multi_vector_body(
    texts: list[str], model: str, input_type: str, dimensions: int | None, embedding_type: str, dtype: str
) -> dict[str, Any]:
    from polycolbert.encoding.encoder import ColBERT

    colbert = ColBERT.load(model, dtype=dtype)  # type: ignore[arg-type]
    dim = colbert.check_dimensions(dimensions)
    tokenized = colbert.tokenize(texts, input_type)  # type: ignore[arg-type]
    vectors = colbert.encode_tokenized(tokenized, (dim,))[dim]
    return {
        "model": colbert.name,
        "object": "list",
        "usage": {"total_tokens": sum(t.n_tokens for t in tokenized)},
        "data": [
            {"object": "embeddings", "index": i, "embeddings": to_json_vectors(v, embedding_type)}
            for i, v in enumerate(vectors)
        ],
    }


def _dense_body(
    texts: list[str], model: str, input_type: str, dimensions: int | None, embedding_type: str, dtype: str
) -> dict[str, Any]:
    from polycolbert.encoding.dense import DenseEncoder

    dense = DenseEncoder.load(model, dtype=dtype)  # type: ignore[arg-type]
    dim = dense.check_dimensions(dimensions)
    tokenized = dense.tokenize(texts, input_type)  # type: ignore[arg-type]
    vectors = dense.encode_tokenized(tokenized, (dim,))[dim]
    tokens = sum(t.n_tokens for t in tokenized)
    return {
        "object": "list",
        "model": dense.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "data": [
            {"object": "embedding", "index": i, "embedding": to_json_vectors(v, embedding_type)[0]}
            for i, v in enumerate(vectors)
        ],
    }
