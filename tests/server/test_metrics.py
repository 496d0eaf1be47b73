"""Request metrics carry the matched route's template: one label per route, whatever its parameters."""

from __future__ import annotations

from fastapi.testclient import TestClient
from live import IN_PROCESS

from polycolbert.server.app import create_app


def requests_total(client: TestClient) -> str:
    return "\n".join(
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("polycolbert_requests_total")
    )


def test_index_search_is_labelled_by_its_route_template(registry, tmp_path):
    # No `with`: the app's lifespan would close the session-wide registry's batchers on exit.
    client = TestClient(create_app(registry, keys=[], index_root=str(tmp_path), site=IN_PROCESS))
    try:
        assert client.post("/v1/indexes", json={"name": "demo", "dimensions": 64}).status_code == 201
        found = client.post("/v1/indexes/demo/search", json={"queries": ["Paris"], "k": 1})
        assert found.status_code == 200, found.text
        assert client.post("/v1/indexes/absent/search", json={"queries": ["x"]}).status_code == 404
        assert client.get("/no/such/route").status_code == 404
        counted = requests_total(client)
    finally:
        client.app.state.indexes.close()
    assert 'route="/v1/indexes/{name}/search",status="200"} 1.0' in counted
    assert 'route="/v1/indexes/{name}/search",status="404"} 1.0' in counted
    assert 'route="/v1/indexes",status="201"} 1.0' in counted
    assert 'route="other",status="404"} 1.0' in counted
    assert "demo" not in counted and "absent" not in counted


def test_a_request_refused_before_routing_keeps_its_route_label(registry):
    client = TestClient(create_app(registry, keys=["secret"], site=IN_PROCESS))
    assert client.post("/v1/indexes/demo/search", json={"queries": ["x"]}).status_code == 401
    assert 'route="/v1/indexes/{name}/search",status="401"} 1.0' in requests_total(client)
