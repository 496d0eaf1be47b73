"""Live servers for the client contract tests: one without keys (loopback), one with a key.

The clients are used as their users use them, over real HTTP on loopback. None reaches the internet:
Haystack's usage telemetry (PostHog) is switched off with ``HAYSTACK_TELEMETRY_ENABLED=False`` before it
is imported; the other clients send nothing at import or use.
"""

from __future__ import annotations

import os

import pytest

from clients.client_env import KEY, live_module
from polycolbert.server.app import create_app, load_registry

os.environ["HAYSTACK_TELEMETRY_ENABLED"] = "False"
live_server = live_module().live_server


@pytest.fixture(scope="session")
def client_registry():
    registry = load_registry([], dtype="float32")
    yield registry
    registry.close()


@pytest.fixture(scope="session")
def servers(client_registry):
    """``{"keyless": url, "keyed": url}``: the same models, the second answering only ``KEY``."""
    with (
        live_server(create_app(client_registry, keys=[])) as keyless,
        live_server(create_app(client_registry, keys=[KEY])) as keyed,
    ):
        yield {"keyless": keyless, "keyed": keyed}
