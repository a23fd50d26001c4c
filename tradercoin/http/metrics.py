"""Prometheus metrics of the HTTP layer, on a registry the app owns (never the global one).

Request and WebSocket counters are updated as things happen; everything else (exchange
traffic, actors, governor, batcher) is read from the parts' ``statistics()`` at scrape time by
:class:`StatisticsCollector`, so the parts need not know Prometheus.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["HttpMetrics", "StatisticsCollector", "flatten_statistics"]

_NAME = re.compile(r"[^a-zA-Z0-9_]")


def flatten_statistics(value: Any, prefix: str = "") -> Iterator[tuple[str, dict[str, str], float]]:
    """Yield ``(name, labels, number)`` for every number in a statistics value.

    Dataclasses and mappings nest with ``_``; a mapping keyed by ints (e.g. per user) becomes
    a ``key`` label; lists of dataclasses are skipped (tables, not metrics).
    """
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    if isinstance(value, int | float):
        yield prefix, {}, float(value)
    elif isinstance(value, Mapping):
        yield from _flatten_mapping(value, prefix)


def _flatten_mapping(
    value: Mapping[Any, Any], prefix: str
) -> Iterator[tuple[str, dict[str, str], float]]:
    for key, item in value.items():
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            if isinstance(item, int | float) and not isinstance(item, bool):
                yield prefix, {"key": str(key)}, float(item)
            continue
        name = f"{prefix}_{_NAME.sub('_', str(key))}" if prefix else _NAME.sub("_", str(key))
        yield from flatten_statistics(item, name)


class StatisticsCollector(Collector):
    """Reports the numbers in each named part's ``statistics()`` as gauges
    ``tradercoin_<part>_<field>`` when Prometheus scrapes."""

    def __init__(self, parts: Mapping[str, Callable[[], Any]]) -> None:
        self._parts = dict(parts)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for part, statistics in self._parts.items():
            families: dict[str, GaugeMetricFamily] = {}
            for name, labels, number in flatten_statistics(statistics(), f"tradercoin_{part}"):
                family = families.get(name)
                if family is None:
                    family = families[name] = GaugeMetricFamily(
                        name, f"{part} statistics: {name}", labels=sorted(labels)
                    )
                family.add_metric([labels[k] for k in sorted(labels)], number)
            yield from families.values()


class HttpMetrics:
    """The app's registry and the HTTP/WebSocket instruments on it."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "tradercoin_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "tradercoin_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.ws_sessions = Gauge("tradercoin_ws_sessions", "open WebSocket sessions", registry=r)
        self.ws_sent = Counter(
            "tradercoin_ws_messages_sent", "messages sent to sessions", ["type"], registry=r
        )
        self.ws_dropped = Counter(
            "tradercoin_ws_sessions_dropped",
            "sessions closed by the server",
            ["reason"],
            registry=r,
        )
        self.logins = Counter("tradercoin_logins", "login attempts", ["outcome"], registry=r)
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
                self.latency.labels(route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
