"""The service's Prometheus metrics that are not HTTP's: latency histograms observed where
things happen, and the catalogue that turns each part's ``statistics()`` into properly named
metrics at scrape time.

Naming (https://prometheus.io/docs/practices/naming/): ``tradercoin_<subsystem>_<what>``,
values in labels and never in names, counters end in ``_total``, units in the name
(``_seconds``, ``_bytes``), latencies as histograms, gauges only for current states.

Histograms are process-wide (one per process, shared by every service in it) so that code deep
in the pipeline can observe with one call and no wiring: :func:`observe_detection`,
:func:`observe_delivery`, :func:`observe_poll_cycle`, :func:`observe_batch_commit`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = [
    "CATALOGUE",
    "HISTOGRAMS",
    "StatisticsCollector",
    "observe_batch_commit",
    "observe_delivery",
    "observe_detection",
    "observe_poll_cycle",
    "uncatalogued",
]

# no *_created gauges beside every counter and histogram
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

DETECTION = Histogram(
    "tradercoin_fill_detection_seconds",
    "Time from a fill at the exchange (its event time) to the order update reaching a "
    "user's session.",
    buckets=_LATENCY,
    registry=None,
)
DELIVERY = Histogram(
    "tradercoin_event_delivery_seconds",
    "Time from an order change being submitted to the store to its message being handed to "
    "a session (the group commit included).",
    buckets=_LATENCY,
    registry=None,
)
POLL_CYCLE = Histogram(
    "tradercoin_poll_cycle_duration_seconds",
    "Duration of one poll of one user's pending orders at the exchange (all its requests).",
    buckets=_LATENCY,
    registry=None,
)
BATCH_COMMIT = Histogram(
    "tradercoin_store_batch_commit_duration_seconds",
    "Duration of one write-batch transaction of the store, from start to COMMIT.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
    registry=None,
)
HISTOGRAMS = (DETECTION, DELIVERY, POLL_CYCLE, BATCH_COMMIT)


def observe_detection(seconds: float) -> None:
    """A fill reached a session ``seconds`` after the exchange's event time."""
    DETECTION.observe(max(0.0, seconds))


def observe_delivery(seconds: float) -> None:
    """An event reached a session ``seconds`` after it was committed."""
    DELIVERY.observe(max(0.0, seconds))


def observe_poll_cycle(seconds: float) -> None:
    """One poll cycle of one actor took ``seconds``."""
    POLL_CYCLE.observe(seconds)


def observe_batch_commit(seconds: float) -> None:
    """One store write batch took ``seconds`` to commit."""
    BATCH_COMMIT.observe(seconds)


# --- statistics() -> metrics -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Spec:
    """One metric read from a part's statistics: ``field`` (a name, or a mapping's name when
    ``label`` is set: one sample per key), its type, help, and a scale (e.g. ms -> s)."""

    part: str
    field: str
    name: str
    kind: str  # "counter" or "gauge"
    help: str
    label: str | None = None
    scale: float = 1.0
    keys: Mapping[str, str] | None = None  # fields gathered under one label: field -> value


def _c(part: str, field: str, name: str, help: str, **kw: Any) -> Spec:
    return Spec(part, field, name, "counter", help, **kw)


def _g(part: str, field: str, name: str, help: str, **kw: Any) -> Spec:
    return Spec(part, field, name, "gauge", help, **kw)


