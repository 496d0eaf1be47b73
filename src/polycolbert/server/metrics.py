"""Prometheus metrics for one app instance (its own registry, so several apps can live in one process).

Requests are labelled by the path template of the route that matched (``/v1/indexes/{name}/search``), so
every route has one label whatever its parameters, and a path no route matches is ``other``.
"""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.routing import BaseRoute, Match

UNMATCHED = "other"


def route_label(request: Request, routes: Sequence[BaseRoute]) -> str:
    """The path template of the route that served ``request``; a request refused before routing (auth)
    is matched against ``routes``, the app's routes, to find the one it asked for."""
    route = request.scope.get("route")
    if route is None:
        route = next((r for r in routes if r.matches(request.scope)[0] == Match.FULL), None)
    return getattr(route, "path", UNMATCHED)


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
