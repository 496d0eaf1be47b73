"""``BackendRegistry``: the indexes under one root, opened by name and kept open.

The root is a folder of embedded indexes, or a Qdrant deployment (``qdrant://host:port`` or
``qdrant+local://folder``) whose collections are the indexes; either way callers see only ``Backend``s.
The server's ``/v1/indexes`` routes are its user, but it knows nothing of HTTP: a missing root or index
is :class:`IndexNotFound`, a bad name or setting a ``ValueError``, and the caller words the reply.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from pathlib import Path

from polycolbert.backends import Backend, create_backend, is_qdrant, open_backend
from polycolbert.encoding.protocol import TokenEncoder

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class IndexNotFound(LookupError):
    """No index of that name under the root."""


class NoIndexRoot(IndexNotFound):
    """The registry was made without a root, so it holds no index at all."""


class BackendRegistry:
    """Open indexes by name under ``root``; one write lock per index (SQLite serialises commits anyway)."""

    def __init__(self, root: str | Path | None):
        self.root = None if root is None else str(root).rstrip("/") or "/"
        self.qdrant = self.root is not None and is_qdrant(self.root)
        self.open: dict[str, Backend] = {}
        self.locks: dict[str, threading.Lock] = {}

    def location(self, name: str) -> str:
        """Where index ``name`` lives (a folder or a collection URL); checks the name first."""
        if self.root is None:
            raise NoIndexRoot("no index root")
        if not NAME.match(name):
            raise ValueError(f"Index name {name!r}: use letters, digits, '_', '-', '.'")
        return f"{self.root}/{name}" if self.qdrant else str(Path(self.root) / name)

    def exists(self, name: str) -> bool:
        if self.qdrant:
            from polycolbert.backends.qdrant import is_polycolbert_collection

            return bool(is_polycolbert_collection(self.location(name)))
        return Path(self.location(name)).exists()

    def get(self, name: str, model_for: Callable[[str], TokenEncoder]) -> Backend:
        """The open index ``name``, opened on first use with ``model_for(its model name)`` as encoder."""
        if name in self.open:
            return self.open[name]
        location = self.location(name)
        if not self.exists(name) or (not self.qdrant and not (Path(location) / "index.sqlite").is_file()):
            raise IndexNotFound(f"No index named {name!r}")
        probe = open_backend(location)
        model_name = probe.model_name
        probe.close()
        model = model_for(model_name)
        self.open[name] = open_backend(location, model=model)
        self.locks[name] = threading.Lock()
        return self.open[name]

    def create(self, name: str, model: TokenEncoder, dimensions: int | None, nbits: int) -> Backend:
        backend = create_backend(self.location(name), model=model, dimensions=dimensions, nbits=nbits)
        self.open[name], self.locks[name] = backend, threading.Lock()
        return backend

    def names(self) -> list[str]:
        if self.root is None:
            return []
        if self.qdrant:
            from polycolbert.backends.qdrant import list_collections

            return list_collections(self.root)
        root = Path(self.root)
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "index.sqlite").is_file())

    def close(self) -> None:
        for backend in self.open.values():
            backend.close()
        self.open.clear()
