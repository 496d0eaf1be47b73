"""``BackendRegistry``: the indexes under one root, opened by name and kept open.

The root is a folder of embedded indexes, or a Qdrant deployment (``qdrant://host:port`` or
``qdrant+local://folder``) whose collections are the indexes; either way callers see only ``Backend``s.
The server's ``/v1/indexes`` routes are its user, but it knows nothing of HTTP: a missing root or index
is :class:`IndexNotFound`, a bad name or setting a ``ValueError``, an index that cannot be read
:class:`IndexDamaged`, and the caller words the reply. One damaged index never hides the others:
:meth:`BackendRegistry.survey` lists the healthy ones and reports the damaged ones beside them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polycolbert.backends import Backend, BackendInfo, create_backend, is_qdrant, open_backend
from polycolbert.encoding.protocol import TokenEncoder
from polycolbert.index.errors import IndexBusy, IndexDamaged

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")  # the whole name (fullmatch), nothing after it


class IndexNotFound(LookupError):
    """No index of that name under the root."""


class NoIndexRoot(IndexNotFound):
    """The registry was made without a root, so it holds no index at all."""


@dataclass
class Survey:
    """Every index under the root: ``healthy`` (name, info) in name order, and ``damaged`` (name, why)."""

    healthy: list[tuple[str, BackendInfo]] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)


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
        if not NAME.fullmatch(name):
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
        model_name = self._read(name, lambda probe: probe.model_name)
        model = model_for(model_name)
        self.open[name] = self._read(name, lambda backend: backend, model=model, keep=True)
        self.locks[name] = threading.Lock()
        return self.open[name]

    def info(self, name: str) -> BackendInfo:
        """What index ``name`` holds, without loading its model (the open index's, if it is open)."""
        if name in self.open:
            return self._use(name, self.open[name], lambda backend: backend.info())
        return self._read(name, lambda probe: probe.info())

    def survey(self) -> Survey:
        """Each index's info, or why it could not be read: one bad index does not fail the listing
        (a root that cannot be listed at all, e.g. an unreachable Qdrant server, still raises)."""
        survey = Survey()
        for name in self.names():
            try:
                survey.healthy.append((name, self.info(name)))
            except IndexDamaged as error:  # what is wrong, without the server's file paths
                survey.damaged.append((name, f"damaged: {error.reason}"))
            except ValueError as error:
                survey.damaged.append((name, str(error)))
        return survey

    def _read(self, name: str, use: Callable[[Backend], Any], keep: bool = False, **options: Any) -> Any:
        """``use(backend)`` on index ``name`` opened with ``options``; closed afterwards unless ``keep``.

        Any failure other than a refusal worded for people (``ValueError``, e.g. a Qdrant server that
        cannot be reached) means the index's files cannot be read: :class:`IndexDamaged`.
        """
        try:
            backend = open_backend(self.location(name), **options)
        except (ValueError, LookupError, IndexBusy, IndexDamaged):
            raise
        except Exception as error:
            raise _damaged(self.location(name), error) from None
        try:
            result = self._use(name, backend, use)
        except BaseException:
            backend.close()
            raise
        if not keep:
            backend.close()
        return result

    @staticmethod
    def _use(name: str, backend: Backend, use: Callable[[Backend], Any]) -> Any:
        try:
            return use(backend)
        except (ValueError, LookupError, IndexBusy, IndexDamaged):
            raise
        except Exception as error:
            raise _damaged(name, error) from None

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


def _damaged(location: str, error: BaseException) -> IndexDamaged:
    """Any other failure to open or use a store means its files (or its server) cannot be read."""
    return IndexDamaged(location, _why(error))


def _why(error: BaseException) -> str:
    return f"{error} ({type(error).__name__})" if str(error) else type(error).__name__
