"""Prometheus metrics of the HTTP layer, on a registry the app owns (never the global one).

Request and WebSocket counters are updated as things happen; everything else (exchange
traffic, actors, governor, batcher) is read from the parts' ``statistics()`` at scrape time by
:class:`tradercoin.metrics.StatisticsCollector`, so the parts need not know Prometheus. The
pipeline's latency histograms (:data:`tradercoin.metrics.HISTOGRAMS`) are registered here too.
Names follow Prometheus' rules: see :mod:`tradercoin.metrics`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tradercoin.metrics import HISTOGRAMS, StatisticsCollector

__all__ = ["HttpMetrics"]


class HttpMetrics:
    """The app's registry and the HTTP/WebSocket instruments on it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tradercoin_http_requests",
            "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "tradercoin_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method.",
            ["route", "method"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
            registry=r,
        )
        self.ws_sessions = Gauge(
            "tradercoin_ws_sessions", "Open /ws sessions (all users).", registry=r
        )
        self.ws_sent = Counter(
            "tradercoin_ws_messages_sent",
            "Messages sent to /ws sessions, by message type.",
            ["type"],
            registry=r,
        )
        self.ws_dropped = Counter(
            "tradercoin_ws_sessions_dropped",
            "/ws sessions the server detached or closed, by reason.",
            ["reason"],
            registry=r,
        )
        self.logins = Counter(
            "tradercoin_logins",
            "Login attempts, by outcome (ok, failed, throttled).",
            ["outcome"],
            registry=r,
        )
        for histogram in HISTOGRAMS:
            r.register(histogram)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def add_parts(self, parts: Mapping[str, Callable[[], Any]]) -> None:
        """Report these parts' statistics at scrape time."""
        self.registry.register(StatisticsCollector(parts))

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one request and its latency (label children are looked up once each)."""
        key = (route, method, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, method, str(status)),
                self.latency.labels(route, method),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