P = "tradercoin_"
CATALOGUE: tuple[Spec, ...] = (
    # actors and sessions (the supervisor's view)
    _g("actors", "state", P + "actors", "User actors by state.", label="state"),
    _g("actors", "poll_lag_max_seconds", P + "actor_poll_lag_max_seconds",
       "Longest time any actor is now past its poll deadline."),
    _c("actors", "notifications", P + "session_notifications_total",
       "Order notifications the running actors handed to sessions (delivered) or dropped "
       "(the session lagged, gone) since they started.", label="outcome"),
    _g("supervisor", "sessions", P + "actor_sessions", "Sessions attached to user actors."),
    _c("supervisor", "restarts", P + "actor_restarts_total",
       "Actor restarts after a crash (the supervisor's backoff)."),
    _g("supervisor", "pending_orders", P + "pending_orders",
       "Orders the actors are watching (not yet final)."),
    # the rate governor and the exchange client
    _g("governor", "budget_per_minute", P + "governor_budget_weight_per_minute",
       "Request weight per minute the exchange allows this IP (configured)."),
    _g("governor", "limit_per_minute", P + "governor_limit_weight_per_minute",
       "Request weight per minute the governor lets the actors spend (budget less margin)."),
    _g("governor", "used_weight", P + "governor_used_weight",
       "Request weight spent in the last minute, as the governor counts it."),
    _g("governor", "reported_weight", P + "exchange_reported_used_weight",
       "Request weight used in the current minute, as the exchange last reported it."),
    _g("governor", "demand_per_minute", P + "governor_demand_weight_per_minute",
       "Request weight per minute the actors would spend at their nominal intervals."),
    _g("governor", "", P + "governor_stretch_ratio",
       "Factor by which poll intervals are stretched to fit the budget (1 = none).",
       label="class", keys={"stretch_fast": "fast", "stretch_normal": "normal"}),
    _g("governor", "banned_until", P + "exchange_banned_until_timestamp_seconds",
       "End of the exchange's IP ban (418) in Unix time; 0 when not banned.", scale=0.001),
    _g("governor", "paused_until", P + "exchange_paused_until_timestamp_seconds",
       "End of the pause after a 429 (Retry-After) in Unix time; 0 when not paused.",
       scale=0.001),
    _c("governor", "weight_spent", P + "governor_weight_spent_total",
       "Request weight spent at the exchange."),
    _c("governor", "waits", P + "governor_waits_total",
       "Times a request waited for the weight budget."),
    _c("exchange", "requests", P + "exchange_requests_total", "REST requests to the exchange."),
    _g("exchange", "in_flight", P + "exchange_requests_in_flight",
       "REST requests to the exchange now in flight."),
    _g("exchange", "queued", P + "exchange_requests_queued",
       "REST requests waiting for an in-flight slot."),
    _c("exchange", "errors", P + "exchange_errors_total",
       "Exchange answers that were errors, by error class.", label="kind"),
    _g("exchange", "time_offset_ms", P + "exchange_time_offset_seconds",
       "Exchange clock minus ours, as last measured.", scale=0.001),
    _c("exchange", "time_syncs", P + "exchange_time_syncs_total",
       "Server-time measurements (at start and after -1021)."),
    _c("exchange", "resync_retries", P + "exchange_resync_retries_total",
       "Requests resent once after a -1021 timestamp error."),
    # the store's write batcher
    _c("store", "batches", P + "store_batches_total", "Write batches the store committed."),
    _c("store", "changes_committed", P + "store_changes_committed_total",
       "Order changes the store committed."),
    _c("store", "", P + "store_jobs_total",
       "Store write jobs, by outcome (committed, failed).", label="outcome",
       keys={"jobs_committed": "committed", "jobs_failed": "failed"}),
    _g("store", "jobs_waiting", P + "store_jobs_waiting", "Write jobs waiting for a batch."),
    _c("store", "retries", P + "store_retries_total",
       "Database operations retried (lock, lost connection)."),
    _c("store", "fallbacks", P + "store_batch_fallbacks_total",
       "Batches that failed and were retried one job at a time."),
    # WebSocket sessions and the orders page cache (HTTP context)
    _g("ws", "users", P + "ws_users", "Users with at least one open /ws session."),
    _c("ws", "opened", P + "ws_sessions_opened_total", "/ws sessions opened since start."),
    _g("orders_cache", "users", P + "orders_cache_users", "Users whose first page is cached."),
    _c("orders_cache", "", P + "orders_cache_requests_total",
       "GET /api/orders first pages by cache result.", label="result",
       keys={"hits": "hit", "misses": "miss"}),
    _c("orders_cache", "invalidations", P + "orders_cache_invalidations_total",
       "Cached pages dropped because an order changed."),
    # the built-in simulator (sim mode only)
    _c("simulator", "requests_by_path", P + "simulator_requests_total",
       "Requests the built-in simulator served, by path.", label="path"),
    _g("simulator", "weight_used", P + "simulator_used_weight",
       "Weight the simulator counts in its current minute."),
    _g("simulator", "weight_peak_minute", P + "simulator_peak_minute_weight",
       "The most weight one IP used in one minute since the simulator started."),
    _g("simulator", "accounts", P + "simulator_accounts", "Accounts the built-in simulator knows."),
    _c("simulator", "orders_created", P + "simulator_orders_created_total",
       "Orders the simulator accepted."),
    _c("simulator", "fills", P + "simulator_fills_total", "Fills the built-in simulator made."),
    _g("simulator", "stream_connections", P + "simulator_stream_connections",
       "Open user-stream connections to the simulator."),
    _c("simulator", "stream_events_sent", P + "simulator_stream_events_sent_total",
       "User-stream events the simulator sent."),
    _g("simulator", "live_listen_keys", P + "simulator_listen_keys",
       "listenKeys alive at the simulator."),
    _c("simulator", "faults_hit", P + "simulator_faults_hit_total",
       "Injected faults that fired."),
    _g("simulator", "pending_timers", P + "simulator_pending_timers",
       "Scheduled simulator actions (fills, expiries)."),
    # the stream hub: users' listenKeys on a few shared exchange connections
    _g("streams", "connections", P + "stream_connections",
       "User-stream connections the hub holds open to the exchange."),
    _g("streams", "keys", P + "stream_keys", "listenKeys the stream hub carries."),
    _g("streams", "keys_down", P + "stream_keys_down",
       "listenKeys joined but not confirmed on an open connection (their users poll)."),
    _g("streams", "attempts_in_window", P + "stream_handshakes_in_window",
       "Handshakes to the exchange in the last 5 minutes (Binance allows 300 per IP)."),
    _c("streams", "attempts_total", P + "stream_handshakes_total",
       "Handshakes the stream hub made to the exchange."),
    _c("streams", "refusals", P + "stream_handshake_refusals_total",
       "Handshakes the exchange refused with 429 (too many connection attempts)."),
    _c("streams", "bans", P + "stream_handshake_bans_total",
       "Handshakes the exchange refused with 418 (the IP is banned)."),
    _c("streams", "events_routed", P + "stream_events_routed_total",
       "Order events the hub routed to the actors that own their listenKeys."),
    _c("streams", "events_dropped", P + "stream_events_dropped_total",
       "Order events dropped because the owning actor's channel was full (it reconciles)."),
    _c("streams", "gaps", P + "stream_gaps_total",
       "Times an actor was told events of its key were lost while the stream stayed up."),
    _c("streams", "rotations", P + "stream_rotations_total",
       "Shared connections replaced before the exchange's 24 h limit."),
    _c("streams", "drops", P + "stream_connection_drops_total",
       "Shared connections that ended unplanned."),
    # a cluster: events of users owned elsewhere (the relay), commands to their owners
    _g("relay", "listening", P + "relay_listening",
       "1 while the event relay's LISTEN connection to PostgreSQL is up."),
    _c("relay", "notifications", P + "relay_notifications_total",
       "Commit announcements (user, seq) the relay heard."),
    _c("relay", "reads", P + "relay_reads_total", "Store reads the relay made (many users each)."),
    _c("relay", "users_read", P + "relay_users_read_total",
       "Users whose missing events the relay read from the store."),
    _c("relay", "delivered", P + "relay_deliveries_total",
       "Events the relay pushed to sessions of users owned by other instances."),
    _c("relay", "reconnects", P + "relay_reconnects_total",
       "Times the relay re-opened its LISTEN connection."),
    _c("relay", "caught_up", P + "relay_catch_ups_total",
       "Users caught up from the store after the LISTEN connection came back."),
    _c("relay", "read_failures", P + "relay_read_failures_total",
       "Relay reads that failed (retried a second later)."),
    _g("relay", "due", P + "relay_users_due", "Users waiting for the relay to read them."),
    _g("relay", "registry_users", P + "session_registry_users",
       "Users with an entry in this instance's session registry."),
    _g("relay", "registry_sessions", P + "session_registry_sessions",
       "Sessions (tabs, page caches) attached on this instance, all users."),
    _g("relay", "registry_held", P + "session_registry_held",
       "Users whose sessions an actor of this instance holds."),
    _c("owners", "calls", P + "owner_calls_total",
       "Commands sent to the instance owning the user."),
    _c("owners", "retries", P + "owner_call_retries_total",
       "Command tries repeated (a timeout, no connection, or an owner that moved)."),
    _c("owners", "unanswered", P + "owner_calls_unanswered_total",
       "Commands no owner answered in time (answered 503)."),
    _g("streams", "suspect_keys", P + "stream_suspect_keys",
       "listenKeys found deaf by a poll (a change never delivered), replacement not up yet."),
    _c("streams", "suspect_keys_total", P + "stream_suspect_keys_total",
       "listenKeys found deaf by a poll and replaced (zombie keys)."),
    _g("streams", "coverage_seconds", P + "stream_coverage_seconds",
       "Seconds from the hub's start until every user with keys was on a healthy stream."),
    # scale-out: this instance's ownership of users (tradercoin.cluster.ownership)
    _g("cluster", "owned_users", P + "cluster_owned_users",
       "Users whose actors this instance owns now."),
    _g("cluster", "instances_healthy", P + "cluster_instances_healthy",
       "Instances sharing the database that renewed their heartbeat within the lease."),
    _c("cluster", "claims", P + "cluster_claims_total",
       "Users this instance claimed (free users, its share of a joining or dead instance's)."),
    _c("cluster", "handovers", P + "cluster_handovers_total",
       "Users this instance handed over to others (above its fair share, actor stopped first)."),
    _c("cluster", "lease_losses", P + "cluster_lease_losses_total",
       "Times this instance lost its database lease and every user with it."),
    _c("cluster", "fenced_writes", P + "cluster_fenced_writes_total",
       "Order writes the store refused because this instance did not own the user."),
)  # fmt: skip


