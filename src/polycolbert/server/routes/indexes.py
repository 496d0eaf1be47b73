"""Index routes: indexes under one root, with the same auth, limits and error shape as the Jina routes.

The root is a folder of embedded indexes, or a Qdrant deployment (``qdrant://host:port`` or
``qdrant+local://folder``) whose collections are the indexes: the routes talk only to the ``Backend``
protocol, so they work unchanged on either.

``GET /v1/indexes``, ``POST /v1/indexes`` (create), ``GET /v1/indexes/{name}`` (info),
``POST /v1/indexes/{name}/documents`` (add or update), ``POST /v1/indexes/{name}/documents/delete``,
``POST /v1/indexes/{name}/search``. Indexes use the served model of the same name, so one loaded model
serves both the Jina routes and search; writes and searches encode through that model's queue, under the
same per-request token cap (``server/admission.py``), and hand the store vectors, never texts to encode.
``GET /v1/indexes`` lists the indexes it can read and reports the others under ``damaged``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from polycolbert.backends import Backend
from polycolbert.backends.registry import BackendRegistry, IndexNotFound, NoIndexRoot
from polycolbert.encoding.encoder import InputType
from polycolbert.filters import validate_filter
from polycolbert.index.errors import IndexBusy, IndexDamaged
from polycolbert.server.admission import encode, tokenize
from polycolbert.server.body import read_request
from polycolbert.server.errors import APIError
from polycolbert.server.schemas import AddDocuments, CreateIndex, DeleteDocuments, SearchIndex

router = APIRouter()


NO_ROOT = "This server has no index root: start it with --index-root DIR"


def _store(request: Request) -> BackendRegistry:
    return request.app.state.indexes


def _checked(call: Any, *args: Any, **kwargs: Any) -> Any:
    """``call``, with the library's refusals worded as API errors (404 for a missing index, else 400)."""
    try:
        return call(*args, **kwargs)
    except NoIndexRoot:
        raise APIError(404, "RESOURCE_NOT_FOUND", NO_ROOT) from None
    except IndexNotFound as error:
        raise APIError(404, "RESOURCE_NOT_FOUND", str(error)) from None
    except IndexBusy as error:
        retry = str(math.ceil(error.retry_after))
        raise APIError(
            503,
            "INDEX_BUSY",
            f"the index is busy with another write; retry in {retry} s",
            {"Retry-After": retry},
        ) from None
    except IndexDamaged as error:  # the reason, not the server's file paths
        raise APIError(
            503,
            "INDEX_DAMAGED",
            f"the index is damaged ({error.reason}); its operator should run `polycolbert index check`",
        ) from None
    except (ValueError, KeyError) as error:
        raise APIError(400, "INPUT_INVALID", str(error)) from None


def _index(request: Request, name: str) -> Backend:
    """The open index ``name``, encoded by the served model of the name it was created with."""
    registry = request.app.state.registry
    return _checked(_store(request).get, name, lambda model_name: registry.get(model_name).model)


async def _vectors(
    request: Request, index: Backend, texts: list[str], input_type: InputType, field: str
) -> list[np.ndarray]:
    """``texts`` encoded for ``index`` by its served model, through the token cap and the model's queue."""
    served = request.app.state.registry.get(index.model_name)
    tokenized = await tokenize(served, texts, input_type)
    return (await encode(request, served, tokenized, (index.dimensions,), field))[index.dimensions]


@router.get("/v1/indexes")
async def list_indexes(request: Request) -> dict[str, Any]:
    survey = await run_in_threadpool(_checked, _store(request).survey)
    data = [
        {"name": name, "model": info.model, "dimensions": info.dimensions, "documents": info.documents}
        for name, info in survey.healthy
    ]
    damaged = [{"name": name, "error": error} for name, error in survey.damaged]
    return {"object": "list", "data": data, "damaged": damaged}


@router.post("/v1/indexes", status_code=201)
async def create_index(request: Request) -> dict[str, Any]:
    body: CreateIndex = await read_request(request, CreateIndex)
    store = _store(request)
    _checked(store.location, body.name)  # validates the name before anything else
    if await run_in_threadpool(_checked, store.exists, body.name):
        raise APIError(409, "CONFLICT_RESOURCE_BUSY", f"Index {body.name!r} already exists")
    served = request.app.state.registry.get(body.model)
    index = await run_in_threadpool(
        _checked, store.create, body.name, served.model, body.dimensions, body.nbits
    )
    return (await run_in_threadpool(_checked, index.info)).to_dict()


@router.get("/v1/indexes/{name}")
async def index_info(request: Request, name: str) -> dict[str, Any]:
    index = _index(request, name)
    return (await run_in_threadpool(_checked, index.info)).to_dict()


@router.post("/v1/indexes/{name}/documents")
async def add_documents(request: Request, name: str) -> dict[str, Any]:
    body: AddDocuments = await read_request(request, AddDocuments)
    store = _store(request)
    index = _index(request, name)
    ids = [d.id for d in body.documents]
    texts = [d.text for d in body.documents]
    metadata = [d.metadata for d in body.documents]
    vectors = await _vectors(request, index, texts, "document", "documents")

    def write() -> None:
        with store.locks[name]:  # held only to commit: the documents are encoded already
            if body.update:
                index.update(texts=texts, ids=ids, metadata=metadata, vectors=vectors)
            else:
                index.add(texts=texts, ids=ids, metadata=metadata, vectors=vectors)

    await run_in_threadpool(_checked, write)
    return {"object": "list", "updated" if body.update else "added": len(ids)}


@router.post("/v1/indexes/{name}/documents/delete")
async def delete_documents(request: Request, name: str) -> dict[str, Any]:
    body: DeleteDocuments = await read_request(request, DeleteDocuments)
    store = _store(request)
    index = _index(request, name)

    def remove() -> int:
        with store.locks[name]:
            return index.delete(body.ids)

    return {"deleted": await run_in_threadpool(_checked, remove)}


@router.post("/v1/indexes/{name}/search")
async def search_index(request: Request, name: str) -> dict[str, Any]:
    body: SearchIndex = await read_request(request, SearchIndex)
    index = _index(request, name)
    if body.filter is not None:
        _checked(validate_filter, body.filter)
    queries = list(body.queries)
    vectors = await _vectors(request, index, queries, "query", "queries")
    hits = await run_in_threadpool(
        _checked,
        index.search,
        queries,
        query_vectors=vectors,
        k=body.k,
        filter=body.filter,
        hybrid=body.hybrid,
        exhaustive=body.exhaustive,
        fusion=body.fusion,
    )
    return {
        "object": "list",
        "results": [
            [{"id": h.id, "score": h.score, "text": h.text, "metadata": h.metadata} for h in row]
            for row in hits
        ],
    }
