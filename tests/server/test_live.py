"""Over real HTTP: a third-party Jina client (LangChain's JinaRerank), and a bounded load test."""

from __future__ import annotations

import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from live import live_server

from polycolbert.server.app import create_app
from polycolbert.server.batching import Batcher
from polycolbert.server.registry import Registry

DOCS = [
    "Berlin is the capital and largest city of Germany.",
    "Irving Berlin was an American composer and songwriter.",
    "The urban area of Berlin has a population of over 4.5 million.",
]


def test_langchain_jina_rerank_against_local_server(registry, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from langchain_community.document_compressors import jina_rerank

    app = create_app(registry, keys=["local-key"])
    with live_server(app) as url:
        monkeypatch.setattr(jina_rerank, "JINA_API_URL", f"{url}/v1/rerank")
        reranker = jina_rerank.JinaRerank(jina_api_key="local-key", model="jina-colbert-v2", top_n=2)
        results = reranker.rerank(DOCS, "How many people live in Berlin?")
    assert len(results) == 2
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    assert {r["index"] for r in results} <= {0, 1, 2}
    assert results[0]["index"] in (0, 2)  # a Berlin-the-city document, not the composer


def run_load(url: str, clients: int, requests_per_client: int) -> tuple[float, list[int]]:
    payload = {
        "model": "polycolbert-e5-small",
        "input": [f"query number {i} about cities" for i in range(4)],
        "input_type": "query",
    }

    def worker(_: int) -> list[int]:
        with httpx.Client(timeout=60) as client:
            return [
                client.post(f"{url}/v1/multi-vector", json=payload).status_code
                for _ in range(requests_per_client)
            ]

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        statuses = [s for batch in pool.map(worker, range(clients)) for s in batch]
    return clients * requests_per_client / (time.perf_counter() - started), statuses


@pytest.mark.parametrize("clients", [8])
def test_load_zero_errors_and_batching_merges_requests(registry, clients):
    """Under concurrent load every request succeeds and the batcher merges them (the throughput this buys is
    measured by benchmarks/server.py, not asserted here: a timed assertion fails on a busy machine)."""
    model = registry.get("polycolbert-e5-small").model
    rates = {}
    for batching in (False, True):
        small = Registry()
        batcher = Batcher(model, max_queue=1024, enabled=batching, wait_ms=5)
        small.add("polycolbert-e5-small", model, batcher)
        with live_server(create_app(small, keys=[])) as url:
            run_load(url, 2, 2)  # warm-up
            rate, statuses = run_load(url, clients, 6)
        batcher.close()
        assert statuses == [200] * len(statuses)
        rates[batching] = (rate, batcher.batched_jobs / max(batcher.batches, 1))
    print(
        f"requests/s without batching {rates[False][0]:.1f}, with {rates[True][0]:.1f}; "
        f"jobs per batch {rates[True][1]:.1f}"
    )
    assert rates[True][1] > 1.5  # concurrent requests really were merged