# Statistics fields deliberately not exported, with the reason.
NOT_EXPORTED = {
    ("governor", "effective_intervals"): "one value per user: the stretch ratio says it",
    ("supervisor", "actors"): "tradercoin_actors{state} sums to it",
    ("supervisor", "running"): "tradercoin_actors{state}",
    ("supervisor", "parked"): "tradercoin_actors{state}",
    ("supervisor", "backoff"): "tradercoin_actors{state}",
    ("store", "mean_batch_size"): "changes_committed_total / batches_total",
    ("store", "max_batch_size"): "a high-water mark since start; the commit histogram instead",
    ("ws", "open"): "tradercoin_ws_sessions, kept current by the sessions themselves",
    ("streams", "keys_per_connection"): "one value per connection: /api/admin/streams lists it",
    ("simulator", "connection_rules"): "the simulator's own record: GET /sim/admin/statistics",
}


def uncatalogued(parts: Mapping[str, Callable[[], Any]]) -> list[str]:
    """``part.field`` of every statistics field that is neither in :data:`CATALOGUE` nor in
    :data:`NOT_EXPORTED` (a new field someone added: catalogue it with a proper name)."""
    known = {(spec.part, spec.field) for spec in CATALOGUE}
    known |= {(spec.part, field) for spec in CATALOGUE for field in (spec.keys or {})}
    return [
        f"{part}.{field}"
        for part, read in parts.items()
        for field in _fields(read())
        if (part, field) not in known and (part, field) not in NOT_EXPORTED
    ]


