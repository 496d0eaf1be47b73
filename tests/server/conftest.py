"""One real default model for every server test (loading it is the expensive part)."""

from __future__ import annotations

import pytest
from live import IN_PROCESS

from polycolbert.server.app import create_app, load_registry


@pytest.fixture(scope="session")
def registry():
    registry = load_registry([], dtype="float32")
    yield registry
    registry.close()


@pytest.fixture
def client(registry):
    from fastapi.testclient import TestClient

    app = create_app(registry, keys=[], site=IN_PROCESS)
    app.router.lifespan_context = _no_close  # the session registry outlives each app
    with TestClient(app) as test_client:
        yield test_client


def _no_close(app):
    from contextlib import asynccontextmanager

    @asynccontextmanager
    async def lifespan(_):
        yield

    return lifespan(app)
