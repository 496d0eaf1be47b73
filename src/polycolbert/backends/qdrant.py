"""The ``Backend`` protocol on Qdrant: the same add/update/delete/search API on a server or a cluster.

Layout of a collection (Qdrant's own advice for late-interaction models):

* ``colbert``: the token vectors as one multivector per point, compared with ``MAX_SIM``, with
  ``hnsw m=0``. Indexing every token vector in HNSW costs a lot of RAM and slow inserts; instead the
  multivector is only used to rescore candidates exactly.
* ``prefetch``: one single vector per point that finds those candidates through an ordinary HNSW index:
  the mean token vector (``prefetch="mean"``, default) or a MUVERA fixed-dimensional encoding
  (``prefetch="muvera"``). ``prefetch=None`` stores no such vector and every search scans all points
  with exact MaxSim (right for small collections; docs/scaling.md shows what the prefetch costs).

Point ids are UUIDv5 of the document's string id, so re-running an interrupted, batched, retried upsert
overwrites the points it already wrote instead of duplicating them. The payload holds the string id, the
text, the metadata (filters reach it as ``metadata.<field>``) and the token count. The collection's
polycolbert settings (model, dimensions, prefetch kind and MUVERA seed) live in Qdrant's collection
metadata, so ``open`` needs nothing but the URL.

>>> import tempfile, numpy as np
>>> folder = tempfile.mkdtemp()
>>> store = QdrantBackend.create(f"qdrant+local://{folder}/docs", model="toy", dimensions=2)
>>> store.add(["x", "y"], ids=["a", "b"], vectors=[np.eye(2, dtype=np.float32), np.ones((1, 2), np.float32)])
['a', 'b']
>>> [h.id for h in store.search([""], k=2, query_vectors=[np.array([[1.0, 0.0]], np.float32)])[0]]
['a', 'b']
>>> store.close()
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from polycolbert.backends.muvera import Muvera
from polycolbert.documents import SearchHit
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.filters import And, Compare, Expr, Filter, Not, Or, parse_filter
from polycolbert.index.params import K
from polycolbert.scoring import without_padding_rows

MULTI = "colbert"
SINGLE = "prefetch"
FORMAT = 1
ID_NAMESPACE = uuid.UUID("5b0c3f1e-8f7a-4d57-9a43-6f6c79636f6c")  # fixed forever: ids must not move
DEFAULT_TIMEOUT = 10
PREFETCH_KINDS = ("mean", "muvera", None)
QUANTIZATIONS = (None, "scalar", "binary")
DISTANCES = ("cosine", "dot")
PREFETCH_DEPTH = {"mean": 100, "muvera": 300}  # candidates for k <= 10; a tenth of it per hit above


def default_prefetch_limit(prefetch: str | None, k: int) -> int:
    """Candidates the single vector brings when a search does not say: enough that exact MaxSim over them
    keeps the top 10 of exhaustive MaxSim (>= 0.9 overlap on the scifact sample, docs/benchmarks.md).

    MUVERA's one dot product tracks MaxSim more loosely than the mean vector's cosine does on
    ColBERT-sized vectors, so it needs a deeper prefetch for the same agreement.

    >>> [default_prefetch_limit(kind, k) for kind, k in (("mean", 10), ("muvera", 10), ("mean", 50))]
    [100, 300, 500]
    """
    depth = PREFETCH_DEPTH.get(prefetch or "mean", PREFETCH_DEPTH["mean"])
    return max(depth, depth // 10 * k)


def single_vector(
    prefetch: str | None, muvera: Muvera | None, vectors: np.ndarray, document: bool
) -> np.ndarray | None:
    """The prefetch vector of one multi-vector (what the HNSW index holds for a document and is asked
    with for a query); ``None`` when the collection has no prefetch."""
    if prefetch == "mean":
        mean = vectors.mean(axis=0)
        return mean if np.any(mean) else vectors[0]  # a zero mean has no cosine: fall back to one row
    if prefetch == "muvera" and muvera is not None:
        return muvera.encode_document(vectors) if document else muvera.encode_query(vectors)
    return None


def point_id(document_id: str) -> str:
    """The Qdrant point id of a document id: the same in every process and on every re-run.

    >>> point_id("doc-1") == point_id("doc-1") != point_id("doc-2")
    True
    """
    return str(uuid.uuid5(ID_NAMESPACE, document_id))


def parse_location(location: str) -> tuple[str, str, str]:
    """``(kind, where, collection)``: kind ``remote`` (where = URL) or ``local`` (where = folder).

    >>> parse_location("qdrant://localhost:6333/docs")
    ('remote', 'http://localhost:6333', 'docs')
    >>> parse_location("qdrant+local:///data/q/docs")
    ('local', '/data/q', 'docs')
    """
    if location.startswith("qdrant+local://"):
        rest = location[len("qdrant+local://") :]
        folder, _, collection = rest.rstrip("/").rpartition("/")
        if not folder or not collection:
            raise ValueError(f"{location}: use qdrant+local://<folder>/<collection>")
        return "local", folder, collection
    if location.startswith(("qdrant://", "qdrants://")):
        parts = urlsplit(location)
        collection = parts.path.strip("/")
        if not parts.hostname or not collection or "/" in collection:
            raise ValueError(f"{location}: use qdrant://<host>[:<port>]/<collection> (qdrants:// for HTTPS)")
        scheme = "https" if parts.scheme == "qdrants" else "http"
        try:
            port = parts.port or 6333
        except ValueError as error:
            raise ValueError(f"{location}: bad port ({error})") from None
        return "remote", f"{scheme}://{parts.hostname}:{port}", collection
    raise ValueError(f"{location}: a Qdrant location starts with qdrant://, qdrants:// or qdrant+local://")


def _connection_errors() -> tuple[type[BaseException], ...]:
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    return (ResponseHandlingException, UnexpectedResponse, ConnectionError, TimeoutError, OSError)


def _explain(error: BaseException, location: str) -> ValueError:
    """One sentence about what to fix, instead of an HTTP client's stack trace."""
    from qdrant_client.http.exceptions import UnexpectedResponse

    if isinstance(error, UnexpectedResponse):
        if error.status_code in (401, 403):
            return ValueError(
                f"{location}: Qdrant refused the API key (HTTP {error.status_code}); "
                "pass api_key=... or set QDRANT_API_KEY"
            )
        if error.status_code == 404:
            return ValueError(f"{location}: no Qdrant API at this address (HTTP 404); check host and port")
        return ValueError(f"{location}: Qdrant answered HTTP {error.status_code}: {error.content[:300]!r}")
    return ValueError(
        f"{location}: cannot reach Qdrant ({type(error).__name__}: {error}); check host, port and TLS"
    )


