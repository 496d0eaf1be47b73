"""``QdrantBackend``: the ``Backend`` protocol on Qdrant, a server, a cluster or qdrant-client's local mode.

The collection's layout is ``layout.py``; reaching the server and wording its errors, ``connection.py``;
filters, ``filters.py``. Inputs are checked by ``backends/checks.py`` before anything is encoded or sent,
with the embedded index's rules and words, so both stores refuse the same things the same way.

``search(fusion="bm25")`` follows the embedded index: MaxSim's best ``CHOSEN["bm25"].depth`` candidates,
their BM25 scores from the collection's sparse vector (one sparse query restricted to their ids), then
:func:`polycolbert.fusion.fuse_bm25`, with the script gate reading the collection's scripts from Qdrant's
facet counts. Four requests per search call, whatever the number of queries: MaxSim's candidates (their
ids only), the facet, the sparse queries, and the winners' payloads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polycolbert.backends.base import BackendInfo
from polycolbert.backends.checks import (
    CheckedBatch,
    check_batch,
    check_search,
    check_stream,
    refuse_taken,
    refuse_unknown,
)
from polycolbert.backends.muvera import Muvera
from polycolbert.backends.qdrant.bm25 import document_vector, query_vector
from polycolbert.backends.qdrant.connection import (
    DEFAULT_TIMEOUT,
    LOCAL_CLIENTS,
    close_client,
    connect,
    connection_errors,
    explain,
    stored_settings,
)
from polycolbert.backends.qdrant.filters import compile_filter
from polycolbert.backends.qdrant.layout import (
    FORMAT,
    MULTI,
    SCRIPT,
    SINGLE,
    SPARSE,
    collection_settings,
    default_prefetch_limit,
    point_id,
    single_vector,
    sparse_config,
    vectors_config,
)
from polycolbert.documents import DocumentBatch, SearchHit
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.filters import Filter
from polycolbert.fusion import CHOSEN, dominant_of_counts, fuse_bm25, query_passes, script_of
from polycolbert.index.params import K
from polycolbert.scoring import without_padding_rows

FACET_LIMIT = 1000  # distinct scripts a facet returns: more than Unicode has


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
        self.bm25: dict[str, Any] | None = settings.get("bm25")  # None: made before BM25 was stored
        self._model = model if model is not None and not isinstance(model, str) else None
        self.local_folder = local_folder
        self.batch_size = batch_size
        self.retries = retries
        self.prefetch_limit = prefetch_limit

    # -- opening ----------------------------------------------------------------------------------
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
        lock_timeout: float | None = None,
        **options: Any,
    ) -> QdrantBackend:
        """Open an existing collection; its settings come from the collection's metadata.

        ``create=True`` creates it when missing (what ``open_backend`` callers ask of every backend);
        ``nbits`` is the embedded index's residual compression and means nothing here (see ``quantization``).
        """
        if lock_timeout is not None:
            raise ValueError(
                "lock_timeout applies to embedded index folders; Qdrant orders concurrent writes itself"
            )
        client, collection, folder, exists = connect(location, api_key, timeout)
        try:
            if not exists and create:
                close_client(client, folder)
                return cls.create(
                    location, model=model, dimensions=dimensions, api_key=api_key, timeout=timeout, **options
                )
            try:
                if not exists:
                    raise ValueError(f"{location}: no such collection (create it first)")
                settings = stored_settings(client, collection)
            except connection_errors() as error:
                raise explain(error, location) from None
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
            close_client(client, folder)
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
        sharding = {
            "shard_number": shard_number,
            "replication_factor": replication_factor,
            "write_consistency_factor": write_consistency_factor,
        }
        settings = collection_settings(model_name, dims, distance, quantization, prefetch, sharding)
        vectors = vectors_config(settings, on_disk)

        client, collection, folder, exists = connect(location, api_key, timeout)
        try:
            if exists:
                if not exist_ok:
                    raise ValueError(
                        f"{location}: the collection already exists (open it, or pick another name)"
                    )
                close_client(client, folder)
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
                    sparse_vectors_config=sparse_config(on_disk),
                    shard_number=shard_number,
                    replication_factor=replication_factor,
                    write_consistency_factor=write_consistency_factor,
                    on_disk_payload=on_disk,
                    metadata={"polycolbert": settings},
                    timeout=timeout,
                )
                if folder is None:  # a server counts facets only over an indexed key; local mode needs none
                    client.create_payload_index(
                        collection, SCRIPT, field_schema=models.PayloadSchemaType.KEYWORD, wait=True
                    )
            except connection_errors() as error:
                raise explain(error, location) from None
        except BaseException:
            close_client(client, folder)
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

    def encoder(self) -> TokenEncoder:
        return self.model

    def _vectors(self, batch: CheckedBatch) -> list[np.ndarray]:
        if batch.vectors is not None:
            return batch.vectors
        return self.model.encode_documents(batch.texts, dimensions=self.dimensions)

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
            if self.bm25 is not None:
                indices, values = document_vector(text, self.bm25)
                if indices:  # a text without terms holds no sparse vector (and is no part of BM25's N)
                    named[SPARSE] = models.SparseVector(indices=indices, values=values)
                payload[SCRIPT] = script_of(text)
            points.append(models.PointStruct(id=point_id(doc_id), vector=named, payload=payload))
        return points

    def _write(self, batch: CheckedBatch) -> None:
        self._upsert(self._points(batch.ids, batch.texts, batch.metadata, self._vectors(batch)))

    def _upsert(self, points: list[Any]) -> None:
        """Batched upserts, each retried with backoff; ids are deterministic, so a retry never duplicates."""
        for start in range(0, len(points), self.batch_size):
            batch = points[start : start + self.batch_size]
            for attempt in range(self.retries + 1):
                try:
                    self.client.upsert(self.collection, points=batch, wait=True)
                    break
                except connection_errors() as error:
                    from qdrant_client.http.exceptions import UnexpectedResponse

                    permanent = isinstance(error, UnexpectedResponse) and (error.status_code or 0) < 500
                    if permanent or attempt == self.retries:
                        raise explain(error, self.location) from None
                    time.sleep(0.5 * 2**attempt)

    def add(
        self,
        *,
        texts: Sequence[str],
        ids: Sequence[str] | None = None,
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> list[str]:
        """Insert new documents; an id already stored is an error and nothing is written."""
        batch = check_batch(DocumentBatch(texts, ids, metadata, vectors), self.dimensions, self.model_name)
        refuse_taken(batch.ids, self.existing(batch.ids))
        self._write(batch)
        return batch.ids

    def add_stream(self, batches: Iterable[DocumentBatch], *, memory_budget_mb: float | None = None) -> int:
        """Store batch after batch (a failure part-way keeps the batches before it); one batch is held at
        a time, so ``memory_budget_mb`` is met by the caller's batch size and needs nothing more here."""
        added = 0
        for batch in check_stream(batches, self.dimensions, self.model_name, self.existing):
            self._write(batch)
            added += len(batch.ids)
        return added

    def update(
        self,
        *,
        texts: Sequence[str],
        ids: Sequence[str],
        metadata: Sequence[dict[str, Any]] | None = None,
        vectors: Sequence[np.ndarray] | None = None,
    ) -> None:
        """Replace stored documents; an unknown id is an error and nothing is written."""
        batch = check_batch(DocumentBatch(texts, ids, metadata, vectors), self.dimensions, self.model_name)
        refuse_unknown(batch.ids, self.existing(batch.ids))
        self._write(batch)

    def delete(self, ids: Sequence[str]) -> int:
        from qdrant_client import models

        if isinstance(ids, str):
            raise ValueError("ids must be a list, not one string")
        present = self.existing(ids)
        if present:
            try:
                self.client.delete(
                    self.collection,
                    points_selector=models.PointIdsList(points=[point_id(i) for i in present]),
                    wait=True,
                )
            except connection_errors() as error:
                raise explain(error, self.location) from None
        return len(present)

    # -- searching ----------------------------------------------------------------------------------
    def search(
        self,
        queries: Sequence[str] | None = None,
        *,
        query_vectors: Sequence[np.ndarray] | None = None,
        k: int = K,
        filter: Filter | None = None,
        hybrid: bool = False,
        exhaustive: bool = False,
        fusion: str = "none",
        prefetch_limit: int | None = None,
    ) -> list[list[SearchHit]]:
        """Top-``k`` per query: prefetch candidates by the single vector, then rank them by exact MaxSim.

        ``prefetch_limit`` (default: the backend's, else ``default_prefetch_limit``: ``max(100, 10 k)``
        for the mean vector, ``max(300, 30 k)`` for MUVERA) is how many candidates the
        single vector brings; ``0`` (or ``exhaustive=True``) skips the prefetch and scans every point with
        exact MaxSim. ``fusion="bm25"`` ranks MaxSim's best ``max(k, CHOSEN["bm25"].depth)`` again with
        BM25 (hits carry the fused score; the default prefetch is then the one for that depth).
        """
        from qdrant_client import models

        request = check_search(queries, query_vectors, k, filter, self.dimensions, self.model_name, fusion)
        if hybrid:
            raise ValueError("hybrid (BM25 + ColBERT) search is offered by the embedded index, not by Qdrant")
        if fusion == "bm25" and self.bm25 is None:
            raise ValueError(
                f"{self.location}: this collection has no BM25 vectors (it was created before they were "
                "stored); create a new collection and add the documents again to search it with bm25 fusion"
            )
        depth = max(k, CHOSEN["bm25"].depth) if fusion == "bm25" else k
        qfilter = compile_filter(request.filter) if request.filter is not None else None
        if request.vectors is not None:
            arrays = request.vectors
        else:
            assert request.queries is not None
            arrays = self.model.encode_queries(request.queries, dimensions=self.dimensions)
        arrays = [without_padding_rows(a) for a in arrays]
        chosen = 0 if exhaustive else prefetch_limit if prefetch_limit is not None else self.prefetch_limit
        limit = default_prefetch_limit(self.prefetch, depth) if chosen is None else int(chosen)
        requests = []
        for array in arrays:
            single = self._single(array, document=False) if limit > 0 else None
            prefetch = (
                models.Prefetch(query=single, using=SINGLE, filter=qfilter, limit=max(limit, depth))
                if single is not None
                else None
            )
            requests.append(
                models.QueryRequest(
                    query=array.tolist(),
                    using=MULTI,
                    prefetch=prefetch,
                    filter=qfilter,
                    limit=depth,
                    # fused: only the ids of the candidates; the winners' payloads are fetched once ranked
                    with_payload=True if fusion == "none" else ["id"],
                )
            )
        points = [response.points for response in self._query(requests)]
        if fusion == "bm25":
            assert request.queries is not None
            ranked = self._with_bm25(request.queries, points, k)
            payloads = self._payloads([point for found in ranked for point, _ in found])
            return [[_hit(payloads[point], score) for point, score in found] for found in ranked]
        return [[_hit(p.payload, p.score) for p in found] for found in points]

    def _query(self, requests: list[Any]) -> list[Any]:
        try:
            return self.client.query_batch_points(self.collection, requests=requests) if requests else []
        except connection_errors() as error:
            raise explain(error, self.location) from None

    def _with_bm25(
        self, queries: list[str], points: list[list[Any]], k: int
    ) -> list[list[tuple[str, float]]]:
        """Each query's ``k`` best ``(point id, fused score)`` among its MaxSim candidates (``points``, with
        MaxSim scores and their document ids), by ``fuse_bm25``, ties by document id. BM25 scores come from
        one sparse query per query text, restricted to the candidates' points."""
        from qdrant_client import models

        asked, requests = [], []
        for i, (text, found) in enumerate(zip(queries, points, strict=True)):
            indices, values = query_vector(text)
            if found and indices:  # no terms, or no candidates: BM25 is 0 everywhere
                asked.append(i)
                requests.append(
                    models.QueryRequest(
                        query=models.SparseVector(indices=indices, values=values),
                        using=SPARSE,
                        filter=models.Filter(must=[models.HasIdCondition(has_id=[p.id for p in found])]),
                        limit=len(found),
                        with_payload=False,
                    )
                )
        scored = dict(zip(asked, self._query(requests), strict=True))
        script = dominant_of_counts(self.script_counts()) if asked else None
        ranked = []
        for i, (text, found) in enumerate(zip(queries, points, strict=True)):
            bm25 = {str(p.id): float(p.score) for p in scored[i].points} if i in scored else {}
            maxsim = np.array([p.score for p in found], dtype=np.float64)
            lexical = np.array([bm25.get(str(p.id), 0.0) for p in found], dtype=np.float64)
            fused = fuse_bm25(maxsim, lexical, query_passes(text, script)) if found else maxsim
            doc_ids = [str((p.payload or {}).get("id")) for p in found]
            order = sorted(range(len(found)), key=lambda j: (-fused[j], doc_ids[j]))[:k]
            ranked.append([(str(found[j].id), float(fused[j])) for j in order])
        return ranked

    def _payloads(self, points: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The payloads of these points (a search's winners, fetched once all queries are ranked)."""
        found: dict[str, dict[str, Any]] = {}
        wanted = list(dict.fromkeys(points))
        for start in range(0, len(wanted), 256):
            try:
                records = self.client.retrieve(
                    self.collection, ids=wanted[start : start + 256], with_payload=True, with_vectors=False
                )
            except connection_errors() as error:
                raise explain(error, self.location) from None
            found.update({str(r.id): r.payload or {} for r in records})
        return found

    def script_counts(self) -> dict[str | None, int]:
        """How many points are written in each script (Qdrant's exact facet counts over ``script``)."""
        try:
            response = self.client.facet(self.collection, key=SCRIPT, limit=FACET_LIMIT, exact=True)
        except connection_errors() as error:
            raise explain(error, self.location) from None
        return {str(hit.value): int(hit.count) for hit in response.hits}

    # -- description --------------------------------------------------------------------------------
    def _scroll(self, field: str, cap: int | None = None) -> list[Any] | None:
        """The payload ``field`` of every point (None once more than ``cap`` points were read)."""
        values: list[Any] = []
        offset = None
        while True:
            records, offset = self.client.scroll(
                self.collection, limit=1000, offset=offset, with_payload=[field], with_vectors=False
            )
            values += [(r.payload or {}).get(field) for r in records]
            if offset is None:
                return values
            if cap is not None and len(values) >= cap:
                return None

    def info(self) -> BackendInfo:
        try:
            collection = self.client.get_collection(self.collection)
            documents = self.client.count(self.collection, exact=True).count
            counts = self._scroll("n_tokens", cap=1_000_000)
            scripts = self.script_counts() if self.bm25 is not None else {}
        except connection_errors() as error:
            raise explain(error, self.location) from None
        params = collection.config.params
        bytes_on_disk = None  # a remote server's disk is not visible
        if self.local_folder is not None:
            root = Path(self.local_folder) / "collection" / self.collection
            total = sum(p.stat().st_size for p in root.rglob("*") if p.is_file()) if root.exists() else 0
            bytes_on_disk = {"total": total}
        return BackendInfo(
            backend="qdrant",
            location=self.location,
            model=self.model_name,
            dimensions=self.dimensions,
            documents=int(documents),
            tokens=None if counts is None else sum(int(n or 0) for n in counts),
            bytes_on_disk=bytes_on_disk,
            settings={
                "distance": self.settings.get("distance"),
                "prefetch": self.prefetch,
                "muvera": self.settings.get("muvera"),
                "quantization": self.settings.get("quantization"),
                "bm25": self.bm25,
                "shard_number": params.shard_number,
                "replication_factor": params.replication_factor,
                "write_consistency_factor": params.write_consistency_factor,
            },
            details={
                "collection": self.collection,
                "status": str(getattr(collection.status, "value", collection.status)),
            },
            fusion={
                "available": ["none", "bm25"] if self.bm25 is not None else ["none"],
                "corpus_script": dominant_of_counts(scripts),
            },
        )

    def __len__(self) -> int:
        try:
            return int(self.client.count(self.collection, exact=True).count)
        except connection_errors() as error:
            raise explain(error, self.location) from None

    def existing(self, ids: Sequence[str]) -> set[str]:
        """Which of these document ids are stored (lets callers refuse a batch before encoding it)."""
        found: set[str] = set()
        wanted = list(dict.fromkeys(str(i) for i in ids))
        for start in range(0, len(wanted), 256):
            chunk = wanted[start : start + 256]
            try:
                records = self.client.retrieve(
                    self.collection, ids=[point_id(i) for i in chunk], with_payload=["id"], with_vectors=False
                )
            except connection_errors() as error:
                raise explain(error, self.location) from None
            found.update(str((r.payload or {}).get("id")) for r in records)
        return found

    def ids(self) -> list[str]:
        try:
            values = self._scroll("id")
        except connection_errors() as error:
            raise explain(error, self.location) from None
        return [str(v) for v in values or []]

    def compact(self) -> dict[str, Any]:
        """Nothing to do by hand: Qdrant's optimizer vacuums deleted points and merges segments itself."""
        return {"compacted": False, "reason": "Qdrant's optimizer vacuums and merges segments by itself"}

    def close(self) -> None:
        if self.local_folder is not None:
            LOCAL_CLIENTS.release(self.local_folder)
        else:
            self.client.close()

    def __enter__(self) -> QdrantBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _hit(payload: dict[str, Any] | None, score: float) -> SearchHit:
    """A hit from a point's payload (id, text, metadata) and its score."""
    found = payload or {}
    text, metadata = found.get("text"), found.get("metadata") or {}
    return SearchHit(id=str(found.get("id")), score=float(score), text=text, metadata=metadata)


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
