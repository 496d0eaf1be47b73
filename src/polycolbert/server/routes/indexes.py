"""Index routes: indexes under one root, with the same auth, limits and error shape as the Jina routes.

The root is a folder of embedded indexes, or a Qdrant deployment (``qdrant://host:port`` or
``qdrant+local://folder``) whose collections are the indexes: the routes talk only to the ``Backend``
protocol, so they work unchanged on either.

``GET /v1/indexes``, ``POST /v1/indexes`` (create), ``GET /v1/indexes/{name}`` (info),
``POST /v1/indexes/{name}/documents`` (add or update), ``POST /v1/indexes/{name}/documents/delete``,
``POST /v1/indexes/{name}/search``. Indexes use the served model of the same name, so one loaded model
serves both the Jina routes and search.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import Field, StrictBool, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool

from polycolbert.backends import Backend, create_backend, is_qdrant, open_backend
from polycolbert.filters import validate_filter
from polycolbert.server.errors import APIError
from polycolbert.server.routes.jina import read_request
from polycolbert.server.schemas import MAX_INPUTS, Strict

router = APIRouter()
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class CreateIndex(Strict):
    name: StrictStr
    model: StrictStr = "polycolbert-e5-small"
    dimensions: StrictInt | None = None
    nbits: StrictInt = 2


class Document(Strict):
    id: StrictStr
    text: StrictStr
    metadata: dict[str, Any] = Field(default_factory=dict)


class AddDocuments(Strict):
    documents: Annotated[list[Document], Field(min_length=1, max_length=MAX_INPUTS)]
    update: StrictBool = False


class DeleteDocuments(Strict):
    ids: Annotated[list[StrictStr], Field(min_length=1, max_length=10_000)]


class SearchIndex(Strict):
    queries: Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_INPUTS)]
    k: Annotated[StrictInt, Field(ge=1, le=1000)] = 10
    filter: dict[str, Any] | None = None
    hybrid: StrictBool = False
    exhaustive: StrictBool = False


class IndexStore:
    """Open indexes by name under ``root``; one write lock per index (SQLite serialises commits anyway)."""

    def __init__(self, root: str | Path | None):
        self.root = None if root is None else str(root).rstrip("/") or "/"
        self.qdrant = self.root is not None and is_qdrant(self.root)
        self.open: dict[str, Backend] = {}
        self.locks: dict[str, threading.Lock] = {}

    def location(self, name: str) -> str:
        if self.root is None:
            raise APIError(
                404, "RESOURCE_NOT_FOUND", "This server has no index root: start it with --index-root DIR"
            )
        if not NAME.match(name):
            raise APIError(400, "INPUT_INVALID", f"Index name {name!r}: use letters, digits, '_', '-', '.'")
        return f"{self.root}/{name}" if self.qdrant else str(Path(self.root) / name)

    def exists(self, name: str) -> bool:
        if self.qdrant:
            from polycolbert.backends.qdrant import is_polycolbert_collection

            return bool(_checked(is_polycolbert_collection, self.location(name)))
        return Path(self.location(name)).exists()

    def get(self, request: Request, name: str) -> Backend:
        if name in self.open:
            return self.open[name]
        location = self.location(name)
        if not self.exists(name) or (not self.qdrant and not (Path(location) / "index.sqlite").is_file()):
            raise APIError(404, "RESOURCE_NOT_FOUND", f"No index named {name!r}")
        probe = _checked(open_backend, location)
        model_name = probe.model_name
        probe.close()
        served = request.app.state.registry.get(model_name)
        self.open[name] = _checked(open_backend, location, model=served.model)
        self.locks[name] = threading.Lock()
        return self.open[name]

    def create(self, name: str, model: Any, dimensions: int | None, nbits: int) -> Backend:
        backend = create_backend(self.location(name), model=model, dimensions=dimensions, nbits=nbits)
        self.open[name], self.locks[name] = backend, threading.Lock()
        return backend

    def names(self) -> list[str]:
        if self.root is None:
            return []
        if self.qdrant:
            from polycolbert.backends.qdrant import list_collections

            return _checked(list_collections, self.root)
        root = Path(self.root)
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "index.sqlite").is_file())

    def close(self) -> None:
        for backend in self.open.values():
            backend.close()
        self.open.clear()


def _store(request: Request) -> IndexStore:
    return request.app.state.indexes


def _checked(call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except (ValueError, KeyError) as error:
        raise APIError(400, "INPUT_INVALID", str(error)) from None


@router.get("/v1/indexes")
async def list_indexes(request: Request) -> dict[str, Any]:
    store = _store(request)
    data = []
    for name in store.names():
        info = await run_in_threadpool(store.get(request, name).info)
        data.append(
            {
                "name": name,
                "model": info["model"],
                "dimensions": info["dimensions"],
                "documents": info["documents"],
            }
        )
    return {"object": "list", "data": data}


@router.post("/v1/indexes", status_code=201)
async def create_index(request: Request) -> dict[str, Any]:
    body: CreateIndex = await read_request(request, CreateIndex)
    store = _store(request)
    store.location(body.name)  # validates the name before anything else
    if await run_in_threadpool(store.exists, body.name):
        raise APIError(409, "CONFLICT_RESOURCE_BUSY", f"Index {body.name!r} already exists")
    served = request.app.state.registry.get(body.model)
    index = await run_in_threadpool(
        _checked, store.create, body.name, served.model, body.dimensions, body.nbits
    )
    return await run_in_threadpool(index.info)


@router.get("/v1/indexes/{name}")
async def index_info(request: Request, name: str) -> dict[str, Any]:
    return await run_in_threadpool(_store(request).get(request, name).info)


@router.post("/v1/indexes/{name}/documents")
async def add_documents(request: Request, name: str) -> dict[str, Any]:
    body: AddDocuments = await read_request(request, AddDocuments)
    store = _store(request)
    index = store.get(request, name)
    ids = [d.id for d in body.documents]
    texts = [d.text for d in body.documents]
    metadata = [d.metadata for d in body.documents]

    def write() -> None:
        with store.locks[name]:
            if body.update:
                index.update(ids, texts, metadata=metadata)
            else:
                index.add(texts, ids=ids, metadata=metadata)

    await run_in_threadpool(_checked, write)
    return {"object": "list", "updated" if body.update else "added": len(ids)}


@router.post("/v1/indexes/{name}/documents/delete")
async def delete_documents(request: Request, name: str) -> dict[str, Any]:
    body: DeleteDocuments = await read_request(request, DeleteDocuments)
    store = _store(request)
    index = store.get(request, name)

    def remove() -> int:
        with store.locks[name]:
            return index.delete(body.ids)

    return {"deleted": await run_in_threadpool(_checked, remove)}


@router.post("/v1/indexes/{name}/search")
async def search_index(request: Request, name: str) -> dict[str, Any]:
    body: SearchIndex = await read_request(request, SearchIndex)
    index = _store(request).get(request, name)
    if body.filter is not None:
        _checked(validate_filter, body.filter)
    hits = await run_in_threadpool(
        _checked,
        index.search,
        list(body.queries),
        k=body.k,
        filter=body.filter,
        hybrid=body.hybrid,
        exhaustive=body.exhaustive,
    )
    return {
        "object": "list",
        "results": [
            [{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in row]
            for row in hits
        ],
    }
