"""``polycolbert serve``: the Jina-compatible API server (the project's main job)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from polycolbert.cli.errors import friendly_errors
from polycolbert.server.limits import MAX_BATCH_TOKENS, MAX_QUEUE, MAX_REQUEST_TOKENS, MAX_RESPONSE_BYTES

app = typer.Typer()


@app.command()
@friendly_errors
def serve(
    model: Annotated[
        list[str] | None, typer.Option(help="Model to serve: PATH, name or NAME=PATH; repeatable.")
    ] = None,
    host: str = "127.0.0.1",
    port: int = 8000,
    index_root: Annotated[
        str | None,
        typer.Option(
            help="Where /v1/indexes live: a folder of embedded indexes, qdrant://host:port or "
            "qdrant+local://folder (each collection is an index)."
        ),
    ] = None,
    keys_file: Annotated[Path | None, typer.Option(help="File with one API key per line.")] = None,
    dtype: Annotated[
        str, typer.Option(help="auto, float32, bfloat16 or int8 (approximate, on request only).")
    ] = "auto",
    max_queue: Annotated[int, typer.Option(min=1, help="Queued jobs per model before 429.")] = MAX_QUEUE,
    max_batch_tokens: Annotated[int, typer.Option(min=64)] = MAX_BATCH_TOKENS,
    max_request_tokens: Annotated[
        int, typer.Option(min=64, help="Tokens one request may ask for before a 400.")
    ] = MAX_REQUEST_TOKENS,
    max_response_mb: Annotated[
        float,
        typer.Option(min=1, help="Largest response body in MiB, estimated before encoding; more is a 400."),
    ] = MAX_RESPONSE_BYTES / 2**20,
    batching: Annotated[bool, typer.Option(help="Merge concurrent requests into shared batches.")] = True,
    aliases: Annotated[bool, typer.Option(help="Answer 'jina-colbert-v2' with the default model.")] = True,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="Host name answered besides loopback names and --host (DNS rebinding guard)."),
    ] = None,
    allowed_origin: Annotated[
        list[str] | None,
        typer.Option(help="Web page origin (scheme://host:port) allowed to call the API; * for any."),
    ] = None,
) -> None:
    """Serve /v1/multi-vector, /v1/embeddings and /v1/rerank (Jina's API) for local models."""
    import uvicorn

    from polycolbert.server.app import create_app, load_registry
    from polycolbert.server.auth import load_keys
    from polycolbert.server.cross_site import SitePolicy, is_loopback

    keys = load_keys(keys_file)
    if not keys and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host} without API keys: set POLYCOLBERT_API_KEYS or --keys-file, "
            "or bind to 127.0.0.1"
        )
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not keys:
        logging.getLogger("polycolbert.server").warning(
            "no API keys configured: serving without authentication on %s (loopback only)", host
        )
    registry = load_registry(model or [], dtype, max_queue, max_batch_tokens, batching, aliases)
    uvicorn.run(
        create_app(
            registry,
            keys,
            max_request_tokens,
            index_root=index_root,
            max_response_bytes=int(max_response_mb * 2**20),
            site=SitePolicy(host, tuple(allowed_host or ()), tuple(allowed_origin or ())),
        ),
        host=host,
        port=port,
        timeout_graceful_shutdown=30,
        log_level="info",
    )
