"""A keyless loopback server refuses what a foreign web page can send, and takes what its own page sends.

The requests are the ones the hardening review reproduced against a live server: a ``text/plain`` JSON
body with ``Origin: http://evil.example`` (no CORS preflight needed), and a DNS-rebound ``Host``.
Strict JSON: a ``NaN`` in metadata used to be stored and then break every filtered search.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "server"))

from live import live_server

from polycolbert.server.app import create_app
from polycolbert.server.cross_site import SitePolicy

EVIL = "http://evil.example"
DOCS = [{"id": f"g{i}", "text": f"document number {i}", "metadata": {"n": i}} for i in range(3)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from polycolbert.server.app import load_registry

    registry = load_registry([], dtype="float32")
    root = tmp_path_factory.mktemp("indexes")
    site = SitePolicy(
        "127.0.0.1", allowed_hosts=("trusted.example",), allowed_origins=("http://app.example",)
    )
    with live_server(create_app(registry, keys=[], index_root=root, site=site)) as url:
        made = httpx.post(f"{url}/v1/indexes", json={"name": "victim", "dimensions": 64})
        assert made.status_code == 201, made.text
        added = httpx.post(f"{url}/v1/indexes/victim/documents", json={"documents": DOCS}, timeout=120)
        assert added.json()["added"] == 3
        yield url
    registry.close()


def _count(url: str) -> int:
    return int(httpx.get(f"{url}/v1/indexes/victim").json()["documents"])


def test_text_plain_delete_from_a_foreign_page_is_refused(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/indexes/victim/documents/delete",
        content=b'{"ids":["g0","g1","g2"]}',
        headers={"Origin": EVIL, "Content-Type": "text/plain"},
    )
    assert response.status_code == 403 and response.json()["code"] == "ORIGIN_NOT_ALLOWED"
    assert "--allowed-origin" in response.json()["detail"]
    assert _count(server) == 3


def test_index_creation_from_a_foreign_page_is_refused(server: str) -> None:
    response = httpx.post(
        f"{server}/v1/indexes",
        content=b'{"name":"planted"}',
        headers={"Origin": EVIL, "Content-Type": "text/plain"},
    )
    assert response.status_code == 403
    names = [i["name"] for i in httpx.get(f"{server}/v1/indexes").json()["data"]]
    assert names == ["victim"]


@pytest.mark.parametrize(
    "kind", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
def test_state_changes_need_a_json_content_type_even_without_origin(server: str, kind: str | None) -> None:
    headers = {"Content-Type": kind} if kind else {}
    response = httpx.post(
        f"{server}/v1/indexes/victim/documents/delete", content=b'{"ids":["g0"]}', headers=headers
    )
    assert response.status_code == 415 and "application/json" in response.json()["detail"]
    assert _count(server) == 3


def test_dns_rebinding_host_is_refused_on_every_route(server: str) -> None:
    for path in ("/v1/indexes", "/healthz", "/"):
        response = httpx.get(f"{server}{path}", headers={"Host": "evil.example"})
        assert response.status_code == 403 and response.json()["code"] == "HOST_NOT_ALLOWED", path
    assert httpx.get(f"{server}/v1/indexes", headers={"Host": "trusted.example:1"}).status_code == 200
    port = server.rsplit(":", 1)[1]
    assert httpx.get(f"{server}/healthz", headers={"Host": f"localhost:{port}"}).status_code == 200


def test_same_origin_and_allowed_origins_are_served(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    own = httpx.post(
        f"{server}/v1/indexes/victim/search",
        json={"queries": ["document"], "k": 1},
        headers={"Origin": f"http://127.0.0.1:{port}"},
    )
    assert own.status_code == 200, own.text
    allowed = httpx.post(
        f"{server}/v1/indexes/victim/search",
        json={"queries": ["document"], "k": 1},
        headers={"Origin": "http://app.example"},
    )
    assert allowed.status_code == 200
    null = httpx.get(f"{server}/v1/indexes", headers={"Origin": "null"})
    assert null.status_code == 403


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_metadata_is_refused_naming_the_field(server: str, literal: str) -> None:
    document = '{"id": "bad", "text": "x", "metadata": {"score": LITERAL}}'.replace("LITERAL", literal)
    body = '{"documents": [' + document + "]}"
    response = httpx.post(
        f"{server}/v1/indexes/victim/documents", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text
    assert "documents[0].metadata.score" in response.json()["detail"]
    filtered = httpx.post(
        f"{server}/v1/indexes/victim/search",
        json={"queries": ["document"], "k": 3, "filter": {"n": {"$gte": 1}}},
    )
    assert filtered.status_code == 200 and {h["id"] for h in filtered.json()["results"][0]} == {"g1", "g2"}
