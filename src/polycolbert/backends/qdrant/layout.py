"""How a polycolbert collection is laid out in Qdrant (Qdrant's own advice for late-interaction models).

* ``colbert``: the token vectors as one multivector per point, compared with ``MAX_SIM``, with
  ``hnsw m=0``. Indexing every token vector in HNSW costs a lot of RAM and slow inserts; instead the
  multivector is only used to rescore candidates exactly.
* ``prefetch``: one single vector per point that finds those candidates through an ordinary HNSW index:
  the mean token vector (``prefetch="mean"``, default) or a MUVERA fixed-dimensional encoding
  (``prefetch="muvera"``). ``prefetch=None`` stores no such vector and every search scans all points
  with exact MaxSim (right for small collections; docs/scaling.md shows what the prefetch costs).
* ``bm25``: a sparse vector of BM25 term weights with Qdrant's IDF modifier (``bm25.py``), which
  ``search(fusion="bm25")`` reads for MaxSim's candidates only. Collections created before it have none.

Point ids are UUIDv5 of the document's string id, so re-running an interrupted, batched, retried upsert
overwrites the points it already wrote instead of duplicating them. The payload holds the string id, the
text, the metadata (filters reach it as ``metadata.<field>``), the token count and the text's script
(``fusion.script_of``, under ``script``; the BM25 gate reads the collection's scripts with Qdrant's facet
counts, so a server keeps a keyword index on it). The collection's polycolbert settings (model,
dimensions, prefetch kind and MUVERA seed, BM25's constants) live in Qdrant's collection metadata, so
``open`` needs nothing but the URL.
"""

from __future__ import annotations

import uuid
from typing import Any

import numpy as np

from polycolbert.backends.muvera import Muvera
from polycolbert.backends.qdrant import bm25

MULTI = "colbert"
SINGLE = "prefetch"
SPARSE = "bm25"
SCRIPT = "script"  # the payload key of a point's script (top level, beside metadata: no field clashes)
FORMAT = 1
ID_NAMESPACE = uuid.UUID("5b0c3f1e-8f7a-4d57-9a43-6f6c79636f6c")  # fixed forever: ids must not move
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


def collection_settings(
    model_name: str,
    dimensions: int,
    distance: str,
    quantization: str | None,
    prefetch: str | None,
    sharding: dict[str, int | None],
) -> dict[str, Any]:
    """The polycolbert settings stored in the collection's metadata, every choice checked first."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {', '.join(DISTANCES)}; got {distance!r}")
    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be None, 'scalar' or 'binary'; got {quantization!r}")
    if prefetch not in PREFETCH_KINDS:
        raise ValueError(f"prefetch must be 'mean', 'muvera' or None; got {prefetch!r}")
    for name, value in sharding.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    settings: dict[str, Any] = {
        "format": FORMAT,
        "model": model_name,
        "dimensions": dimensions,
        "distance": distance,
        "prefetch": prefetch,
        "quantization": quantization,
    }
    if prefetch == "muvera":
        settings["muvera"] = Muvera(dimensions).settings()
    settings["bm25"] = bm25.settings()
    return settings


def sparse_config(on_disk: bool) -> dict[str, Any]:
    """The sparse vectors of a new collection: BM25 term weights, IDF computed by Qdrant."""
    from qdrant_client import models

    return {
        SPARSE: models.SparseVectorParams(
            index=models.SparseIndexParams(on_disk=on_disk), modifier=models.Modifier.IDF
        )
    }


def vectors_config(settings: dict[str, Any], on_disk: bool) -> dict[str, Any]:
    """The named vectors of a collection with these settings (``qdrant_client.models.VectorParams``)."""
    from qdrant_client import models

    dims, prefetch = int(settings["dimensions"]), settings["prefetch"]
    metric = models.Distance.COSINE if settings["distance"] == "cosine" else models.Distance.DOT
    quantization_config: Any = None
    if settings["quantization"] == "scalar":
        quantization_config = models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
        )
    elif settings["quantization"] == "binary":
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
    return vectors
