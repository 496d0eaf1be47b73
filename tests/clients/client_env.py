"""What the client tests share: the API key the keyed server answers, and the clients' URL constants."""

from __future__ import annotations

import importlib.util
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

KEY = "local-key"


def live_module() -> ModuleType:
    """``tests/server/live.py`` (a real uvicorn on loopback): the module the server tests call ``live``."""
    if "live" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "live", Path(__file__).parents[1] / "server" / "live.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["live"] = module
        spec.loader.exec_module(module)
    return sys.modules["live"]


@contextmanager
def langchain_urls(rerank_url: str | None = None, embeddings_url: str | None = None) -> Iterator[None]:
    """LangChain's Jina classes read module constants (they have no base-URL option): set, then restore."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-community announces its sunset on import
        from langchain_community.document_compressors import jina_rerank
        from langchain_community.embeddings import jina
    saved = (jina_rerank.JINA_API_URL, jina.JINA_API_URL)
    try:
        jina_rerank.JINA_API_URL = rerank_url or saved[0]
        jina.JINA_API_URL = embeddings_url or saved[1]
        yield
    finally:
        jina_rerank.JINA_API_URL, jina.JINA_API_URL = saved
