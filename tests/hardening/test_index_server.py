"""The index routes under the hardening review's reproductions: the token cap and the queue on writes and
searches, one damaged index among healthy ones, a name with a trailing newline, and the playground's
error messages.

Reproductions: with ``--max-request-tokens 64``, ``/v1/multi-vector`` refused a 3,000-word document but
``POST /v1/indexes/{name}/documents`` stored it; one corrupt index made ``GET /v1/indexes`` a 500 (and
emptied the playground's index list); ``{"name": "x\\n"}`` created a folder with a newline in its name.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "server"))

from live import IN_PROCESS

from polycolbert.models.catalog import DEFAULT_MODEL
from polycolbert.server.app import create_app, load_registry
from polycolbert.server.batching import QueueFull
from polycolbert.server.registry import Registry

LONG = " ".join(f"word{i % 97}" for i in range(3000))


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    registry = load_registry([], dtype="float32")
    yield registry
    registry.close()


def client(registry: Registry, root: Path, **options: Any) -> TestClient:
    """No ``with``: the app's lifespan would close the module's registry on exit."""
    return TestClient(create_app(registry, keys=[], index_root=root, site=IN_PROCESS, **options))


@pytest.fixture
def capped(registry: Registry, tmp_path: Path) -> Iterator[TestClient]:
    api = client(registry, tmp_path, max_request_tokens=64)
    assert api.post("/v1/indexes", json={"name": "docs", "dimensions": 64}).status_code == 201
    yield api
    api.app.state.indexes.close()


def test_index_writes_meet_the_same_token_cap_as_multi_vector(capped: TestClient) -> None:
    reference = capped.post("/v1/multi-vector", json={"model": DEFAULT_MODEL, "input": [LONG]})
    assert reference.status_code == 400 and reference.json()["code"] == "INPUT_TOO_LARGE"
    added = capped.post("/v1/indexes/docs/documents", json={"documents": [{"id": "long", "text": LONG}]})
    assert added.status_code == 400, added.text
    assert added.json()["code"] == "INPUT_TOO_LARGE"
    assert added.json()["detail"] == "documents: " + reference.json()["detail"]  # same count, same words
    assert "at most 64 per request" in added.json()["detail"]
    assert capped.get("/v1/indexes/docs").json()["documents"] == 0  # nothing stored
    updated = capped.post(
        "/v1/indexes/docs/documents", json={"update": True, "documents": [{"id": "x", "text": LONG}]}
    )
    assert updated.status_code == 400 and updated.json()["detail"].startswith("documents: This request is")
    searched = capped.post("/v1/indexes/docs/search", json={"queries": [LONG] * 3})
    assert searched.status_code == 400 and searched.json()["detail"].startswith("queries: This request is")
    small = capped.post("/v1/indexes/docs/documents", json={"documents": [{"id": "s", "text": "short text"}]})
    assert small.status_code == 200 and small.json()["added"] == 1


def test_index_writes_and_searches_encode_through_the_model_queue(
    capped: TestClient, registry: Registry, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = registry.get(DEFAULT_MODEL)

    def not_here(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the route called the model directly instead of queueing on its batcher")

    monkeypatch.setattr(served.model, "encode_documents", not_here)
    monkeypatch.setattr(served.model, "encode_queries", not_here)
    jobs = served.batcher.batched_jobs
    added = capped.post("/v1/indexes/docs/documents", json={"documents": [{"id": "a", "text": "Paris"}]})
    assert added.status_code == 200, added.text
    found = capped.post("/v1/indexes/docs/search", json={"queries": ["Paris"], "k": 1})
    assert found.status_code == 200 and found.json()["results"][0][0]["id"] == "a"
    assert served.batcher.batched_jobs == jobs + 2

    async def full(*args: Any, **kwargs: Any) -> Any:
        raise QueueFull

    monkeypatch.setattr(served.batcher, "encode", full)
    for path, body in (
        ("/v1/indexes/docs/documents", {"documents": [{"id": "b", "text": "Rome"}]}),
        ("/v1/indexes/docs/search", {"queries": ["Rome"]}),
    ):
        busy = capped.post(path, json=body)
        assert busy.status_code == 429 and busy.headers["Retry-After"] == "1", busy.text
        assert busy.json()["code"] == "RATE_CONCURRENCY_LIMIT_EXCEEDED"
    assert capped.get("/v1/indexes/docs").json()["documents"] == 1


def test_a_damaged_index_does_not_hide_the_others(registry: Registry, tmp_path: Path) -> None:
    maker = client(registry, tmp_path)
    for name in ("healthy", "truncated", "emptied"):
        assert maker.post("/v1/indexes", json={"name": name, "dimensions": 64}).status_code == 201
        documents = [{"id": "a", "text": "The Eiffel Tower stands in Paris."}]
        assert maker.post(f"/v1/indexes/{name}/documents", json={"documents": documents}).status_code == 200
    maker.app.state.indexes.close()
    database = tmp_path / "truncated" / "index.sqlite"
    database.write_bytes(database.read_bytes()[: database.stat().st_size // 2])
    (tmp_path / "emptied" / "index.sqlite").write_bytes(b"")

    api = client(registry, tmp_path)
    listed = api.get("/v1/indexes")
    assert listed.status_code == 200, listed.text
    assert [(i["name"], i["documents"]) for i in listed.json()["data"]] == [("healthy", 1)]
    damaged = listed.json()["damaged"]
    assert [d["name"] for d in damaged] == ["emptied", "truncated"]
    assert all("damaged" in d["error"] for d in damaged)
    broken = api.get("/v1/indexes/truncated")
    assert broken.status_code == 503 and broken.json()["code"] == "INDEX_DAMAGED"
    assert "index check" in broken.json()["detail"]
    assert "the index is damaged" in broken.json()["detail"] and str(tmp_path) not in broken.json()["detail"]
    found = api.post("/v1/indexes/healthy/search", json={"queries": ["Eiffel Tower"], "k": 1})
    assert found.status_code == 200 and found.json()["results"][0][0]["id"] == "a"
    assert api.get("/").status_code == 200  # the playground, whose index list reads data[]
    api.app.state.indexes.close()


@pytest.mark.parametrize("name", ["x\n", "x\ny", "x\r", "x "])
def test_index_names_are_matched_whole(registry: Registry, tmp_path: Path, name: str) -> None:
    api = client(registry, tmp_path)
    refused = api.post("/v1/indexes", json={"name": name})
    assert refused.status_code == 400 and "use letters, digits" in refused.json()["detail"]
    assert list(tmp_path.iterdir()) == []


def test_the_playground_shows_error_messages_as_text_never_markup() -> None:
    page = resources.files("polycolbert.server").joinpath("static/playground.html").read_text("utf-8")
    assignments = re.findall(r"innerHTML\s*=[^;]*;", page, flags=re.S)
    assert assignments and not [a for a in assignments if "error" in a or "message" in a], assignments
    assert "span.textContent = error.message" in page
