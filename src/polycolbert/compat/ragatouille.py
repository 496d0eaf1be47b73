"""RAGatouille's ``RAGPretrainedModel`` over polycolbert's model and an index behind the ``Backend`` protocol.

Indexes are embedded index folders under ``index_root`` (RAGatouille's layout); everything the wrapper
does to them goes through ``create_backend`` / ``open_backend``.

Result dicts carry RAGatouille's keys (``content``, ``score``, ``rank``, ``document_id``, ``passage_id``,
``document_metadata``), so code that reads them keeps working:

>>> from polycolbert.compat.ragatouille import RAGPretrainedModel
>>> rag = RAGPretrainedModel.from_pretrained("polycolbert-e5-small", index_root="/tmp/rag")  # doctest: +SKIP
>>> rag.index(["Paris is the capital of France."], document_ids=["paris"])  # doctest: +SKIP
>>> rag.search("capital of France", k=1)[0]["document_id"]  # doctest: +SKIP
'paris'
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polycolbert.backends import Backend, create_backend, open_backend
from polycolbert.encoding.encoder import ColBERT
from polycolbert.rerank import Ranked, RankedText, rerank, rerank_texts

PASSAGE_SEPARATOR = "#"


class RAGPretrainedModel:
    def __init__(self, model: ColBERT, index_root: str | Path | None = None):
        self.model = model
        self.index_root = Path(index_root or ".ragatouille") / "colbert" / "indexes"
        self.index_path: Path | None = None
        self._index: Backend | None = None
        self._encoded: list[tuple[str, dict[str, Any] | None, np.ndarray]] = []

    @classmethod
    def from_pretrained(cls, name: str, index_root: str | None = None, **_: Any) -> RAGPretrainedModel:
        return cls(ColBERT.load(name), index_root)

    @classmethod
    def from_index(cls, index_path: str | Path, **_: Any) -> RAGPretrainedModel:
        probe = open_backend(str(index_path))
        model_name = probe.model_name
        probe.close()
        model = ColBERT.load(model_name)
        rag = cls(model, Path(index_path).parents[2] if len(Path(index_path).parents) > 2 else None)
        rag._use(open_backend(str(index_path), model=model), Path(index_path))
        return rag

    # -- indexing -----------------------------------------------------------------------------------
    def index(
        self,
        collection: Sequence[str],
        document_ids: Sequence[str] | None = None,
        document_metadatas: Sequence[dict[str, Any]] | None = None,
        index_name: str | None = None,
        overwrite_index: bool = True,
        max_document_length: int = 256,
        split_documents: bool = True,
        **_: Any,
    ) -> str:
        """Split, encode and index ``collection``; returns the index folder."""
        name = index_name or f"PLAID_{uuid.uuid4().hex[:8]}"
        path = self.index_root / name
        if path.exists() and overwrite_index:
            import shutil

            shutil.rmtree(path)
        dims = self.model.spec.default_dim
        self._use(create_backend(str(path), model=self.model, dimensions=dims), path)
        self.add_to_index(collection, document_ids, document_metadatas, split_documents, max_document_length)
        return str(path)

    def add_to_index(
        self,
        new_collection: Sequence[str],
        new_document_ids: Sequence[str] | None = None,
        new_document_metadatas: Sequence[dict[str, Any]] | None = None,
        split_documents: bool = True,
        max_document_length: int = 256,
        **_: Any,
    ) -> None:
        index = self._require_index()
        if isinstance(new_collection, str):
            raise ValueError("collection must be a list of documents, not a single string")
        ids = (
            list(new_document_ids)
            if new_document_ids is not None
            else [uuid.uuid4().hex for _ in new_collection]
        )
        if len(ids) != len(new_collection) or len(set(ids)) != len(ids):
            raise ValueError("document_ids must be unique and one per document")
        metas = list(new_document_metadatas) if new_document_metadatas is not None else [None] * len(ids)
        texts, passage_ids, passage_meta = [], [], []
        for doc_id, text, meta in zip(ids, new_collection, metas, strict=True):
            chunks = self._split(text, max_document_length) if split_documents else [text]
            for number, chunk in enumerate(chunks):
                texts.append(chunk)
                passage_ids.append(f"{doc_id}{PASSAGE_SEPARATOR}{number}")
                passage_meta.append({"document_id": doc_id, "document_metadata": meta})
        index.add(texts=texts, ids=passage_ids, metadata=passage_meta)

    def delete_from_index(self, document_ids: Sequence[str], **_: Any) -> int:
        index = self._require_index()
        doomed = set(document_ids)
        passages = [p for p in index.ids() if p.rsplit(PASSAGE_SEPARATOR, 1)[0] in doomed]
        return index.delete(passages)

    # -- searching ----------------------------------------------------------------------------------
    def search(self, query: str | Sequence[str], k: int = 10, **_: Any) -> Any:
        """Best ``k`` passages per query (a list of lists when ``query`` is a list)."""
        index = self._require_index()
        queries = [query] if isinstance(query, str) else list(query)
        results = []
        for hits in index.search(queries, k=k):
            results.append(
                [
                    {
                        "content": hit.text,
                        "score": hit.score,
                        "rank": rank,
                        "document_id": hit.metadata.get("document_id"),
                        "passage_id": hit.id,
                        "document_metadata": hit.metadata.get("document_metadata"),
                    }
                    for rank, hit in enumerate(hits, start=1)
                ]
            )
        return results[0] if isinstance(query, str) else results

    def rerank(self, query: str, documents: Sequence[str], k: int = 10, **_: Any) -> list[dict[str, Any]]:
        """Index-free: score ``documents`` against ``query`` with MaxSim and keep the best ``k``."""
        return _results(rerank_texts(self.model, query, documents, top_n=k), documents)

    def encode(
        self, documents: Sequence[str], document_metadatas: Sequence[dict] | None = None, **_: Any
    ) -> None:
        """Keep encoded documents in memory for :meth:`search_encoded_docs` (no index)."""
        metas = list(document_metadatas) if document_metadatas is not None else [None] * len(documents)
        vectors = self.model.encode_documents(list(documents), dimensions=self.model.spec.default_dim)
        self._encoded += list(zip(documents, metas, vectors, strict=True))

    def search_encoded_docs(self, query: str, k: int = 10, **_: Any) -> list[dict[str, Any]]:
        if not self._encoded:
            raise ValueError("no encoded documents: call encode(documents) first")
        q = self.model.encode_queries([query], dimensions=self.model.spec.default_dim)[0]
        texts = [t for t, _, _ in self._encoded]
        results = _results(rerank(q, [v for _, _, v in self._encoded], top_n=k), texts)
        for result in results:
            metadata = self._encoded[result["result_index"]][1]
            if metadata is not None:
                result["document_metadata"] = metadata
        return results

    def clear_encoded_docs(self, **_: Any) -> None:
        self._encoded = []

    # -- helpers ------------------------------------------------------------------------------------
    def _use(self, index: Backend, path: Path) -> None:
        if self._index is not None:
            self._index.close()
        self._index, self.index_path = index, path

    def _require_index(self) -> Backend:
        if self._index is None:
            raise ValueError("no index yet: call index(...) or RAGPretrainedModel.from_index(path)")
        return self._index

    def _split(self, text: str, max_tokens: int) -> list[str]:
        """Cut at token boundaries into pieces of at most ``max_tokens`` tokens (RAGatouille's chunking)."""
        room = max(8, max_tokens - 3)
        encoding = self.model.tokenizer.encode(text, add_special_tokens=False)
        offsets = encoding.offsets
        if len(offsets) <= room:
            return [text]
        chunks = []
        for start in range(0, len(offsets), room):
            piece = offsets[start : start + room]
            chunk = text[piece[0][0] : piece[-1][1]].strip()
            if any(c.isalnum() for c in chunk):  # a trailing run of punctuation is not a passage
                chunks.append(chunk)
        return chunks


def _results(ranked: Sequence[Ranked | RankedText], texts: Sequence[str]) -> list[dict[str, Any]]:
    """RAGatouille's result dicts for a ranking of ``texts``."""
    return [
        {"content": texts[r.index], "score": r.score, "rank": rank, "result_index": r.index}
        for rank, r in enumerate(ranked, start=1)
    ]
