"""Structured request logs, and graceful shutdown: a stop signal lets in-flight requests finish."""

from __future__ import annotations

import json
import logging
import threading
import time

import httpx
from live import free_port

from polycolbert.server.app import create_app
from polycolbert.server.batching import Batcher
from polycolbert.server.registry import Registry


def test_each_request_logs_one_json_line_with_its_id(client, caplog):
    with caplog.at_level(logging.INFO, logger="polycolbert.server"):
        response = client.post("/v1/multi-vector", json={"model": "nope", "input": "x"})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "polycolbert.server"]
    [line] = [x for x in lines if x["path"] == "/v1/multi-vector"]
    assert line["request_id"] == response.headers["X-Request-ID"] == response.json()["request_id"]
    assert line["status"] == 400 and line["method"] == "POST" and line["ms"] >= 0


def test_shutdown_drains_in_flight_requests(registry):
    import uvicorn

    model = registry.get("polycolbert-e5-small").model
    started = threading.Event()

    class SlowModel:  # the real model, one second slower, so the stop arrives mid-request
        name = model.name

        def encode_tokenized(self, *args, **kwargs):
            started.set()
            time.sleep(1.0)
            return model.encode_tokenized(*args, **kwargs)

    batcher = Batcher(SlowModel(), max_queue=4)  # type: ignore[arg-type]
    served = Registry()
    served.add("polycolbert-e5-small", model, batcher)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(served, keys=[]), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    result: dict[str, httpx.Response] = {}

    def call() -> None:
        payload = {"model": "polycolbert-e5-small", "input": ["drain me"], "input_type": "query"}
        result["r"] = httpx.post(f"http://127.0.0.1:{port}/v1/multi-vector", json=payload, timeout=30)

    caller = threading.Thread(target=call)
    caller.start()
    assert started.wait(20)
    server.should_exit = True  # what SIGINT/SIGTERM do
    caller.join(30)
    thread.join(30)
    assert not thread.is_alive()
    assert result["r"].status_code == 200
    assert len(result["r"].json()["data"][0]["embeddings"]) == 32
    assert not batcher._thread.is_alive()  # the lifespan closed the batcher after draining it
