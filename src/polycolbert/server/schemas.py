"""Request and response bodies, as in Jina's OpenAPI (unknown fields are refused, like Jina's).

``/v1/embeddings`` also takes what single-vector clients send (:class:`EmbeddingsRequest`): OpenAI's
``encoding_format`` and ``user``, LlamaIndex's ``encoding_type`` (another name for ``embedding_type``),
Jina's ``task``, ``late_chunking`` and ``normalized``. A field that no client sends is still a 422 that
names it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from polycolbert.encoding.dense import Task
from polycolbert.fusion import SearchFusion
from polycolbert.index.params import NBITS, K
from polycolbert.models.catalog import DEFAULT_MODEL
from polycolbert.rerank import Match

MAX_INPUTS = 512  # Jina's documented per-request list limit

EmbeddingKind = Literal["float", "base64", "binary", "ubinary", "int8", "float16"]
EmbeddingKinds = EmbeddingKind | Annotated[list[EmbeddingKind], Field(min_length=1, max_length=6)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextDoc(Strict):
    text: StrictStr
    id: StrictStr | None = None


InputItem = StrictStr | TextDoc


class MultiVectorRequest(Strict):
    model: StrictStr
    input: Annotated[list[InputItem], Field(min_length=1, max_length=MAX_INPUTS)] | InputItem
    input_type: Literal["query", "document"] | None = "document"
    embedding_type: EmbeddingKinds | None = "float"
    dimensions: StrictInt | None = None
    truncate: StrictBool | None = None  # false: an input over the model's length is refused, not cut

    def texts(self) -> list[str]:
        items = self.input if isinstance(self.input, list) else [self.input]
        return [item if isinstance(item, str) else item.text for item in items]

    def kinds(self) -> list[str]:
        if self.embedding_type is None:
            return ["float"]
        return [self.embedding_type] if isinstance(self.embedding_type, str) else list(self.embedding_type)


class EmbeddingsRequest(MultiVectorRequest):
    """``/v1/embeddings``: Jina's multi-vector body plus the fields single-vector clients send."""

    input_type: Literal["query", "document"] | None = None  # not given: the model's default side
    encoding_type: EmbeddingKinds | None = None  # LlamaIndex's name for embedding_type
    encoding_format: Literal["float", "base64"] | None = None  # OpenAI's (its SDK sends base64)
    task: Task | None = None  # Jina's: retrieval.query / retrieval.passage / text-matching / ...
    late_chunking: StrictBool | None = None
    normalized: StrictBool | None = None
    user: StrictStr | None = None  # OpenAI's end-user id: accepted, not used

    def kinds(self) -> list[str]:
        """The one output format asked for, under whichever of its three names the client used."""
        given = {
            name: getattr(self, name)
            for name in ("embedding_type", "encoding_type", "encoding_format")
            if name in self.model_fields_set and getattr(self, name) is not None
        }
        values = {str(v) for v in given.values()}
        if len(values) > 1:
            named = ", ".join(f"{k}={v!r}" for k, v in given.items())
            raise ValueError(
                f"embedding_type, encoding_type and encoding_format name one setting; got {named}"
            )
        if not given:
            return ["float"]
        value = next(iter(given.values()))
        return [value] if isinstance(value, str) else list(value)


class EmbeddingData(BaseModel):
    object: Literal["embeddings"] = "embeddings"
    index: int
    embeddings: Any


class Usage(BaseModel):
    total_tokens: int


class MultiVectorResponse(BaseModel):
    model: str
    object: Literal["list"] = "list"
    usage: Usage
    data: list[EmbeddingData]


class DenseEmbedding(BaseModel):
    """One text's vector, as OpenAI and Jina's single-vector models answer."""

    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | list[int] | str | dict[str, Any]


class DenseUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class DenseEmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    model: str
    usage: DenseUsage
    data: list[DenseEmbedding]


class RerankRequest(Strict):
    model: StrictStr
    query: InputItem
    documents: Annotated[list[InputItem], Field(min_length=1, max_length=MAX_INPUTS)]
    top_n: Annotated[StrictInt, Field(ge=1)] | None = None
    return_documents: StrictBool = True
    return_matches: StrictBool = False
    truncation: StrictBool | None = None
    dimensions: StrictInt | None = None
    fusion: SearchFusion = "none"

    def query_text(self) -> str:
        return self.query if isinstance(self.query, str) else self.query.text

    def document_texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class RerankResult(BaseModel):
    index: int
    document: dict[str, Any] | None = None
    relevance_score: float
    matches: list[Match] | None = None


class RerankResponse(BaseModel):
    model: str
    object: Literal["list"] = "list"
    usage: Usage
    results: list[RerankResult]


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    owned_by: str = "polycolbert"
    alias_of: str | None = None
    info: dict[str, Any]


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


# -- index routes (/v1/indexes) -----------------------------------------------------------------------
class CreateIndex(Strict):
    name: StrictStr
    model: StrictStr = DEFAULT_MODEL
    dimensions: StrictInt | None = None
    nbits: StrictInt = NBITS


class IndexDocument(Strict):
    id: StrictStr
    text: StrictStr
    metadata: dict[str, Any] = Field(default_factory=dict)


class AddDocuments(Strict):
    documents: Annotated[list[IndexDocument], Field(min_length=1, max_length=MAX_INPUTS)]
    update: StrictBool = False


class DeleteDocuments(Strict):
    ids: Annotated[list[StrictStr], Field(min_length=1, max_length=10_000)]


class SearchIndex(Strict):
    queries: Annotated[list[StrictStr], Field(min_length=1, max_length=MAX_INPUTS)]
    k: Annotated[StrictInt, Field(ge=1, le=1000)] = K
    filter: dict[str, Any] | None = None
    hybrid: StrictBool = False
    exhaustive: StrictBool = False
    fusion: SearchFusion = "none"
