"""Bad input: always a 4xx in Jina's error shape with a message that says what to fix, never a 500."""

from __future__ import annotations

import time

import pytest
from live import IN_PROCESS

from polycolbert.server.app import create_app
from polycolbert.server.body import MAX_BODY_BYTES
from polycolbert.server.schemas import MAX_INPUTS

OK = {"model": "polycolbert-e5-small", "input": ["hello"]}


def check_error(response, status, code=None, words=()):
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) >= {"detail", "code", "request_id"} and body["request_id"]
    assert isinstance(body["detail"], str) and body["detail"]
    if code:
        assert body["code"] == code
    for word in words:
        assert word in body["detail"]


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({**OK, "colour": "red"}, 422, ["colour"]),
        ({**OK, "input": []}, 422, ["input"]),
        ({**OK, "input": ["x"] * (MAX_INPUTS + 1)}, 422, ["input"]),
        ({**OK, "input": [3]}, 422, ["input"]),
        ({**OK, "input_type": "passage"}, 422, ["input_type"]),
        ({**OK, "embedding_type": "float64"}, 422, ["embedding_type"]),
        ({**OK, "dimensions": "128"}, 422, ["dimensions"]),
        ({"input": ["x"]}, 422, ["model"]),
        ({**OK, "dimensions": 100}, 400, ["128, 96, 64"]),
        ({**OK, "model": "nope"}, 400, ["Model 'nope' not found", "polycolbert-e5-small"]),
    ],
)
def test_multi_vector_bad_input(client, payload, status, words):
    check_error(client.post("/v1/multi-vector", json=payload), status, words=words)


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"model": "polycolbert-e5-small", "query": "q", "documents": []}, 422, "documents"),
        ({"model": "polycolbert-e5-small", "query": "q", "documents": ["d"], "top_n": 0}, 422, "top_n"),
        ({"model": "polycolbert-e5-small", "query": "", "documents": ["d"]}, 400, "query"),
        ({"model": "polycolbert-e5-small", "query": "  ", "documents": ["d"]}, 400, "query"),
        ({"model": "polycolbert-e5-small", "query": '"', "documents": ["d"]}, 400, "query"),
        ({"model": "polycolbert-e5-small", "query": 5, "documents": ["d"]}, 422, "query"),
    ],
)
def test_rerank_bad_input(client, payload, status, field):
    response = client.post("/v1/rerank", json=payload)
    check_error(response, status, words=[field])


def test_body_problems(client):
    headers = {"Content-Type": "application/json"}
    check_error(
        client.post("/v1/multi-vector", content=b'{"model": "x", "input": ["\xff\xfe"]}', headers=headers),
        400,
        "INVALID_UTF8",
    )
    check_error(client.post("/v1/multi-vector", content=b'{"model": ', headers=headers), 400, "INVALID_JSON")
    check_error(client.post("/v1/multi-vector", content=b"", headers=headers), 400, "INVALID_JSON")
    check_error(client.post("/v1/multi-vector", content=b"[1, 2]", headers=headers), 422)
    big = b'{"model": "polycolbert-e5-small", "input": ["' + b"a" * MAX_BODY_BYTES + b'"]}'
    check_error(client.post("/v1/multi-vector", content=big, headers=headers), 413, "PAYLOAD_TOO_LARGE")
    check_error(client.get("/v1/nowhere"), 404)


def test_auth(registry, monkeypatch):
    from fastapi.testclient import TestClient

    app = create_app(registry, keys=["k1", "secret-two"], site=IN_PROCESS)
    client = TestClient(app)
    check_error(client.post("/v1/multi-vector", json=OK), 401, "AUTH_MISSING_API_KEY")
    check_error(
        client.post("/v1/multi-vector", json=OK, headers={"Authorization": "Bearer wrong"}),
        401,
        "AUTH_INVALID_API_KEY",
    )
    check_error(
        client.post("/v1/multi-vector", json=OK, headers={"Authorization": "Basic k1"}),
        401,
        "AUTH_INVALID_FORMAT",
    )
    ok = client.post("/v1/multi-vector", json=OK, headers={"Authorization": "Bearer secret-two"})
    assert ok.status_code == 200
    assert client.get("/healthz").status_code == 200  # probes need no key


