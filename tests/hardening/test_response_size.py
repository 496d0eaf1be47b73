"""The reported 0.7 MB request that made a 675 MB response (31 documents of 8,192 tokens as float JSON,
158 s, server RSS 1.3 -> 4.0 GB) is now refused before any encoding, with a way to ask for less."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).parents[1] / "server"))

from live import IN_PROCESS

from polycolbert.server.app import create_app, load_registry


def test_a_675_mb_response_is_refused_at_once_with_the_default_limit() -> None:
    registry = load_registry([], dtype="float32")
    try:
        client = TestClient(create_app(registry, keys=[], site=IN_PROCESS))
        words = " ".join(f"word{i % 997}" for i in range(3000))  # ~8k tokens of the default model
        payload = {"model": "polycolbert-e5-small", "input": [words] * 31, "input_type": "document"}
        started = time.perf_counter()
        response = client.post("/v1/multi-vector", json=payload)
        elapsed = time.perf_counter() - started
        assert response.status_code == 400, response.text[:300]
        assert response.json()["code"] == "RESPONSE_TOO_LARGE"
        assert "base64" in response.json()["detail"] and "dimensions" in response.json()["detail"]
        assert elapsed < 60  # refused after tokenising, before encoding (encoding took 158 s)
    finally:
        registry.close()
