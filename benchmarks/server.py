"""Throughput and latency of the API server on loopback.

Starts ``polycolbert serve`` as a separate process, then drives ``/v1/rerank`` (1 query x 20 documents of
~200 tokens) and ``/v1/multi-vector`` (32 queries per request) from 1, 4 and 16 concurrent clients.

    .venv/bin/python benchmarks/server.py [--requests 24] [--no-batching]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

WORDS = [
    "river",
    "city",
    "population",
    "museum",
    "history",
    "science",
    "music",
    "language",
    "school",
    "market",
    "railway",
    "bridge",
    "harbour",
    "festival",
    "library",
    "mountain",
    "valley",
    "forest",
    "university",
    "council",
    "century",
    "industry",
    "painting",
    "theatre",
]


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)) + "."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(port: int, batching: bool) -> subprocess.Popen:
    cli = Path(sys.executable).with_name("polycolbert")
    args = [str(cli), "serve", "--port", str(port)] + ([] if batching else ["--no-batching"])
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy()
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.5)
    process.kill()
    raise RuntimeError("server did not start")


def measure(url: str, payload: dict, clients: int, total: int) -> dict[str, float]:
    latencies: list[float] = []

    def worker(n: int) -> list[float]:
        out = []
        with httpx.Client(timeout=300) as client:
            for _ in range(n):
                started = time.perf_counter()
                response = client.post(url, json=payload)
                response.raise_for_status()
                out.append(time.perf_counter() - started)
        return out

    per_client = max(1, total // clients)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for result in pool.map(worker, [per_client] * clients):
            latencies += result
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests_per_s": len(latencies) / wall,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=24, help="requests per (route, concurrency) cell")
    parser.add_argument("--no-batching", action="store_true")
    args = parser.parse_args()
    rng = random.Random(0)
    rerank = {
        "model": "polycolbert-e5-small",
        "query": text(rng, 8),
        "documents": [text(rng, 170) for _ in range(20)],
    }
    vectors = {
        "model": "polycolbert-e5-small",
        "input_type": "query",
        "input": [text(rng, 8) for _ in range(32)],
    }
    # A terminated benchmark still stops its server (the finally below runs on SIGTERM too).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    port = free_port()
    server = start_server(port, batching=not args.no_batching)
    base = f"http://127.0.0.1:{port}"
    try:
        measure(f"{base}/v1/rerank", rerank, 1, 2)  # warm-up
        print(f"batching: {not args.no_batching}; {args.requests} requests per cell")
        print(f"{'route':<18}{'clients':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
        for route, payload in (("/v1/rerank", rerank), ("/v1/multi-vector", vectors)):
            for clients in (1, 4, 16):
                row = measure(base + route, payload, clients, args.requests)
                print(
                    f"{route:<18}{clients:>8}{row['requests_per_s']:>10.2f}{row['p50_ms']:>10.0f}{row['p99_ms']:>10.0f}"
                )
    finally:
        server.terminate()
        server.wait(30)


if __name__ == "__main__":
    main()
