"""Reaching Qdrant: locations, clients (one shared per local folder), and errors worded for people.

A location is ``qdrant://host:port/collection`` (``qdrants://`` for HTTPS) or
``qdrant+local://folder/collection`` (qdrant-client's local mode: no server, a folder on disk). Every
failure to reach a server, or a refusal by it, becomes one ``ValueError`` sentence that says what to
check, instead of an HTTP client's stack trace.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

DEFAULT_TIMEOUT = 10


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


def connection_errors() -> tuple[type[BaseException], ...]:
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    return (ResponseHandlingException, UnexpectedResponse, ConnectionError, TimeoutError, OSError)


def explain(error: BaseException, location: str) -> ValueError:
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


def client_for(location: str, api_key: str | None, timeout: int) -> tuple[Any, str, str | None]:
    """A client, the collection name, and the local folder (None for a server); release with
    :func:`close_client`."""
    from qdrant_client import QdrantClient

    kind, where, collection = parse_location(location)
    if kind == "local":
        return LOCAL_CLIENTS.acquire(where, location), collection, where
    key = api_key if api_key is not None else os.environ.get("QDRANT_API_KEY") or None
    client = QdrantClient(url=where, api_key=key, timeout=timeout, check_compatibility=False)
    return client, collection, None


def connect(location: str, api_key: str | None, timeout: int) -> tuple[Any, str, str | None, bool]:
    """A client, the collection name, the local folder, and whether the collection exists.

    Why one step: an unreachable server must become a readable error, and a client acquired for a
    probe that fails must be released, in ``open`` and ``create`` alike.
    """
    client, collection, folder = client_for(location, api_key, timeout)
    try:
        return client, collection, folder, bool(client.collection_exists(collection))
    except connection_errors() as error:
        close_client(client, folder)
        raise explain(error, location) from None
    except BaseException:
        close_client(client, folder)
        raise


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


LOCAL_CLIENTS = _LocalClients()


def close_client(client: Any, folder: str | None) -> None:
    if folder is not None:
        LOCAL_CLIENTS.release(folder)
    else:
        client.close()


def list_collections(root: str, api_key: str | None = None, timeout: int = DEFAULT_TIMEOUT) -> list[str]:
    """Names of the polycolbert collections under ``qdrant://host:port`` or ``qdrant+local://folder``."""
    client, _, folder = client_for(root.rstrip("/") + "/_", api_key, timeout)
    try:
        try:
            names = [c.name for c in client.get_collections().collections]
            return sorted(name for name in names if isinstance(stored_settings(client, name), dict))
        except connection_errors() as error:
            raise explain(error, root) from None
    finally:
        close_client(client, folder)


def stored_settings(client: Any, collection: str) -> Any:
    """What ``create`` wrote into the collection's metadata (None where polycolbert did not make it)."""
    return (client.get_collection(collection).config.metadata or {}).get("polycolbert")


def is_polycolbert_collection(
    location: str, api_key: str | None = None, timeout: int = DEFAULT_TIMEOUT
) -> bool:
    """Whether ``qdrant://host:port/name`` (or a local one) is a polycolbert collection.

    Why not ``name in list_collections(root)``: that reads every collection's config, one request each.
    """
    client, collection, folder, exists = connect(location, api_key, timeout)
    try:
        if not exists:
            return False
        try:
            return isinstance(stored_settings(client, collection), dict)
        except connection_errors() as error:
            raise explain(error, location) from None
    finally:
        close_client(client, folder)
