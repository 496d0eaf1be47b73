"""Schemathesis over our own OpenAPI spec: generated requests, valid and invalid, never get a 5xx."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings
from live import IN_PROCESS

from polycolbert.server.app import create_app, load_registry

_registry = load_registry([], dtype="float32")
app = create_app(_registry, keys=[], site=IN_PROCESS)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)
# Both valid requests and ones that break the schema on purpose (wrong types, missing fields, extras).
schema.config.generation.update(
    modes=[schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
)


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    response = case.call()
    assert response.status_code < 500, (case.method, case.path, case.body, response.text)
    if response.status_code >= 400:
        body = response.json()
        assert {"detail", "code", "request_id"} <= set(body)
