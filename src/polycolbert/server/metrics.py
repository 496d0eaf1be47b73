"""Prometheus metrics for one app instance (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "polycolbert_requests_total", "HTTP requests", ["route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "polycolbert_request_seconds",
            "Request latency",
            ["route"],
            registry=self.registry,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.tokens = Counter("polycolbert_tokens_total", "Tokens encoded", ["model"], registry=self.registry)
        self.queue_depth = Gauge("polycolbert_queue_depth", "Jobs waiting", ["model"], registry=self.registry)
        self.rejected = Counter(
            "polycolbert_rejected_total", "Requests refused (429)", ["model"], registry=self.registry
        )