class QdrantBackend:
    """A polycolbert collection stored in Qdrant (server, cluster, or qdrant-client's local mode)."""

    def __init__(
        self,
        client: Any,
        location: str,
        collection: str,
        settings: dict[str, Any],
        model: TokenEncoder | str | None = None,
        local_folder: str | None = None,
        batch_size: int = 64,
        retries: int = 3,
        prefetch_limit: int | None = None,
    ):
        self.client = client
        self.location = location
        self.collection = collection
        self.settings = settings
        self.model_name: str = settings["model"]
        self.dimensions: int = int(settings["dimensions"])
        self.prefetch: str | None = settings.get("prefetch")
        self.muvera = Muvera(self.dimensions, **settings["muvera"]) if self.prefetch == "muvera" else None
        self._model = model if model is not None and not isinstance(model, str) else None
        self.local_folder = local_folder
        self.batch_size = batch_size
        self.retries = retries
        self.prefetch_limit = prefetch_limit

    # -- opening ----------------------------------------------------------------------------------
    @staticmethod
    def _client(location: str, api_key: str | None, timeout: int) -> tuple[Any, str, str | None]:
        from qdrant_client import QdrantClient

        kind, where, collection = parse_location(location)
        if kind == "local":
            return _LOCAL_CLIENTS.acquire(where, location), collection, where
        key = api_key if api_key is not None else os.environ.get("QDRANT_API_KEY") or None
        client = QdrantClient(url=where, api_key=key, timeout=timeout, check_compatibility=False)
        return client, collection, None

    @classmethod
    def _connect(cls, location: str, api_key: str | None, timeout: int) -> tuple[Any, str, str | None, bool]:
        """A client, the collection name, the local folder, and whether the collection exists.

        Why one step: an unreachable server must become a readable error, and a client acquired for a
        probe that fails must be released, in ``open`` and ``create`` alike.
        """
        client, collection, folder = cls._client(location, api_key, timeout)
        try:
            return client, collection, folder, bool(client.collection_exists(collection))
        except _connection_errors() as error:
            _close_client(client, folder)
            raise _explain(error, location) from None
        except BaseException:
            _close_client(client, folder)
            raise

    @classmethod
    def open(
        cls,
        location: str,
        *,
        model: TokenEncoder | str | None = None,
        dimensions: int | None = None,
        api_key: str | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        create: bool = False,
        nbits: int | None = None,
        **options: Any,
    ) -> QdrantBackend:
        """Open an existing collection; its settings come from the collection's metadata.

        ``create=True`` creates it when missing (what ``open_backend`` callers ask of every backend);
        ``nbits`` is the embedded index's residual compression and means nothing here (see ``quantization``).
        """
        client, collection, folder, exists = cls._connect(location, api_key, timeout)
        try:
            if not exists and create:
                _close_client(client, folder)
                return cls.create(
                    location, model=model, dimensions=dimensions, api_key=api_key, timeout=timeout, **options
                )
            try:
                if not exists:
                    raise ValueError(f"{location}: no such collection (create it first)")
                settings = _stored_settings(client, collection)
            except _connection_errors() as error:
                raise _explain(error, location) from None
            if not isinstance(settings, dict) or settings.get("format") != FORMAT:
                raise ValueError(f"{location}: not a polycolbert collection (no polycolbert metadata)")
            if dimensions is not None and int(dimensions) != int(settings["dimensions"]):
                raise ValueError(
                    f"{location}: the collection stores {settings['dimensions']}-dim vectors, "
                    f"not {dimensions}"
                )
            name = model if isinstance(model, str) else getattr(model, "name", None)
            if name is not None and name != settings["model"]:
                raise ValueError(f"{location}: the collection was encoded by {settings['model']}, not {name}")
        except BaseException:
            _close_client(client, folder)
            raise
        return cls(client, location, collection, settings, model, folder, **options)

    @classmethod
    def create(
        cls,
        location: str,
        *,
        model: TokenEncoder | str | None = None,
        dimensions: int | None = None,
        distance: str = "cosine",
        quantization: str | None = None,
        on_disk: bool = False,
        shard_number: int | None = None,
        replication_factor: int | None = None,
        write_consistency_factor: int | None = None,
        prefetch: str | None = "mean",
        api_key: str | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        exist_ok: bool = False,
        **options: Any,
    ) -> QdrantBackend:
        """Create the collection (every setting checked before anything is written)."""
        from qdrant_client import models

        model_name, dims = _model_and_dims(model, dimensions)
        if distance not in DISTANCES:
            raise ValueError(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")
        if quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be None, 'scalar' or 'binary'; got {quantization!r}")
        if prefetch not in PREFETCH_KINDS:
            raise ValueError(f"prefetch must be 'mean', 'muvera' or None; got {prefetch!r}")
        for name, value in (
            ("shard_number", shard_number),
            ("replication_factor", replication_factor),
            ("write_consistency_factor", write_consistency_factor),
        ):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        settings: dict[str, Any] = {
            "format": FORMAT,
            "model": model_name,
            "dimensions": dims,
            "distance": distance,
            "prefetch": prefetch,
            "quantization": quantization,
        }
        if prefetch == "muvera":
            settings["muvera"] = Muvera(dims).settings()

        metric = models.Distance.COSINE if distance == "cosine" else models.Distance.DOT
        quantization_config: Any = None
        if quantization == "scalar":
            quantization_config = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
            )
        elif quantization == "binary":
            quantization_config = models.BinaryQuantization(
                binary=models.BinaryQuantizationConfig(always_ram=True)
            )
        vectors = {
            MULTI: models.VectorParams(
                size=dims,
                distance=metric,
                multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM),
                hnsw_config=models.HnswConfigDiff(m=0),
                quantization_config=quantization_config,
                on_disk=on_disk,
            )
        }
        if prefetch is not None:
            size = dims if prefetch == "mean" else Muvera(dims, **settings["muvera"]).size
            prefetch_metric = metric if prefetch == "mean" else models.Distance.DOT
            vectors[SINGLE] = models.VectorParams(size=size, distance=prefetch_metric, on_disk=on_disk)

        client, collection, folder, exists = cls._connect(location, api_key, timeout)
        try:
            if exists:
                if not exist_ok:
                    raise ValueError(
                        f"{location}: the collection already exists (open it, or pick another name)"
                    )
                _close_client(client, folder)
                existing = cls.open(
                    location, model=model, dimensions=dims, api_key=api_key, timeout=timeout, **options
                )
                for key in ("distance", "prefetch", "quantization"):
                    if existing.settings.get(key) != settings[key]:
                        existing.close()
                        raise ValueError(
                            f"{location}: the existing collection has {key}={existing.settings.get(key)!r}, "
                            f"not {settings[key]!r}"
                        )
                return existing
            try:
                client.create_collection(
                    collection,
                    vectors_config=vectors,
                    shard_number=shard_number,
                    replication_factor=replication_factor,
                    write_consistency_factor=write_consistency_factor,
                    on_disk_payload=on_disk,
                    metadata={"polycolbert": settings},
                    timeout=timeout,
                )
            except _connection_errors() as error:
                raise _explain(error, location) from None
        except BaseException:
            _close_client(client, folder)
            raise
        return cls(client, location, collection, settings, model, folder, **options)

    # -- encoding -----------------------------------------------------------------------------------
    @property
    def model(self) -> TokenEncoder:
        """The encoder, loaded on first use (a collection fed precomputed vectors never loads one)."""
        if self._model is None:
            from polycolbert import ColBERT

            self._model = ColBERT.load(self.model_name)
        return self._model

    def _document_vectors(
        self, texts: Sequence[str], vectors: Sequence[np.ndarray] | None
    ) -> list[np.ndarray]:
        if vectors is None:
            return self.model.encode_documents(list(texts), dimensions=self.dimensions)
        if len(vectors) != len(texts):
            raise ValueError(f"got {len(vectors)} vector arrays for {len(texts)} texts")
        return [self._check_vectors(v, f"vectors[{i}]") for i, v in enumerate(vectors)]

    def _check_vectors(self, value: Any, where: str) -> np.ndarray:
        array = np.asarray(value, dtype=np.float32)
        if array.ndim != 2 or array.shape[0] == 0 or array.shape[1] != self.dimensions:
            raise ValueError(
                f"{where} must be a non-empty [tokens, {self.dimensions}] array for this collection; "
                f"got shape {array.shape}"
            )
        if not np.isfinite(array).all():
            raise ValueError(f"{where} contains NaN or infinity")
        return array

    def _single(self, vectors: np.ndarray, document: bool) -> list[float] | None:
        single = single_vector(self.prefetch, self.muvera, vectors, document)
        return None if single is None else [float(x) for x in single]

    # -- writing ------------------------------------------------------------------------------------
    def _points(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any]],
        vectors: Sequence[np.ndarray],
    ) -> list[Any]:
        from qdrant_client import models

        points = []
        for doc_id, text, meta, array in zip(ids, texts, metadata, vectors, strict=True):
            named: dict[str, Any] = {MULTI: array.tolist()}
            single = self._single(array, document=True)
            if single is not None:
                named[SINGLE] = single
            payload = {"id": doc_id, "text": text, "metadata": meta, "n_tokens": int(array.shape[0])}
            points.append(models.PointStruct(id=point_id(doc_id), vector=named, payload=payload))
        return points

    def _upsert(self, points: list[Any]) -> None:
        """Batched upserts, each retried with backoff; ids are deterministic, so a retry never duplicates."""
        for start in range(0, len(points), self.batch_size):
            batch = points[start : start + self.batch_size]
            for attempt in range(self.retries + 1):
                try:
                    self.client.upsert(self.collection, points=batch, wait=True)
                    break
                except _connection_errors() as error:
                    from qdrant_client.http.exceptions import UnexpectedResponse

                    permanent = isinstance(error, UnexpectedResponse) and (error.status_code or 0) < 500
                    if permanent or attempt == self.retries:
                        raise _explain(error, self.location) from None
                    time.sleep(0.5 * 2**attempt)

    def _existing(self, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        wanted = list(dict.fromkeys(ids))
        for start in range(0, len(wanted), 256):
            chunk = wanted[start : start + 256]
            try:
                records = self.client.retrieve(
                    self.collection, ids=[point_id(i) for i in chunk], with_payload=["id"], with_vectors=False
                )
            except _connection_errors() as error:
                raise _explain(error, self.location) from None
            found.update(str((r.payload or {}).get("id")) for r in records)
        return found

    @staticmethod
    def _check_batch(
        ids: Sequence[str], texts: Sequence[str], metadata: Sequence[dict[str, Any]] | None
    ) -> list[dict[str, Any]]:
        if isinstance(texts, str) or isinstance(ids, str):
            raise ValueError("texts and ids must be lists of strings, not one string")
        if len(ids) != len(texts):
            raise ValueError(f"got {len(ids)} ids for {len(texts)} texts")
        for i, (doc_id, text) in enumerate(zip(ids, texts, strict=True)):
            if not isinstance(doc_id, str) or not doc_id:
                raise ValueError(f"ids[{i}] must be a non-empty string")
            if not isinstance(text, str):
                raise ValueError(f"texts[{i}] must be a string")
        if len(set(ids)) != len(ids):
            raise ValueError("ids must be unique within one call")
        if metadata is None:
            return [{} for _ in ids]
        if len(metadata) != len(ids):
            raise ValueError(f"got {len(metadata)} metadata objects for {len(ids)} documents")
        for i, meta in enumerate(metadata):
            if not isinstance(meta, dict):
                raise ValueError(f"metadata[{i}] must be a JSON object")
        return list(metadata)

    def add(
        self,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> list[str]:
        """Insert new documents; an id already stored is an error and nothing is written."""
        ids = list(ids) if ids is not None else [uuid.uuid4().hex for _ in texts]
        metas = self._check_batch(ids, texts, metadata)
        clash = self._existing(ids)
        if clash:
            raise ValueError(f"{len(clash)} ids already exist (use update), e.g. {sorted(clash)[:3]}")
        arrays = self._document_vectors(texts, vectors)
        self._upsert(self._points(ids, texts, metas, arrays))
        return ids

    def update(
        self,
        ids: Sequence[str],
        texts: Sequence[str],
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Replace stored documents; an unknown id is an error and nothing is written."""
        ids = list(ids)
        metas = self._check_batch(ids, texts, metadata)
        missing = set(ids) - self._existing(ids)
        if missing:
            raise ValueError(f"{len(missing)} ids do not exist (use add), e.g. {sorted(missing)[:3]}")
        arrays = self._document_vectors(texts, vectors)
        self._upsert(self._points(ids, texts, metas, arrays))

    def delete(self, ids: Sequence[str]) -> int:
        from qdrant_client import models

        if isinstance(ids, str):
            raise ValueError("ids must be a list of strings, not one string")
        present = self._existing(list(ids))
        if present:
            try:
                self.client.delete(
                    self.collection,
                    points_selector=models.PointIdsList(points=[point_id(i) for i in present]),
                    wait=True,
                )
            except _connection_errors() as error:
                raise _explain(error, self.location) from None
        return len(present)

    # -- searching ----------------------------------------------------------------------------------
    def search(
        self,
        queries: Sequence[str],
        k: int = K,
        filter: Filter | None = None,
        hybrid: bool = False,
        query_vectors: Sequence[np.ndarray] | None = None,
        exhaustive: bool = False,
        prefetch_limit: int | None = None,
    ) -> list[list[SearchHit]]:
        """Top-``k`` per query: prefetch candidates by the single vector, then rank them by exact MaxSim.

        ``prefetch_limit`` (default: the backend's, else ``default_prefetch_limit``: ``max(100, 10 k)``
        for the mean vector, ``max(300, 30 k)`` for MUVERA) is how many candidates the
        single vector brings; ``0`` (or ``exhaustive=True``) skips the prefetch and scans every point with
        exact MaxSim.
        """
        from qdrant_client import models

        if hybrid:
            raise ValueError("hybrid (BM25 + ColBERT) search is offered by the embedded index, not by Qdrant")
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k must be a positive integer; got {k!r}")
        if isinstance(queries, str):
            raise ValueError("queries must be a list of strings, not one string")
        qfilter = to_qdrant_filter(filter) if filter is not None else None
        if query_vectors is None:
            arrays = self.model.encode_queries(list(queries), dimensions=self.dimensions)
        else:
            if len(query_vectors) != len(queries):
                raise ValueError(f"got {len(query_vectors)} query vector arrays for {len(queries)} queries")
            arrays = [self._check_vectors(v, f"query_vectors[{i}]") for i, v in enumerate(query_vectors)]
        arrays = [without_padding_rows(a) for a in arrays]
        chosen = 0 if exhaustive else prefetch_limit if prefetch_limit is not None else self.prefetch_limit
        limit = default_prefetch_limit(self.prefetch, k) if chosen is None else int(chosen)
        requests = []
        for array in arrays:
            single = self._single(array, document=False) if limit > 0 else None
            prefetch = (
                models.Prefetch(query=single, using=SINGLE, filter=qfilter, limit=max(limit, k))
                if single is not None
                else None
            )
            requests.append(
                models.QueryRequest(
                    query=array.tolist(),
                    using=MULTI,
                    prefetch=prefetch,
                    filter=qfilter,
                    limit=k,
                    with_payload=True,
                )
            )
        try:
            responses = self.client.query_batch_points(self.collection, requests=requests) if requests else []
        except _connection_errors() as error:
            raise _explain(error, self.location) from None
        return [
            [
                SearchHit(
                    id=str((p.payload or {}).get("id")),
                    score=float(p.score),
                    text=(p.payload or {}).get("text"),
                    metadata=(p.payload or {}).get("metadata") or {},
                )
                for p in response.points
            ]
            for response in responses
        ]

    # -- description --------------------------------------------------------------------------------
    def _scroll_tokens(self, cap: int = 1_000_000) -> int | None:
        total, offset, seen = 0, None, 0
        while True:
            records, offset = self.client.scroll(
                self.collection, limit=1000, offset=offset, with_payload=["n_tokens"], with_vectors=False
            )
            total += sum(int((r.payload or {}).get("n_tokens", 0)) for r in records)
            seen += len(records)
            if offset is None:
                return total
            if seen >= cap:
                return None

    def info(self) -> dict[str, Any]:
        try:
            collection = self.client.get_collection(self.collection)
            documents = self.client.count(self.collection, exact=True).count
            tokens = self._scroll_tokens()
        except _connection_errors() as error:
            raise _explain(error, self.location) from None
        params = collection.config.params
        # Same shape as the embedded index's ({"total": ...}); a remote server's disk is not visible.
        bytes_on_disk = None
        if self.local_folder is not None:
            root = Path(self.local_folder) / "collection" / self.collection
            total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0
            bytes_on_disk = {"total": total}
        return {
            "backend": "qdrant",
            "location": self.location,
            "collection": self.collection,
            "model": self.model_name,
            "dimensions": self.dimensions,
            "documents": documents,
            "tokens": tokens,
            "bytes_on_disk": bytes_on_disk,
            "status": str(getattr(collection.status, "value", collection.status)),
            "settings": {
                "distance": self.settings.get("distance"),
                "prefetch": self.prefetch,
                "muvera": self.settings.get("muvera"),
                "quantization": self.settings.get("quantization"),
                "shard_number": params.shard_number,
                "replication_factor": params.replication_factor,
                "write_consistency_factor": params.write_consistency_factor,
            },
        }

    def __len__(self) -> int:
        try:
            return int(self.client.count(self.collection, exact=True).count)
        except _connection_errors() as error:
            raise _explain(error, self.location) from None

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these document ids are stored (lets callers refuse a batch before encoding it)."""
        return self._existing(list(ids))

    def compact(self) -> dict[str, Any]:
        """Nothing to do by hand: Qdrant's optimizer vacuums deleted points and merges segments itself."""
        return {"compacted": False, "reason": "Qdrant's optimizer vacuums and merges segments by itself"}

    def close(self) -> None:
        if self.local_folder is not None:
            _LOCAL_CLIENTS.release(self.local_folder)
        else:
            self.client.close()

    def __enter__(self) -> QdrantBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _LocalClients:
    """One ``QdrantClient(path=...)`` per folder per process, shared and reference-counted.

    Why: qdrant-client's local mode locks its folder, so a second client on the same folder (the server
    opening two collections, or a probe before the real open) would fail; every collection in a folder
    can share one client instead.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, tuple[Any, int]] = {}

    def acquire(self, folder: str, location: str) -> Any:
        from qdrant_client import QdrantClient

        key = os.path.realpath(folder)
        with self._lock:
            if key in self._clients:
                client, count = self._clients[key]
                self._clients[key] = (client, count + 1)
                return client
            Path(folder).mkdir(parents=True, exist_ok=True)
            try:
                client = QdrantClient(path=folder)
            except RuntimeError as error:  # portalocker: another process holds the folder
                raise ValueError(f"{location}: {error}") from None
            self._clients[key] = (client, 1)
            return client

    def release(self, folder: str) -> None:
        key = os.path.realpath(folder)
        with self._lock:
            if key not in self._clients:
                return
            client, count = self._clients[key]
            if count > 1:
                self._clients[key] = (client, count - 1)
                return
            del self._clients[key]
        client.close()


_LOCAL_CLIENTS = _LocalClients()


def _close_client(client: Any, folder: str | None) -> None:
    if folder is not None:
        _LOCAL_CLIENTS.release(folder)
    else:
        client.close()


def list_collections(root: str, api_key: str | None = None, timeout: int = DEFAULT_TIMEOUT) -> list[str]:
    """Names of the polycolbert collections under ``qdrant://host:port`` or ``qdrant+local://folder``."""
    client, _, folder = QdrantBackend._client(root.rstrip("/") + "/_", api_key, timeout)
    try:
        try:
            names = [c.name for c in client.get_collections().collections]
            return sorted(name for name in names if isinstance(_stored_settings(client, name), dict))
        except _connection_errors() as error:
            raise _explain(error, root) from None
    finally:
        _close_client(client, folder)


def _stored_settings(client: Any, collection: str) -> Any:
    """What ``create`` wrote into the collection's metadata (None where polycolbert did not make it)."""
    return (client.get_collection(collection).config.metadata or {}).get("polycolbert")


def is_polycolbert_collection(
    location: str, api_key: str | None = None, timeout: int = DEFAULT_TIMEOUT
) -> bool:
    """Whether ``qdrant://host:port/name`` (or a local one) is a polycolbert collection.

    Why not ``name in list_collections(root)``: that reads every collection's config, one request each.
    """
    client, collection, folder, exists = QdrantBackend._connect(location, api_key, timeout)
    try:
        if not exists:
            return False
        try:
            return isinstance(_stored_settings(client, collection), dict)
        except _connection_errors() as error:
            raise _explain(error, location) from None
    finally:
        _close_client(client, folder)


def _model_and_dims(model: TokenEncoder | str | None, dimensions: int | None) -> tuple[str, int]:
    """The model's name and the checked vector size, without loading weights for a plain name."""
    if model is None:
        from polycolbert.models.catalog import DEFAULT_MODEL

        model = DEFAULT_MODEL
    if isinstance(model, str):
        if dimensions is None:
            from polycolbert import ColBERT

            return model, int(ColBERT.load(model).check_dimensions(None))
        if isinstance(dimensions, bool) or not isinstance(dimensions, int) or dimensions < 1:
            raise ValueError(f"dimensions must be a positive integer; got {dimensions!r}")
        return model, dimensions
    return str(model.name), int(model.check_dimensions(dimensions))


# -- filters ------------------------------------------------------------------------------------------
def _equals(key: str, value: Any) -> Any:
    from qdrant_client import models

    if value is None:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))
    if isinstance(value, float) and not value.is_integer():
        return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
    if isinstance(value, float):
        value = int(value)
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _payload_key(field: str) -> str:
    """Qdrant's JSON path to a metadata field; parts that are not letters, digits, ``_``, ``-`` are quoted."""
    parts = (p if all(c.isalnum() or c in "_-" for c in p) else f'"{p}"' for p in field.split("."))
    return "metadata." + ".".join(parts)


def _any_of(key: str, values: tuple[Any, ...]) -> Any:
    """One condition true when the field equals any of ``values`` (false for an empty list)."""
    from qdrant_client import models

    if not values:
        return models.HasIdCondition(has_id=[])
    same_type = all(isinstance(v, str) for v in values) or all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    )
    if same_type:
        return models.FieldCondition(key=key, match=models.MatchAny(any=list(values)))
    return models.Filter(should=[_equals(key, v) for v in values])


