"""Routes against the real default model: shapes, scores checked independently, release-note requests."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from polycolbert.fusion import fuse_bm25
from polycolbert.rerank import bm25_over
from polycolbert.scoring import maxsim

# The release note's curl body, byte for byte (its "# ..." remarks included).
RELEASE_NOTE_DOCUMENT = """{
"model": "jina-colbert-v2",
"dimensions": 128, # 또는 64로 벡터 크기 절반으로 설정
"input_type": "document", # 쿼리 임베딩은 아래 참조
"embedding_type": "float",
"input": [
"Your document text string goes here",
"You can send multiple texts",
"Each text can be up to 8192 tokens long"
]}""".encode()

RELEASE_NOTE_QUERY = RELEASE_NOTE_DOCUMENT.replace(b'"input_type": "document"', b'"input_type": "query"')

BERLIN = [
    "Berlin's population grew by 0.7 percent in 2023 compared with the previous year. Accordingly, around "
    "27,300 more residents lived in Berlin at the end of the last year than in 2022. Those of 30 to under 40 "
    "years old form the numerically largest age group. With roughly 881,000 foreign residents from around "
    "170 nations and an average age of the population of 42.5 years old.",
    "Mount Berlin is a glacier-covered volcano in Marie Byrd Land, Antarctica, 100 kilometres (62 mi) "
    "from the Amundsen Sea.",
    "Population as of 31.12.2023 by nationality and federal states Land\tTotal\tGermans\tForeigners\t"
    "including EU-states number\t%\tnumber\t%",
    "The urban area of Berlin has a population of over 4.5 million and is therefore the most populous urban "
    "area in Germany.",
    "Irving Berlin (born Israel Beilin) was an American composer and songwriter.",
    "Berlin is a town in the Capitol Planning Region, Connecticut, United States. The population was 20,175 "
    "at the 2020 census.",
    "Berlin is the capital and largest city of Germany, both by area and by population. Its more than 3.85 "
    "million inhabitants make it the European Union's most populous city.",
    "Berlin, Berlin ist eine f\u00fcr die ARD produzierte Fernsehserie, die von 2002 bis 2005 im "
    "Vorabendprogramm des Ersten ausgestrahlt wurde.",
]


def post(client, path, body):
    return client.post(path, content=body, headers={"Content-Type": "application/json"})


def test_release_note_document_request_works_unchanged(client, registry):
    response = post(client, "/v1/multi-vector", RELEASE_NOTE_DOCUMENT)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and [d["index"] for d in body["data"]] == [0, 1, 2]
    model = registry.get("jina-colbert-v2").model
    expected = model.encode_documents(["You can send multiple texts"], dimensions=128)[0]
    got = np.array(body["data"][1]["embeddings"], np.float32)
    assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-5
    assert body["usage"]["total_tokens"] == sum(
        model.count_tokens(
            [
                "Your document text string goes here",
                "You can send multiple texts",
                "Each text can be up to 8192 tokens long",
            ],
            "document",
        )
    )


def test_release_note_query_request_gives_32_vectors(client):
    body = post(client, "/v1/multi-vector", RELEASE_NOTE_QUERY).json()
    assert all(np.array(d["embeddings"]).shape == (32, 128) for d in body["data"])
    assert body["usage"]["total_tokens"] == 3 * 32


def test_rerank_release_note_request(client, registry):
    payload = {
        "model": "jina-colbert-v2",
        "query": "What is the population of Berlin?",
        "top_n": 3,
        "documents": BERLIN,
    }
    response = client.post("/v1/rerank", json=payload)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 3
    scores = [r["relevance_score"] for r in results]
    assert scores == sorted(scores, reverse=True)
    model = registry.get("jina-colbert-v2").model
    query = model.encode_queries([payload["query"]])[0]
    docs = model.encode_documents(BERLIN)
    independent = [maxsim(query, d) for d in docs]
    for result in results:
        assert result["relevance_score"] == pytest.approx(independent[result["index"]], abs=1e-3)
        assert result["document"] == {"text": BERLIN[result["index"]]}
    assert results[0]["index"] == int(np.argmax(independent))


def test_rerank_matches_point_into_the_document(client):
    payload = {
        "model": "polycolbert-e5-small",
        "query": "population of Berlin",
        "documents": BERLIN[:2],
        "return_documents": False,
        "return_matches": True,
        "top_n": 1,
    }
    [result] = client.post("/v1/rerank", json=payload).json()["results"]
    assert "document" not in result and len(result["matches"]) == 32
    text = BERLIN[result["index"]]
    total = 0.0
    for match in result["matches"]:
        start, end = match["document_start"], match["document_end"]
        if end > start:
            assert text[start:end].strip() == match["document_token"]
        total += match["score"]
    assert total == pytest.approx(result["relevance_score"], abs=1e-3)


@pytest.mark.parametrize("path", ["/v1/multi-vector", "/v1/multi-embeddings", "/v1/embeddings"])
def test_all_embedding_routes_and_types(client, path):
    payload = {
        "model": "polycolbert-e5-small",
        "input": [{"text": "hello world"}],
        "input_type": "query",
        "dimensions": 64,
        "embedding_type": ["float", "base64", "binary", "ubinary"],
    }
    response = client.post(path, json=payload)
    assert response.status_code == 200, response.text
    value = response.json()["data"][0]["embeddings"]
    floats = np.array(value["float"], np.float32)
    assert floats.shape == (32, 64)
    decoded = np.stack([np.frombuffer(base64.b64decode(s), "<f4") for s in value["base64"]])
    assert np.array_equal(decoded, floats)
    bits = np.unpackbits((np.array(value["binary"]) + 128).astype("uint8"), axis=-1)
    assert np.array_equal(bits.astype(bool), floats > 0)
    assert np.array_equal(
        np.unpackbits(np.array(value["ubinary"], np.uint8), axis=-1).astype(bool), floats > 0
    )


def test_models_health_metrics(client):
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert models["polycolbert-e5-small"]["info"]["dimensions"] == [128, 96, 64]
    assert models["jina-colbert-v2"]["alias_of"] == "polycolbert-e5-small"
    assert client.get("/healthz").json()["status"] == "ok"
    client.post("/v1/multi-vector", json={"model": "polycolbert-e5-small", "input": "x"})
    metrics = client.get("/metrics").text
    assert 'polycolbert_requests_total{route="/v1/multi-vector",status="200"}' in metrics
    assert "polycolbert_tokens_total" in metrics


# -- blank texts, aliases, single-vector /v1/embeddings, response size ------------------------------
BLANKS = ["", "   ", '"', "?!…"]


def test_rerank_ranks_blank_documents_last_keeping_their_index(client):
    documents = [BLANKS[0], BERLIN[6], BLANKS[1], BERLIN[1], BLANKS[2], BLANKS[3]]
    payload = {"model": "jina-colbert-v2", "query": "Hauptstadt Deutschlands", "documents": documents}
    response = client.post("/v1/rerank", json={**payload, "return_matches": True})
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == [1, 3, 0, 2, 4, 5]  # blanks last, in input order
    assert [r["relevance_score"] for r in results[2:]] == [-32.0] * 4  # the lowest MaxSim can give
    assert all(r["matches"] == [] for r in results[2:]) and results[0]["matches"]
    assert [r["document"]["text"] for r in results[2:]] == [documents[i] for i in (0, 2, 4, 5)]


def test_blank_inputs_encode_to_their_special_rows(client):
    payload = {"model": "polycolbert-e5-small", "input": [*BLANKS, "hello"]}
    response = client.post("/v1/multi-vector", json=payload)
    assert response.status_code == 200, response.text
    shapes = [np.array(d["embeddings"]).shape for d in response.json()["data"]]
    assert shapes[:4] == [(3, 128)] * 4 and shapes[4][0] > 3  # <s>, [D], </s>


@pytest.mark.parametrize("path", ["/v1/multi-vector", "/v1/embeddings", "/v1/rerank"])
def test_responses_name_the_model_as_the_request_did(client, path):
    body = {"model": "jina-colbert-v2", "input": ["hi"]}
    if path == "/v1/rerank":
        body = {"model": "jina-colbert-v2", "query": "hi", "documents": ["hello"]}
    response = client.post(path, json=body)
    assert response.status_code == 200 and response.json()["model"] == "jina-colbert-v2"


@pytest.fixture(scope="module")
def dense(registry):
    return registry.dense["multilingual-e5-small"].model


def test_dense_embeddings_in_openai_shape(client, dense):
    texts = ["Berlin is the capital of Germany.", "Die Hauptstadt von Frankreich ist Paris.", '"']
    response = client.post("/v1/embeddings", json={"model": "multilingual-e5-small", "input": texts})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "list" and body["model"] == "multilingual-e5-small"
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", i) for i in range(3)]
    vectors = np.array([d["embedding"] for d in body["data"]], np.float32)
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    expected = dense.encode(texts, side="query")  # no task, no input_type: e5's symmetric "query: "
    assert np.abs(vectors - expected).max() < 1e-5
    tokens = sum(t.n_tokens for t in dense.tokenize(texts, "query"))
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}


@pytest.mark.parametrize(
    ("extra", "side"),
    [
        ({"task": "retrieval.passage"}, "document"),
        ({"task": "retrieval.query"}, "query"),
        ({"task": "text-matching"}, "query"),
        ({"input_type": "document"}, "document"),
        ({"task": "retrieval.passage", "input_type": "document", "late_chunking": False}, "document"),
    ],
)
def test_dense_prefix_follows_task_then_input_type(client, dense, extra, side):
    payload = {"model": "multilingual-e5-small", "input": "Berlin", **extra}
    [data] = client.post("/v1/embeddings", json=payload).json()["data"]
    assert np.abs(np.array(data["embedding"]) - dense.encode(["Berlin"], side=side)[0]).max() < 1e-5


@pytest.mark.parametrize(
    "fields",
    [{"encoding_format": "base64"}, {"encoding_type": "base64"}, {"embedding_type": "base64", "user": "u1"}],
)
def test_dense_base64_is_one_string_of_little_endian_floats(client, fields):
    payload = {"model": "multilingual-e5-small", "input": ["a", "b"]}
    floats = client.post("/v1/embeddings", json=payload).json()["data"]
    encoded = client.post("/v1/embeddings", json={**payload, **fields}).json()["data"]
    for f, e in zip(floats, encoded, strict=True):
        assert np.array_equal(
            np.frombuffer(base64.b64decode(e["embedding"]), "<f4"), np.float32(f["embedding"])
        )


def test_dense_binary_and_unnormalised(client, dense):
    payload = {"model": "multilingual-e5-small", "input": ["Berlin"], "encoding_type": "ubinary"}
    [data] = client.post("/v1/embeddings", json=payload).json()["data"]
    floats = dense.encode(["Berlin"])[0]
    assert np.array_equal(np.unpackbits(np.array(data["embedding"], np.uint8)).astype(bool), floats > 0)
    payload = {"model": "multilingual-e5-small", "input": ["Berlin"], "normalized": False, "dimensions": 384}
    [data] = client.post("/v1/embeddings", json=payload).json()["data"]
    raw = np.array(data["embedding"], np.float32)
    assert abs(np.linalg.norm(raw) - 1) > 0.01 and np.allclose(raw / np.linalg.norm(raw), floats, atol=1e-5)


@pytest.mark.parametrize(
    ("payload", "status", "words"),
    [
        ({"dimensions": 128}, 400, ["dimensions must be 384"]),
        ({"late_chunking": True}, 400, ["late_chunking"]),
        (
            {"encoding_format": "base64", "embedding_type": "float"},
            400,
            ["encoding_format", "embedding_type"],
        ),
        ({"task": "retrieval.passage", "input_type": "query"}, 400, ["task", "input_type"]),
        ({"task": "summarise"}, 422, ["task"]),
        ({"input": [[101, 2023]]}, 422, ["input"]),
        ({"colour": "red"}, 422, ["colour"]),
        ({"input": ["word " * 600], "truncate": False}, 400, ["input[0]", "truncate"]),
    ],
)
def test_dense_refusals_name_the_field(client, payload, status, words):
    response = client.post(
        "/v1/embeddings", json={"model": "multilingual-e5-small", "input": ["x"], **payload}
    )
    assert response.status_code == status, response.text
    assert all(word in response.json()["detail"] for word in words), response.json()["detail"]


def test_colbert_embeddings_accept_client_fields(client):
    payload = {
        "model": "jina-colbert-v2",
        "input": ["hello world"],
        "encoding_type": "float",
        "task": "retrieval.query",
        "normalized": True,
        "late_chunking": False,
        "truncate": True,
        "user": "someone",
    }
    response = client.post("/v1/embeddings", json=payload)
    assert response.status_code == 200, response.text
    assert np.array(response.json()["data"][0]["embeddings"]).shape == (32, 128)  # a query
    refused = client.post("/v1/embeddings", json={**payload, "normalized": False})
    assert refused.status_code == 400 and "normalized" in refused.json()["detail"]
    long = {"model": "jina-colbert-v2", "input": ["ok", "word " * 9000], "truncate": False}
    refused = client.post("/v1/multi-vector", json=long)
    assert refused.status_code == 400 and "input[1]" in refused.json()["detail"]


def test_single_vector_model_is_listed_and_kept_to_its_route(client):
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    info = models["multilingual-e5-small"]["info"]
    assert info["kind"] == "single-vector" and info["dimensions"] == [384]
    assert info["prefixes"] == {"query": "query: ", "document": "passage: "}
    for path, body in [
        ("/v1/multi-vector", {"input": ["x"]}),
        ("/v1/rerank", {"query": "x", "documents": ["y"]}),
    ]:
        response = client.post(path, json={"model": "multilingual-e5-small", **body})
        assert response.status_code == 400 and "/v1/embeddings" in response.json()["detail"]


def test_response_size_is_bounded_and_the_refusal_says_how_to_ask_for_less(registry):
    from fastapi.testclient import TestClient
    from live import IN_PROCESS

    from polycolbert.server.app import create_app

    app = create_app(registry, keys=[], site=IN_PROCESS, max_response_bytes=800_000)
    client = TestClient(app)
    payload = {"model": "polycolbert-e5-small", "input": ["word " * 60] * 10}  # ~620 rows x 128 floats
    response = client.post("/v1/multi-vector", json=payload)
    assert response.status_code == 400 and response.json()["code"] == "RESPONSE_TOO_LARGE"
    detail = response.json()["detail"]
    assert all(word in detail for word in ("fewer", "dimensions", "base64", "binary"))
    assert client.post("/v1/multi-vector", json={**payload, "embedding_type": "base64"}).status_code == 200
    assert client.post("/v1/multi-vector", json={**payload, "dimensions": 64}).status_code == 400
    assert client.post("/v1/multi-vector", json={**payload, "input": payload["input"][:3]}).status_code == 200


def test_rendering_a_response_never_holds_up_the_event_loop(registry, monkeypatch):
    """A slow body (a huge response) is built in a worker thread: /healthz answers meanwhile."""
    import threading
    import time

    import httpx
    from live import live_server

    from polycolbert.server.app import create_app
    from polycolbert.server.routes import jina

    real = jina.to_json_vectors

    def slow(vectors, kind):
        time.sleep(1.5)
        return real(vectors, kind)

    monkeypatch.setattr(jina, "to_json_vectors", slow)
    with live_server(create_app(registry, keys=[])) as url:
        payload = {"model": "polycolbert-e5-small", "input": ["slow to render"]}
        worker = threading.Thread(
            target=httpx.post, args=(f"{url}/v1/multi-vector",), kwargs={"json": payload}
        )
        worker.start()
        time.sleep(0.5)
        started = time.perf_counter()
        assert httpx.get(f"{url}/healthz").status_code == 200
        waited = time.perf_counter() - started
        worker.join()
    assert waited < 0.5, waited


def test_rerank_bm25_fusion_is_opt_in_and_follows_the_library(client, registry):
    query = "How many foreign residents live in Berlin?"
    payload = {"model": "jina-colbert-v2", "query": query, "documents": BERLIN, "return_documents": False}
    plain = client.post("/v1/rerank", json=payload).json()["results"]
    fused = client.post("/v1/rerank", json=payload | {"fusion": "bm25"}).json()["results"]
    model = registry.get("jina-colbert-v2").model
    query_vectors = model.encode_queries([query])[0]
    maxsim_scores = np.array([maxsim(query_vectors, d) for d in model.encode_documents(BERLIN)])
    lexical, gate_open = bm25_over(query, BERLIN)
    assert gate_open  # English query, English documents
    expected = fuse_bm25(maxsim_scores, lexical, gate_open)
    assert [r["index"] for r in fused] == [int(i) for i in np.argsort(-expected, kind="stable")]
    assert [r["relevance_score"] for r in fused] == pytest.approx(sorted(expected, reverse=True), abs=1e-3)
    by_maxsim = sorted(maxsim_scores, reverse=True)
    assert [r["relevance_score"] for r in plain] == pytest.approx(by_maxsim, abs=1e-3)
    wrong = client.post("/v1/rerank", json=payload | {"fusion": "dense"})
    assert wrong.status_code == 422 and "fusion" in wrong.text