def test_full_queue_answers_429_with_retry_after(registry, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from fastapi.testclient import TestClient

    from polycolbert.server.batching import Batcher
    from polycolbert.server.registry import Registry

    served = registry.get("polycolbert-e5-small")
    slow = Batcher(served.model, max_queue=1, enabled=False)
    original = served.model.encode_tokenized

    def slowly(*args, **kwargs):
        time.sleep(0.5)
        return original(*args, **kwargs)

    monkeypatch.setattr(slow, "model", type("Slow", (), {"encode_tokenized": staticmethod(slowly)})())
    small = Registry()
    small.add("polycolbert-e5-small", served.model, slow)
    client = TestClient(create_app(small, keys=[], site=IN_PROCESS))
    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(lambda _: client.post("/v1/multi-vector", json=OK), range(6)))
    statuses = sorted(r.status_code for r in responses)
    assert 200 in statuses and 429 in statuses and all(s in (200, 429) for s in statuses)
    refused = next(r for r in responses if r.status_code == 429)
    assert refused.headers["Retry-After"] == "1"
    check_error(refused, 429, "RATE_CONCURRENCY_LIMIT_EXCEEDED")
    slow.close()


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (b"[" * 100_000, "INVALID_JSON", ["too deeply"]),
        (
            b'{"model": "polycolbert-e5-small", "input": "x", "dimensions": ' + b"1" * 5000 + b"}",
            "INVALID_JSON",
            [],
        ),
        (b'{"model": "polycolbert-e5-small", "input": ["\\ud800 hi"]}', "INVALID_UTF8", ["\\ud800"]),
        (b'{"model": "polycolbert-e5-small", "input": {"text": "a\\udfffb"}}', "INVALID_UTF8", ["surrogate"]),
    ],
)
def test_bodies_python_cannot_take_are_400_not_500(client, raw, code, words):
    headers = {"Content-Type": "application/json"}
    check_error(client.post("/v1/multi-vector", content=raw, headers=headers), 400, code, words)


def test_surrogate_pairs_are_valid_text(client):
    raw = b'{"model": "polycolbert-e5-small", "input": ["smile \\ud83d\\ude00"]}'
    response = client.post("/v1/multi-vector", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    rerank = b'{"model": "polycolbert-e5-small", "query": "\\ud800", "documents": ["d"]}'
    check_error(client.post("/v1/rerank", content=rerank, headers={"Content-Type": "application/json"}), 400)


def test_declared_oversize_body_refused_before_reading(client):
    headers = {"Content-Type": "application/json", "Content-Length": str(MAX_BODY_BYTES + 1)}

    def body():  # a streamed body that would be far larger; only its declared length is looked at
        yield b'{"model": "polycolbert-e5-small", "input": ["'

    response = client.post("/v1/multi-vector", content=body(), headers=headers)
    check_error(response, 413, "PAYLOAD_TOO_LARGE", [str(MAX_BODY_BYTES)])


def test_request_token_cap(registry):
    from fastapi.testclient import TestClient

    client = TestClient(create_app(registry, keys=[], max_request_tokens=100, site=IN_PROCESS))
    ok = client.post("/v1/multi-vector", json={**OK, "input": ["short"] * 2, "input_type": "query"})
    assert ok.status_code == 200  # 2 queries x 32 tokens = 64
    refused = client.post("/v1/multi-vector", json={**OK, "input": ["short"] * 4, "input_type": "query"})
    check_error(refused, 400, "INPUT_TOO_LARGE", ["128 tokens", "at most 100"])


def test_request_ids_echoed_only_when_plain(client):
    mine = client.get("/healthz", headers={"X-Request-ID": "trace-42.a_b"})
    assert mine.headers["X-Request-ID"] == "trace-42.a_b"
    odd = client.get("/healthz", headers={"X-Request-ID": 'x"} injected {"y'})
    assert odd.headers["X-Request-ID"] != 'x"} injected {"y' and len(odd.headers["X-Request-ID"]) == 32
