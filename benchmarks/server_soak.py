"""Server memory over a long run: RSS of ``polycolbert serve`` under a steady mix of requests.

Starts the server as a separate process, drives it from several clients with a mix of what clients send
(rerank, multi-vector queries and documents as float and base64, single-vector ``/v1/embeddings`` as
OpenAI and Jina clients ask, a request refused for its response size, malformed bodies, ``/v1/models``)
and samples the server's resident memory and ``/healthz`` latency. What it prints: one line per sample,
then RSS after warm-up, at the end, and the growth over the second half (a leak keeps growing there;
allocator warm-up does not).

    .venv/bin/python benchmarks/server_soak.py [--minutes 10] [--clients 4] [--interval 10]
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil

from server import free_port, start_server, text


def request_mix(rng: random.Random) -> list[tuple[str, dict]]:
    """``(route, body)`` pairs, drawn uniformly: each is what some real client sends."""
    documents = [text(rng, 170) for _ in range(20)]
    long_documents = [text(rng, 2000) for _ in range(40)]  # ~80k rows as float JSON: over 64 MiB
    return [
        ("/v1/rerank", {"model": "jina-colbert-v2", "query": text(rng, 8), "documents": documents}),
        (
            "/v1/rerank",
            {"model": "polycolbert-e5-small", "query": "Berlin", "documents": [*documents[:5], '"', ""]},
        ),
        (
            "/v1/multi-vector",
            {"model": "polycolbert-e5-small", "input_type": "query", "input": [text(rng, 8)] * 16},
        ),
        (
            "/v1/multi-vector",
            {"model": "polycolbert-e5-small", "input": documents[:8], "embedding_type": "base64"},
        ),
        (
            "/v1/embeddings",
            {"model": "multilingual-e5-small", "input": documents[:16], "encoding_format": "base64"},
        ),
        (
            "/v1/embeddings",
            {"model": "multilingual-e5-small", "input": documents[:4], "task": "retrieval.passage"},
        ),
        ("/v1/embeddings", {"model": "jina-colbert-v2", "input": documents[:2], "encoding_type": "float"}),
        ("/v1/multi-vector", {"model": "polycolbert-e5-small", "input": long_documents}),  # refused: size
        ("/v1/embeddings", {"model": "multilingual-e5-small", "input": [], "colour": "red"}),  # 422
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between RSS samples")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    port = free_port()
    server = start_server(port, batching=True)
    base = f"http://127.0.0.1:{port}"
    process = psutil.Process(server.pid)
    mix = request_mix(random.Random(0))
    statuses: Counter[int] = Counter()
    lock = threading.Lock()
    stop = time.monotonic() + args.minutes * 60

    def client(seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(timeout=600) as http:
            while time.monotonic() < stop:
                route, body = rng.choice(mix)
                status = http.post(base + route, json=body).status_code
                if rng.random() < 0.05:
                    http.get(base + "/v1/models")
                with lock:
                    statuses[status] += 1

    try:
        for route, body in mix[:7]:  # warm-up: every route once, so the baseline includes its first use
            httpx.post(base + route, json=body, timeout=600)
        print(f"soak: {args.minutes:g} min, {args.clients} clients, RSS sampled every {args.interval:g} s")
        print(f"{'s':>6}{'RSS MB':>9}{'requests':>10}{'healthz ms':>12}  statuses")
        samples: list[tuple[float, float]] = []
        started = time.monotonic()
        with ThreadPoolExecutor(args.clients) as pool:
            for seed in range(args.clients):
                pool.submit(client, seed)
            while time.monotonic() < stop:
                time.sleep(min(args.interval, max(0.0, stop - time.monotonic())))
                probe = time.perf_counter()
                httpx.get(base + "/healthz", timeout=600)
                healthz_ms = (time.perf_counter() - probe) * 1000
                rss = process.memory_info().rss / 2**20
                elapsed = time.monotonic() - started
                samples.append((elapsed, rss))
                with lock:
                    done, seen = sum(statuses.values()), dict(sorted(statuses.items()))
                print(f"{elapsed:>6.0f}{rss:>9.0f}{done:>10}{healthz_ms:>12.0f}  {seen}", flush=True)
        half = [rss for t, rss in samples if t >= samples[-1][0] / 2] or [samples[-1][1]]
        print(
            f"RSS after warm-up {samples[0][1]:.0f} MB, at the end {samples[-1][1]:.0f} MB "
            f"(+{samples[-1][1] - samples[0][1]:.0f}); "
            f"over the second half {half[0]:.0f} -> {half[-1]:.0f} MB (max {max(half):.0f})"
        )
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
