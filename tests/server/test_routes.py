"""Routes against the real default model: shapes, scores checked independently, release-note requests."""

from __future__ import annotations

import base64

import numpy as np
import pytest

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
