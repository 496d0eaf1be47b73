"""Jina-compatible routes: /v1/multi-vector (alias /v1/multi-embeddings), /v1/embeddings, /v1/rerank."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from polycolbert.formats import to_json_vectors
from polycolbert.rerank import rerank as rank
from polycolbert.rerank import token_matches
from polycolbert.server.admission import encode, tokenize
from polycolbert.server.body import read_request
from polycolbert.server.errors import APIError
from polycolbert.server.registry import ServedModel
from polycolbert.server.schemas import (
    EmbeddingData,
    MultiVectorRequest,
    MultiVectorResponse,
    RerankRequest,
    RerankResponse,
    RerankResult,
    Usage,
)

router = APIRouter()
OPENAPI_BODY = {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}


def _served(request: Request, name: str) -> ServedModel:
    return request.app.state.registry.get(name)


def _dimensions(served: ServedModel, dimensions: int | None) -> int:
    try:
        return served.model.check_dimensions(dimensions)
    except ValueError as error:
        raise APIError(400, "INPUT_INVALID_DIMENSIONS", str(error)) from None


async def _multi_vector(request: Request) -> MultiVectorResponse:
    body: MultiVectorRequest = await read_request(request, MultiVectorRequest)
    served = _served(request, body.model)
    dim = _dimensions(served, body.dimensions)
    texts = body.texts()
    tokenized = await tokenize(served, texts, body.input_type or "document")
    vectors = (await encode(request, served, tokenized, (dim,)))[dim]
    kinds = body.kinds()
    data = []
    for i, v in enumerate(vectors):
        value: Any = (
            to_json_vectors(v, kinds[0]) if len(kinds) == 1 else {k: to_json_vectors(v, k) for k in kinds}
        )
        data.append(EmbeddingData(index=i, embeddings=value))
    return MultiVectorResponse(
        model=served.name, usage=Usage(total_tokens=sum(t.n_tokens for t in tokenized)), data=data
    )


@router.post(
    "/v1/multi-vector",
    response_model=MultiVectorResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MultiVectorRequest.model_json_schema()}},
        }
    },
)
async def multi_vector(request: Request) -> MultiVectorResponse:
    """Token vectors per input (queries: exactly query_maxlen vectors)."""
    return await _multi_vector(request)


@router.post("/v1/multi-embeddings", response_model=MultiVectorResponse, include_in_schema=False)
async def multi_embeddings(request: Request) -> MultiVectorResponse:
    return await _multi_vector(request)


@router.post(
    "/v1/embeddings",
    response_model=MultiVectorResponse,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": MultiVectorRequest.model_json_schema()}},
        }
    },
)
async def embeddings(request: Request) -> MultiVectorResponse:
    """Jina's 2026 route: ColBERT models answer with one vector per token, as /v1/multi-vector does."""
    return await _multi_vector(request)


@router.post(
    "/v1/rerank",
    response_model=RerankResponse,
    response_model_exclude_none=True,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": RerankRequest.model_json_schema()}},
        }
    },
)
async def rerank(request: Request) -> RerankResponse:
    """Documents ranked by MaxSim against the query; ``return_matches`` shows which tokens matched."""
    body: RerankRequest = await read_request(request, RerankRequest)
    served = _served(request, body.model)
    dim = _dimensions(served, body.dimensions)
    documents = body.document_texts()
    query_tok = await tokenize(served, [body.query_text()], "query")
    doc_tok = await tokenize(served, documents, "document")
    out = await encode(request, served, query_tok + doc_tok, (dim,))
    query, doc_vectors = out[dim][0], out[dim][1:]
    results = []
    for ranked in rank(query, doc_vectors, body.top_n, explain=body.return_matches):
        result = RerankResult(index=ranked.index, relevance_score=ranked.score)
        if body.return_documents:
            original = body.documents[ranked.index]
            result.document = (
                {"text": documents[ranked.index]}
                if isinstance(original, str)
                else original.model_dump(exclude_none=True)
            )
        if ranked.alignments is not None:
            result.matches = token_matches(
                served.model,
                body.query_text(),
                query_tok[0],
                documents[ranked.index],
                doc_tok[ranked.index],
                ranked.alignments,
            )
        results.append(result)
    usage = Usage(total_tokens=sum(t.n_tokens for t in query_tok + doc_tok))
    return RerankResponse(model=served.name, usage=usage, results=results)
