"""``create_app``: the FastAPI application, with auth, request ids, logs, metrics and error shapes.

>>> from polycolbert.server.app import create_app, load_registry
>>> app = create_app(load_registry([]), keys=[])      # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Route

from polycolbert import __version__
from polycolbert.backends.registry import BackendRegistry
from polycolbert.server import errors
from polycolbert.server.auth import check_authorization
from polycolbert.server.batching import Batcher
from polycolbert.server.cross_site import SitePolicy, check_cross_site
from polycolbert.server.limits import MAX_BATCH_TOKENS, MAX_QUEUE, MAX_REQUEST_TOKENS, MAX_RESPONSE_BYTES
from polycolbert.server.memory import tune_malloc
from polycolbert.server.metrics import Metrics, route_label
from polycolbert.server.registry import DEFAULT_ALIASES, Registry
from polycolbert.server.routes.indexes import router as index_router
from polycolbert.server.routes.jina import router as jina_router
from polycolbert.server.schemas import ModelList

log = logging.getLogger("polycolbert.server")
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


def load_registry(
    specs: Sequence[str],
    dtype: str = "auto",
    max_queue: int = MAX_QUEUE,
    max_batch_tokens: int = MAX_BATCH_TOKENS,
    batching: bool = True,
    aliases: bool = True,
    dense: bool = True,
) -> Registry:
    """Load ``NAME=PATH`` / ``PATH`` specs plus the default model (always served) and, with ``dense``,
    the single-vector ``multilingual-e5-small`` on the default model's backbone tensors."""
    from polycolbert.encoding.dense import E5_SMALL, DenseEncoder
    from polycolbert.encoding.encoder import ColBERT
    from polycolbert.encoding.precision import precision_line
    from polycolbert.models.catalog import DEFAULT_MODEL

    tune_malloc()  # before the batcher threads start (server/memory.py says why)
    registry = Registry(aliases=dict(DEFAULT_ALIASES) if aliases else {})
    wanted: list[tuple[str | None, str]] = []
    for spec in specs:
        head, sep, tail = spec.partition("=")
        wanted.append((head, tail) if sep else (None, spec))
    if not any(DEFAULT_MODEL in (label, path) for label, path in wanted):
        wanted.insert(0, (DEFAULT_MODEL, DEFAULT_MODEL))
    for label, path in wanted:
        model = ColBERT.load(path, dtype=dtype)  # type: ignore[arg-type]
        served_name = label or model.name
        log.info("%s: %s", served_name, precision_line(model.precision, model.device))
        registry.add(served_name, model, Batcher(model, max_queue, max_batch_tokens, enabled=batching))
    if dense and E5_SMALL.name not in registry.models:
        colbert = [served.model for served in registry.models.values()]
        encoder = DenseEncoder.load(share_with=colbert, dtype=dtype)  # type: ignore[arg-type]
        registry.add_dense(
            encoder.name, encoder, Batcher(encoder, max_queue, max_batch_tokens, enabled=batching)
        )
    return registry


def create_app(
    registry: Registry,
    keys: Sequence[str],
    max_request_tokens: int = MAX_REQUEST_TOKENS,
    index_root: str | Path | None = None,
    site: SitePolicy | None = None,
    max_response_bytes: int = MAX_RESPONSE_BYTES,
) -> FastAPI:
    """The app over already loaded models; ``keys`` empty means no authentication (loopback only).

    A request whose response would pass ``max_response_bytes`` (estimated before encoding) is a 400 that
    says how to ask for less (``server/routes/jina.py``).

    ``site`` says which Host names and Origin pages are answered (``server/cross_site.py``); the default
    serves loopback names and same-origin pages only.
    """
    tune_malloc()  # before the worker threads allocate (server/memory.py says why)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        registry.close()  # drain queued work before the process exits
        app.state.indexes.close()

    app = FastAPI(
        title="polycolbert",
        version=__version__,
        lifespan=lifespan,
        description="Jina-compatible multi-vector embeddings and rerank, served from your own machine.",
    )
    app.state.registry, app.state.metrics, app.state.keys = registry, metrics, list(keys)
    app.state.max_request_tokens = max_request_tokens
    app.state.max_response_bytes = max_response_bytes
    app.state.site = site or SitePolicy()
    app.add_exception_handler(errors.APIError, errors.handle_api_error)
    app.add_exception_handler(RequestValidationError, errors.handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, errors.handle_http_error)
    app.add_exception_handler(Exception, errors.handle_unexpected)
    routes: list[BaseRoute] = []  # every route, once all are added: labels requests refused before routing

    @app.middleware("http")
    async def request_context(request: Request, call_next):  # type: ignore[no-untyped-def]
        supplied = request.headers.get("x-request-id", "")
        # A caller's id is kept (to follow one request across services) only if it is a plain token.
        request.state.request_id = supplied if REQUEST_ID.fullmatch(supplied) else uuid.uuid4().hex
        started = time.perf_counter()
        path = request.url.path
        try:
            check_cross_site(request.method, request.headers, app.state.site)
            if path.startswith("/v1/"):
                check_authorization(request.headers.get("authorization"), app.state.keys)
            response = await call_next(request)
        except errors.APIError as error:
            response = await errors.handle_api_error(request, error)
        except Exception as error:  # anything a handler missed is still a well-formed 500, logged
            response = await errors.handle_unexpected(request, error)
        elapsed = time.perf_counter() - started
        response.headers["X-Request-ID"] = request.state.request_id
        label = route_label(request, routes)
        metrics.requests.labels(label, str(response.status_code)).inc()
        metrics.latency.labels(label).observe(elapsed)
        log.info(
            json.dumps(
                {
                    "request_id": request.state.request_id,
                    "method": request.method,
                    "path": path,
                    "status": response.status_code,
                    "ms": round(elapsed * 1000, 2),
                }
            )
        )
        return response

    app.include_router(jina_router)
    app.state.indexes = BackendRegistry(index_root)
    app.include_router(index_router)

    @app.get("/v1/models", response_model=ModelList)
    async def models() -> ModelList:
        return ModelList(data=registry.cards())

    @app.get("/", include_in_schema=False)
    async def playground() -> HTMLResponse:
        """The web playground: rank pasted documents or an index, see which tokens matched."""
        page = resources.files("polycolbert.server").joinpath("static/playground.html")
        return HTMLResponse(page.read_text(encoding="utf-8"))

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "models": sorted([*registry.models, *registry.dense])}

    @app.get("/metrics")
    async def prometheus() -> Response:
        for name, batcher in registry.batchers().items():
            metrics.queue_depth.labels(name).set(batcher.depth)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes += [*jina_router.routes, *index_router.routes]
    routes += [route for route in app.router.routes if isinstance(route, Route)]
    return app
