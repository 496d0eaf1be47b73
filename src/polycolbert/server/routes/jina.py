"""Jina- and OpenAI-compatible routes: /v1/multi-vector (alias /v1/multi-embeddings), /v1/embeddings,
/v1/rerank.

``/v1/embeddings`` answers by the kind of model named: a ColBERT model gives Jina's multi-vector shape
(``data[].embeddings``, one vector per token); a single-vector model (``multilingual-e5-small``) gives the
shape OpenAI's and Jina's dense clients read (``data[].embedding``, floats or one base64 string).

Every route tokenises in a worker thread, encodes in the model's batcher thread and renders and
serialises its JSON in a worker thread, so the event loop (``/healthz``, other requests) never waits on
a big response. A response is estimated before any encoding (rows x dimensions x bytes per value in the
asked format) and refused with a 400 that says how to ask for less when it would pass the server's
``max_response_bytes``. Responses name the model as the request did (an alias stays the alias).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from polycolbert.encoding.dense import side_for_task
from polycolbert.encoding.encoder import STATES, InputType
from polycolbert.encoding.recipe import TokenizedText
from polycolbert.formats import json_row_bytes, to_json_vectors
from polycolbert.rerank import bm25_over, check_query, token_matches
from polycolbert.rerank import rerank as rank
from polycolbert.server.admission import encode, tokenize
from polycolbert.server.body import read_request
from polycolbert.server.errors import APIError
from polycolbert.server.memory import release_free_memory
from polycolbert.server.registry import ServedDense
from polycolbert.server.schemas import (
    DenseEmbeddingResponse,
    EmbeddingsRequest,
    MultiVectorRequest,
    MultiVectorResponse,
    RerankRequest,
    RerankResponse,
)

router = APIRouter()
MB = 1024 * 1024
# ColBERT input types per Jina task: only retrieval queries are encoded as queries (cut to query_maxlen).
COLBERT_TASK_INPUT_TYPES: dict[str, InputType] = {"retrieval.query": "query"}


def _body_schema(schema: type) -> dict[str, Any]:
    content = {"application/json": {"schema": schema.model_json_schema()}}  # type: ignore[attr-defined]
    return {"requestBody": {"required": True, "content": content}}


def _invalid(error: ValueError, code: str = "INPUT_INVALID") -> APIError:
    return APIError(400, code, str(error))


def _check_truncation(tokenized: list[TokenizedText], truncate: bool | None, model: str, limit: int) -> None:
    """``truncate: false`` (Jina's) asks for an error rather than a cut: name the first input too long."""
    if truncate is not False:
        return
    for i, t in enumerate(tokenized):
        if t.truncated:
            raise APIError(
                400,
                "INPUT_TOO_LONG",
                f"input[{i}] is longer than model {model} takes ({limit} tokens) and truncate is false; "
                "shorten it, split it, or send truncate: true to have it cut",
            )


def _check_response_size(request: Request, rows: int, dim: int, kinds: list[str]) -> None:
    limit = request.app.state.max_response_bytes
    estimate = rows * sum(json_row_bytes(dim, kind) for kind in kinds)
    if estimate > limit:
        raise APIError(
            400,
            "RESPONSE_TOO_LARGE",
            f"This response would be about {estimate / MB:.0f} MB ({rows} vectors of {dim} dimensions as "
            f"{'+'.join(kinds)}); this server answers at most {limit / MB:.0f} MB per request. Ask for less: "
            "fewer or shorter inputs per request, smaller dimensions (e.g. 64), or embedding_type "
            "base64 (4x smaller than float), binary or ubinary (40x smaller).",
        )


async def _json(render: Callable[[], dict[str, Any]]) -> Response:
    """Build and serialise the body in a worker thread: a large one never holds up the event loop.

    Once it is sent, the memory encoding and rendering freed goes back to the system (``server/memory.py``).
    """

    def build() -> bytes:
        body = json.dumps(render(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        return body.encode("utf-8")

    body = await run_in_threadpool(build)
    return Response(body, media_type="application/json", background=BackgroundTask(release_free_memory))


def _vector_value(vectors, kinds: list[str]) -> Any:
    if len(kinds) == 1:
        return to_json_vectors(vectors, kinds[0])
    return {kind: to_json_vectors(vectors, kind) for kind in kinds}


# -- multi-vector -----------------------------------------------------------------------------------
async def _multi_vector(
    request: Request, body: MultiVectorRequest, kinds: list[str], input_type: InputType
) -> Response:
    served = request.app.state.registry.get(body.model)
    try:
        dim = served.model.check_dimensions(body.dimensions)
    except ValueError as error:
        raise _invalid(error, "INPUT_INVALID_DIMENSIONS") from None
    tokenized = await tokenize(served, body.texts(), input_type)
    spec = served.model.spec
    _check_truncation(
        tokenized, body.truncate, body.model, spec.query_maxlen if input_type == "query" else spec.doc_maxlen
    )
    _check_response_size(request, sum(t.n_rows for t in tokenized), dim, kinds)
    vectors = (await encode(request, served, tokenized, (dim,)))[dim]

    def render() -> dict[str, Any]:
        data = [
            {"object": "embeddings", "index": i, "embeddings": _vector_value(v, kinds)}
            for i, v in enumerate(vectors)
        ]
        usage = {"total_tokens": sum(t.n_tokens for t in tokenized)}
        return {"model": body.model, "object": "list", "usage": usage, "data": data}

    return await _json(render)


@router.post(
    "/v1/multi-vector", response_model=MultiVectorResponse, openapi_extra=_body_schema(MultiVectorRequest)
)
async def multi_vector(request: Request) -> Response:
    """Token vectors per input (queries: exactly query_maxlen vectors)."""
    body: MultiVectorRequest = await read_request(request, MultiVectorRequest)
    return await _multi_vector(request, body, body.kinds(), body.input_type or "document")


@router.post("/v1/multi-embeddings", response_model=MultiVectorResponse, include_in_schema=False)
async def multi_embeddings(request: Request) -> Response:
    return await multi_vector(request)


# -- /v1/embeddings ---------------------------------------------------------------------------------
@router.post(
    "/v1/embeddings",
    response_model=MultiVectorResponse | DenseEmbeddingResponse,
    openapi_extra=_body_schema(EmbeddingsRequest),
)
async def embeddings(request: Request) -> Response:
    """One vector per input from a single-vector model (OpenAI's shape); from a ColBERT model, one per
    token (Jina's multi-vector shape, as /v1/multi-vector)."""
    body: EmbeddingsRequest = await read_request(request, EmbeddingsRequest)
    try:
        kinds = body.kinds()
    except ValueError as error:
        raise _invalid(error) from None
    if body.late_chunking:
        raise APIError(
            400,
            "INPUT_INVALID",
            f"late_chunking (Jina's contextual chunk embeddings) is not offered by model {body.model}; "
            "send false or leave it out",
        )
    served = request.app.state.registry.find(body.model)
    if isinstance(served, ServedDense):
        return await _dense(request, body, served, kinds)
    if body.normalized is False:
        raise APIError(
            400, "INPUT_INVALID", f"normalized: model {body.model}'s token vectors are always unit length"
        )
    if body.task is not None and body.input_type is not None:
        wanted = COLBERT_TASK_INPUT_TYPES.get(body.task, "document")
        if wanted != body.input_type:
            raise APIError(
                400, "INPUT_INVALID", f"task {body.task} and input_type {body.input_type} disagree; send one"
            )
    input_type = (
        COLBERT_TASK_INPUT_TYPES.get(body.task, "document") if body.task else body.input_type or "document"
    )
    return await _multi_vector(request, body, kinds, input_type)


async def _dense(
    request: Request, body: EmbeddingsRequest, served: ServedDense, kinds: list[str]
) -> Response:
    model = served.model
    try:
        dim = model.check_dimensions(body.dimensions)
        side = side_for_task(body.task, body.input_type)
        if body.task is not None and body.input_type is not None and side != body.input_type:
            raise ValueError(f"task {body.task} and input_type {body.input_type} disagree; send one")
    except ValueError as error:
        raise _invalid(error) from None
    tokenized = await tokenize(served, body.texts(), side)
    _check_truncation(tokenized, body.truncate, body.model, model.spec.max_tokens)
    _check_response_size(request, len(tokenized), dim, kinds)
    wanted = STATES if body.normalized is False else dim
    vectors = (await encode(request, served, tokenized, (wanted,)))[wanted]

    def render() -> dict[str, Any]:
        data = [
            {"object": "embedding", "index": i, "embedding": _first_row(_vector_value(v, kinds))}
            for i, v in enumerate(vectors)
        ]
        tokens = sum(t.n_tokens for t in tokenized)
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "model": body.model, "usage": usage, "data": data}

    return await _json(render)


def _first_row(value: Any) -> Any:
    """A one-row multi-vector value as a single vector (dict values: each format's)."""
    if isinstance(value, dict):
        return {kind: rows[0] for kind, rows in value.items()}
    return value[0]


# -- rerank -----------------------------------------------------------------------------------------
@router.post(
    "/v1/rerank",
    response_model=RerankResponse,
    response_model_exclude_none=True,
    openapi_extra=_body_schema(RerankRequest),
)
async def rerank(request: Request) -> Response:
    """Documents ranked by MaxSim against the query; ``return_matches`` shows which tokens matched.

    A blank document (empty, whitespace, only symbols) keeps its index and scores the lowest possible;
    a blank query is a 400 that names ``query``. ``fusion: "bm25"`` (opt-in) ranks again with BM25 over
    the documents given (``polycolbert.rerank``); ``relevance_score`` is then the fused score.
    """
    body: RerankRequest = await read_request(request, RerankRequest)
    served = request.app.state.registry.get(body.model)
    try:
        dim = served.model.check_dimensions(body.dimensions)
        check_query(body.query_text())
    except ValueError as error:
        raise _invalid(error) from None
    documents = body.document_texts()
    query_tok = await tokenize(served, [body.query_text()], "query")
    doc_tok = await tokenize(served, documents, "document")
    out = await encode(request, served, query_tok + doc_tok, (dim,))
    query, doc_vectors = out[dim][0], out[dim][1:]
    blank = [t.blank for t in doc_tok]
    bm25 = bm25_over(body.query_text(), documents) if body.fusion == "bm25" else None

    def render() -> dict[str, Any]:
        results = []
        for ranked in rank(
            query, doc_vectors, body.top_n, explain=body.return_matches, blank=blank, bm25=bm25
        ):
            result: dict[str, Any] = {"index": ranked.index}
            if body.return_documents:
                original = body.documents[ranked.index]
                result["document"] = (
                    {"text": documents[ranked.index]}
                    if isinstance(original, str)
                    else original.model_dump(exclude_none=True)
                )
            result["relevance_score"] = ranked.score
            if ranked.alignments is not None:
                matches = token_matches(
                    served.model,
                    body.query_text(),
                    query_tok[0],
                    documents[ranked.index],
                    doc_tok[ranked.index],
                    ranked.alignments,
                )
                result["matches"] = [asdict(m) for m in matches]
            results.append(result)
        usage = {"total_tokens": sum(t.n_tokens for t in query_tok + doc_tok)}
        return {"model": body.model, "object": "list", "usage": usage, "results": results}

    return await _json(render)