def _condition(expr: Compare) -> Any:
    """The positive condition of one comparison (``$ne``/``$nin`` are negated by the caller)."""
    from qdrant_client import models

    key = _payload_key(expr.field)
    if expr.op in ("$eq", "$ne"):
        return _equals(key, expr.operand)
    if expr.op in ("$in", "$nin"):
        return _any_of(key, expr.operand)
    bound = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}[expr.op]
    if isinstance(expr.operand, datetime):
        return models.FieldCondition(key=key, range=models.DatetimeRange(**{bound: expr.operand}))
    return models.FieldCondition(key=key, range=models.Range(**{bound: expr.operand}))


def _compile(expr: Expr) -> Any:
    from qdrant_client import models

    if isinstance(expr, And):
        return models.Filter(must=[_compile(sub) for sub in expr.items])
    if isinstance(expr, Or):
        return models.Filter(should=[_compile(sub) for sub in expr.items])
    if isinstance(expr, Not):
        return models.Filter(must_not=[_compile(expr.item)])
    if expr.op in ("$ne", "$nin"):
        return models.Filter(must_not=[_condition(expr)])
    return models.Filter(must=[_condition(expr)])


def to_qdrant_filter(filter: Filter) -> Any:
    """The portable filter (``polycolbert.filters``) as a ``qdrant_client.models.Filter`` over the payload.

    >>> f = to_qdrant_filter({"lang": "de", "year": {"$gte": 2020}})
    >>> [c.must[0].key for c in f.must]
    ['metadata.lang', 'metadata.year']
    """
    return _compile(parse_filter(filter))
