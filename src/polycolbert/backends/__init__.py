"""Where token vectors are stored and searched: the embedded index or Qdrant, behind one protocol.

``create_backend`` / ``open_backend`` pick the implementation from the location: a folder is an embedded
index, ``qdrant://host:port/name`` (or ``qdrants://``, ``qdrant+local://folder/name``) a Qdrant collection.
Either way the caller gets a :class:`Backend` (``base.py``: the protocol and :class:`BackendInfo`), whose
inputs are checked by one set of rules (``checks.py``); ``registry.py`` keeps the indexes under one root
open by name, for the server.
"""

from __future__ import annotations

from typing import Any

from polycolbert.backends.base import Backend, BackendInfo, is_qdrant
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.index.params import NBITS

__all__ = ["Backend", "BackendInfo", "create_backend", "is_qdrant", "open_backend"]


def create_backend(
    location: str,
    model: TokenEncoder | str | None = None,
    dimensions: int | None = None,
    nbits: int = NBITS,
    **qdrant_options: Any,
) -> Backend:
    """A new, empty store at ``location``; an existing one is an error (nothing is overwritten).

    ``nbits`` is the embedded index's residual compression; ``qdrant_options`` (prefetch, distance,
    quantization, on_disk, shard_number, replication_factor, write_consistency_factor, api_key, timeout)
    configure a Qdrant collection and are refused for a folder, where they would silently mean nothing.
    """
    if is_qdrant(location):
        from polycolbert.backends.qdrant import QdrantBackend

        return QdrantBackend.create(location, model=model, dimensions=dimensions, **qdrant_options)
    given = sorted(qdrant_options)
    if given:
        raise ValueError(f"{', '.join(given)}: Qdrant settings; {location} is an embedded index folder")
    from polycolbert.backends.local import LocalBackend

    return LocalBackend.create(location, model=model, dimensions=dimensions, nbits=nbits)


def open_backend(location: str, **options: Any) -> Backend:
    """``qdrant://host:port/collection``, ``qdrant+local://path/collection``, or an embedded index folder."""
    if is_qdrant(location):
        from polycolbert.backends.qdrant import QdrantBackend

        return QdrantBackend.open(location, **options)
    from polycolbert.backends.local import LocalBackend

    return LocalBackend.open(location, **options)