def _fields(value: Any) -> Mapping[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return value if isinstance(value, Mapping) else {}


def _samples(spec: Spec, stats: Mapping[str, Any]) -> Iterator[tuple[list[str], float]]:
    """``(label values, number)`` of one spec; missing or None fields give no sample."""
    if spec.keys is not None:
        for field, label in spec.keys.items():
            if isinstance(stats.get(field), int | float):
                yield [label], float(stats[field]) * spec.scale
        return
    value = stats.get(spec.field)
    if spec.label is not None and isinstance(value, Mapping):
        for key, number in sorted(value.items()):
            if isinstance(number, int | float):
                yield [str(key)], float(number) * spec.scale
    elif isinstance(value, int | float):
        yield [], float(value) * spec.scale
    elif value is None and spec.name.endswith("_timestamp_seconds"):
        yield [], 0.0


class StatisticsCollector(Collector):
    """Reports the catalogued numbers of each named part's ``statistics()`` at scrape time
    (a part not given, e.g. the simulator outside sim mode, reports nothing)."""

    def __init__(self, parts: Mapping[str, Callable[[], Any]]) -> None:
        self.parts = dict(parts)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # families depend on the parts; nothing to check up front

    def collect(self) -> Iterator[Metric]:
        stats = {part: _fields(read()) for part, read in self.parts.items()}
        for spec in CATALOGUE:
            if spec.part not in stats:
                continue
            labels = [spec.label] if spec.label else []
            family_type = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
            name = spec.name.removesuffix("_total") if spec.kind == "counter" else spec.name
            family = family_type(name, spec.help, labels=labels)
            for values, number in _samples(spec, stats[spec.part]):
                family.add_metric(values, number)
            yield family
