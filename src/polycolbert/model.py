"""``ColBERT``: the one object the rest of polycolbert uses to turn text into token vectors.

>>> from polycolbert import ColBERT
>>> model = ColBERT.load("polycolbert-e5-small")          # doctest: +SKIP
>>> [q.shape for q in model.encode_queries(["what is late interaction?"])]  # doctest: +SKIP
[(32, 128)]
"""

from __future__ import annotations

# Interface contract (implementation lands in this module; other modules code against it):
#   ColBERT.load(name_or_path: str | os.PathLike, *, dtype="auto"|"float32"|"bfloat16", device="cpu") -> ColBERT
#   model.spec: polycolbert.models.spec.ModelSpec       (name, dims, query_maxlen, doc_maxlen, notes, ...)
#   model.name: str
#   model.dims: tuple[int, ...]                          (e.g. (128, 96, 64))
#   model.encode_queries(texts: Sequence[str], dimensions: int = 128, batch_size: int = 32)
#       -> list[np.ndarray]   each float32 [query_maxlen, dimensions], L2-normalised rows
#   model.encode_documents(texts: Sequence[str], dimensions: int = 128, batch_size: int = 32)
#       -> list[np.ndarray]   each float32 [n_kept_tokens, dimensions], L2-normalised rows
#   model.count_tokens(texts, input_type="query"|"document") -> list[int]   (tokens billed, as Jina's usage)
#   model.info() -> dict                                  (JSON-able description, incl. notes)
# Bad input (empty string, non-str item, unsupported dimensions) raises ValueError with a message.
