"""The ``Backend`` protocol on Qdrant: the same add/update/delete/search API on a server or a cluster.

``backend.py`` is the store (``QdrantBackend``); ``layout.py`` how a collection holds documents (a
multivector rescored with exact MaxSim, found through one prefetch vector); ``connection.py`` locations,
clients and errors; ``filters.py`` the portable filter as a Qdrant payload filter.

>>> import tempfile, numpy as np
>>> folder = tempfile.mkdtemp()
>>> store = QdrantBackend.create(f"qdrant+local://{folder}/docs", model="toy", dimensions=2)
>>> store.add(texts=["x", "y"], ids=["a", "b"],
...           vectors=[np.eye(2, dtype=np.float32), np.ones((1, 2), np.float32)])
['a', 'b']
>>> [h.id for h in store.search(query_vectors=[np.array([[1.0, 0.0]], np.float32)], k=2)[0]]
['a', 'b']
>>> store.close()
"""

from polycolbert.backends.qdrant.backend import QdrantBackend
from polycolbert.backends.qdrant.connection import (
    is_polycolbert_collection,
    list_collections,
    parse_location,
)
from polycolbert.backends.qdrant.filters import to_qdrant_filter
from polycolbert.backends.qdrant.layout import default_prefetch_limit, point_id, single_vector

__all__ = [
    "QdrantBackend",
    "default_prefetch_limit",
    "is_polycolbert_collection",
    "list_collections",
    "parse_location",
    "point_id",
    "single_vector",
    "to_qdrant_filter",
]
