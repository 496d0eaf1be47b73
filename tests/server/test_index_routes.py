"""Index routes over HTTP: create, add, search (filters, hybrid), info, delete, and their errors."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from live import IN_PROCESS

from polycolbert.server.app import create_app

DOCS = [
    {"id": "eiffel", "text": "The Eiffel Tower stands in Paris.", "metadata": {"lang": "en"}},
    {"id": "turm", "text": "Der Eiffelturm steht in Paris.", "metadata": {"lang": "de"}},
    {"id": "tokyo", "text": "Tokyo is the capital of Japan.", "metadata": {"lang": "en"}},
]


@pytest.fixture(params=["folder", "qdrant"])
def api(request, registry, tmp_path):
    """The same routes over a folder of embedded indexes and over Qdrant (local mode) collections."""
    root = str(tmp_path) if request.param == "folder" else f"qdrant+local://{tmp_path}/qdrant"
    # No `with`: the app's lifespan would close the session-wide registry's batchers on exit.
    client = TestClient(create_app(registry, keys=[], index_root=root, site=IN_PROCESS))
    client.backend_kind = request.param
    yield client
    client.app.state.indexes.close()


def test_index_lifecycle(api):
    created = api.post("/v1/indexes", json={"name": "demo", "dimensions": 64})
    assert created.status_code == 201, created.text
    assert created.json()["dimensions"] == 64 and created.json()["documents"] == 0
    assert api.post("/v1/indexes/demo/documents", json={"documents": DOCS}).json()["added"] == 3
    found = api.post(
        "/v1/indexes/demo/search", json={"queries": ["Where is the Eiffel Tower?"], "k": 2}
    ).json()
    assert [h["id"] for h in found["results"][0]][:1] in (["eiffel"], ["turm"]) and len(
        found["results"][0]
    ) == 2
    german = api.post(
        "/v1/indexes/demo/search", json={"queries": ["Eiffel Tower"], "k": 1, "filter": {"lang": "de"}}
    ).json()
    assert german["results"][0][0]["id"] == "turm"
    hybrid = api.post("/v1/indexes/demo/search", json={"queries": ["Tokyo"], "k": 3, "hybrid": True})
    exhaustive = api.post("/v1/indexes/demo/search", json={"queries": ["Tokyo"], "k": 3, "exhaustive": True})
    fused = api.post("/v1/indexes/demo/search", json={"queries": ["Tokyo"], "k": 3, "fusion": "bm25"})
    assert fused.status_code == 200, fused.text
    assert fused.json()["results"][0][0]["id"] == "tokyo"  # both stores offer BM25 fusion
    assert exhaustive.json()["results"][0][0]["id"] == "tokyo"
    info = api.get("/v1/indexes/demo").json()
    assert info["documents"] == 3 and info["dimensions"] == 64
    if api.backend_kind == "folder":
        assert hybrid.json()["results"][0][0]["id"] == "tokyo" and info["bytes_on_disk"]["total"] > 0
        assert info["fusion"]["lexicon_bytes"] > 0
    else:  # Qdrant has no keyword index: a clear 400, not a 500
        check(hybrid, 400)
        assert "embedded index" in hybrid.json()["detail"] and info["backend"] == "qdrant"
        assert info["bytes_on_disk"]["total"] > 0  # the shape the playground reads
    assert [i["name"] for i in api.get("/v1/indexes").json()["data"]] == ["demo"]
    assert api.post("/v1/indexes/demo/documents/delete", json={"ids": ["tokyo"]}).json()["deleted"] == 1
    after = api.post("/v1/indexes/demo/search", json={"queries": ["Tokyo"], "k": 3}).json()
    assert "tokyo" not in [h["id"] for h in after["results"][0]]
    updated = api.post(
        "/v1/indexes/demo/documents",
        json={"update": True, "documents": [{"id": "eiffel", "text": "Tokyo Tower is in Minato, Tokyo."}]},
    )
    assert updated.json()["updated"] == 1


def check(response, status):
    assert response.status_code == status, response.text
    assert {"detail", "code", "request_id"} <= set(response.json())


def test_index_errors(api, registry):
    check(api.get("/v1/indexes/nothing"), 404)
    check(api.post("/v1/indexes", json={"name": "../escape"}), 400)
    check(api.post("/v1/indexes", json={"name": "x", "model": "nope"}), 400)
    check(api.post("/v1/indexes", json={"name": "x", "dimensions": 100}), 400)
    api.post("/v1/indexes", json={"name": "x"})
    check(api.post("/v1/indexes", json={"name": "x"}), 409)
    api.post("/v1/indexes/x/documents", json={"documents": DOCS[:1]})
    check(api.post("/v1/indexes/x/documents", json={"documents": DOCS[:1]}), 400)  # duplicate id
    blank = api.post("/v1/indexes/x/documents", json={"documents": [{"id": "a", "text": '"'}]})
    assert blank.status_code == 200, blank.text  # one document's content never fails a write
    check(api.post("/v1/indexes/x/search", json={"queries": ["q"], "k": 0}), 422)
    check(api.post("/v1/indexes/x/search", json={"queries": ["q"], "filter": {"$bad": 1}}), 400)
    wrong = api.post("/v1/indexes/x/search", json={"queries": ["q"], "fusion": "dense"})
    check(wrong, 422)
    assert "fusion" in wrong.text
    check(api.post("/v1/indexes/x/documents", json={"documents": []}), 422)
    no_root = TestClient(create_app(registry, keys=[], site=IN_PROCESS))
    check(no_root.get("/v1/indexes/x"), 404)
    assert no_root.get("/v1/indexes").json()["data"] == []
