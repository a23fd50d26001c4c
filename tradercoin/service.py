"""``open_service(settings)``: the one place every part is built and started, in order.

The root nursery holds, from the bottom up: the store (and its write batcher), the embedded
simulator when ``settings.exchange == "sim"``, the shared exchange client and rate governor,
the supervisor with one actor per user, and Hypercorn serving the Quart-Trio app.

Shutdown (leaving the ``async with``, e.g. on SIGINT/SIGTERM in ``tradercoin serve``) is
graceful and bounded by :data:`SHUTDOWN_TIMEOUT`: new connections are refused, every
WebSocket session is closed with 1001, Hypercorn drains its requests, the supervisor stops the
actors (queued requests fail cleanly), the simulator stops, and the store's batcher commits
what it holds before the database is closed.

In a cluster (``settings.clustered``: PostgreSQL unless ``cluster = off``) the supervisor starts
no actor by itself: :class:`~tradercoin.cluster.ownership.Ownership` claims this instance's
share of the users once HTTP is bound (others can reach it), and on shutdown hands them over
(actors stopped first, then the locks released) before the supervisor stops.
"""

from __future__ import annotations

import functools
import gc
import logging
import secrets
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from quart_trio import QuartTrio

from tradercoin.actors.account import check_keys
from tradercoin.actors.connbudget import ConnectionBudget
from tradercoin.actors.governor import RateGovernor
from tradercoin.actors.hub import StreamHub
from tradercoin.actors.hubstream import run_hub_stream
from tradercoin.actors.prices import PriceFeed
from tradercoin.actors.supervisor import Supervisor
from tradercoin.clock import WallClock, system_clock
from tradercoin.cluster import internal
from tradercoin.cluster.directory import Directory, SingleInstance
from tradercoin.cluster.internal import InternalAuth
from tradercoin.cluster.ownership import Ownership
from tradercoin.cluster.relay import EventRelay, conninfo
from tradercoin.cluster.router import OwnerCalls, Router
from tradercoin.config import Settings
from tradercoin.exchange.client import BinanceFutures, http_client
from tradercoin.exchange.egress import websocket_connector
from tradercoin.exchange.errors import ExchangeError
from tradercoin.exchange.protocol import Credentials, SymbolInfo
from tradercoin.http import closing
from tradercoin.http.app import create_app
from tradercoin.http.context import HttpContext, SupervisorView
from tradercoin.http.security import Passwords, TokenSigner
from tradercoin.http.ws import GOING_AWAY, MAX_MESSAGE_SIZE
from tradercoin.store import SecretBox, Store, open_store

__all__ = [
    "SHUTDOWN_TIMEOUT",
    "Service",
    "build_service",
    "open_service",
    "serve_until_signalled",
    "start_parts",
]

log = logging.getLogger("tradercoin.service")

SHUTDOWN_TIMEOUT = 10.0
START_TIMEOUT = 30.0


@dataclass(eq=False)
class Service:
    """The running service: its parts and where it listens."""

    settings: Settings
    store: Store
    clock: WallClock
    ctx: HttpContext
    app: QuartTrio
    supervisor: Supervisor
    governor: RateGovernor
    exchange: BinanceFutures
    simulator: Any = None
    hub: StreamHub | None = None
    relay: Any = None  # a cluster's EventRelay (tradercoin.cluster.relay)
    url: str = ""
    sim_url: str | None = None
    _stop_http: trio.Event = field(default_factory=trio.Event)
    _http_done: trio.Event = field(default_factory=trio.Event)
    _supervisor_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    _supervisor_done: trio.Event = field(default_factory=trio.Event)
    _ownership_scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    _ownership_done: trio.Event = field(default_factory=trio.Event)
    running: bool = False

    # who owns which user (SingleInstance when not clustered; Ownership when clustered)
    directory: Directory = field(default_factory=SingleInstance)

    @property
    def instance_id(self) -> str:
        return self.directory.instance_id

    async def shutdown(self) -> None:
        """Close sessions (1001), stop HTTP, stop the actors; each step bounded, in order.

        Waits for: each step to finish, at most :data:`SHUTDOWN_TIMEOUT` in all (what is still
        running then is cancelled by the caller leaving the nursery).
        """
        with trio.move_on_after(SHUTDOWN_TIMEOUT - 1.0):
            self.running = False
            with trio.move_on_after(3.0):
                await self.ctx.sessions.close_all(GOING_AWAY)
            self.ctx.orders_cache.forget_all()
            self._stop_http.set()
            with trio.move_on_after(4.0):
                await self._http_done.wait()
            if isinstance(self.directory, Ownership):
                self._ownership_scope.cancel()  # hands every user over
                await self._ownership_done.wait()
            self._supervisor_scope.cancel()
            await self._supervisor_done.wait()
        log.info("service stopped")


def token_key(settings: Settings) -> bytes:
    """Key material for session tokens: the master key (or the dev key file's text)."""
    if settings.master_key:
        return settings.master_key.encode()
    return settings.master_key_file.read_bytes()


def hypercorn_config(settings: Settings) -> HypercornConfig:
    closing.install()  # Hypercorn 0.18 would crash on a busy socket while closing one
    config = HypercornConfig()
    config.bind = [f"{settings.host}:{settings.port}"]
    if settings.metrics_address:
        config.bind.append(settings.metrics_address)  # /metrics only (http/guards.py)
    config.websocket_max_message_size = MAX_MESSAGE_SIZE
    config.graceful_timeout = 3.0
    config.backlog = 2048  # thousands of tabs reconnect at once after a restart (SYN drops)
    config.accesslog = None
    config.errorlog = logging.getLogger("hypercorn.error")
    config.include_server_header = False
    return config


async def start_parts(nursery: trio.Nursery, service: Service) -> None:
    """Start what runs behind the HTTP app, in order: the security state (revoked tokens,
    recent failed logins) loaded from the store, the stream hub, the supervisor (its actors
    up, or backing off), the event retention and the mark-price feed. Returns once they are
    running."""
    await service.ctx.load_security()
    if service.hub is not None:
        await nursery.start(service.hub.run)
    if service.relay is not None:
        with trio.fail_after(START_TIMEOUT):
            await nursery.start(service.relay.run)
    with trio.fail_after(START_TIMEOUT):
        await nursery.start(
            _run_supervisor,
            service.supervisor,
            service._supervisor_scope,
            service._supervisor_done,
        )
    if isinstance(service.directory, Ownership):
        run = functools.partial(service.directory.run, service.supervisor)
        await nursery.start(_run_scoped, run, service._ownership_scope, service._ownership_done)
    keep = service.settings.event_retention
    retention = functools.partial(
        service.store.run_retention, keep=keep, every=min(3600, keep / 10)
    )
    await nursery.start(retention)
    if service.ctx.prices is not None:
        await nursery.start(service.ctx.prices.run)


async def _serve_http(
    app: QuartTrio,
    config: HypercornConfig,
    stop: trio.Event,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Hypercorn until ``stop`` is set; ``started()`` with the bound URLs."""
    try:
        await hypercorn_serve(app, config, shutdown_trigger=stop.wait, task_status=task_status)
    finally:
        done.set()


async def _run_supervisor(
    supervisor: Supervisor,
    scope: trio.CancelScope,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    await _run_scoped(supervisor.run, scope, done, task_status=task_status)


async def _run_scoped(
    run: Callable[..., Any],
    scope: trio.CancelScope,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """``run(task_status=...)`` inside ``scope`` (the shutdown cancels it); ``done`` set
    when it has returned."""
    try:
        with scope:
            await run(task_status=task_status)
    finally:
        done.set()


async def _start_simulator(
    nursery: trio.Nursery, settings: Settings, clock: WallClock
) -> tuple[Any, str, str]:
    """The embedded simulator on its own loopback port: ``(simulator, rest_url, ws_url)``."""
    from tradercoin.exchange.sim import Simulator, serve_simulator

    simulator = Simulator(clock=clock)
    await nursery.start(simulator.run)
    address = await nursery.start(serve_simulator, simulator, settings.sim_host, settings.sim_port)
    log.info("simulator listening on %s", address.rest_url)
    return simulator, address.rest_url, address.ws_url


async def _restore_sim_accounts(simulator: Any, store: Store) -> int:
    """Make the fresh embedded simulator know the keys it gave users in earlier runs.

    Its book starts empty: orders still pending in the store are then unknown to it, and the
    actors settle them as vanished (expired, with a note). Returns how many were restored.
    """
    from tradercoin.exchange.sim.engine import Account
    from tradercoin.store import CredentialsError

    restored = 0
    for user_id in await store.users_with_credentials():
        try:
            creds = await store.get_credentials(user_id)
        except CredentialsError as error:
            log.warning("user %d: %s", user_id, error)
            continue
        if creds is None or creds.api_secret.startswith("-----"):
            continue  # only the simulator's own HMAC keys
        accounts = simulator._accounts  # no public way yet to re-admit a known key pair
        if creds.api_key not in accounts:
            accounts[creds.api_key] = Account(creds.api_key, secret=creds.api_secret.encode())
            restored += 1
    if restored:
        log.info("simulator: restored the accounts of %d users from the store", restored)
    return restored


async def _load_symbols(exchange: BinanceFutures, required: bool) -> dict[str, SymbolInfo]:
    """The exchange's symbols (for validating orders); empty if a real exchange is down."""
    try:
        with trio.fail_after(15):
            infos = await exchange.exchange_info()
    except (ExchangeError, trio.TooSlowError) as error:
        if required:
            raise
        log.warning("exchange info unavailable (%s); orders are validated by the exchange", error)
        return {}
    return {info.symbol: info for info in infos}


def _provisioner(
    simulator: Any, store: Store, supervisor: SupervisorView
) -> Callable[[int], Any] | None:
    """In simulator mode, give each new user simulated keys so they can trade at once."""
    if simulator is None:
        return None

    async def provision(user_id: int) -> None:
        api_key, api_secret = simulator.create_account()
        await store.set_credentials(user_id, Credentials(api_key=api_key, api_secret=api_secret))
        await supervisor.credentials_changed(user_id)

    return provision


@asynccontextmanager
async def open_service(
    settings: Settings,
    *,
    clock: WallClock | None = None,
    passwords: Passwords | None = None,
    configure: Callable[[Service], None] | None = None,
    http: httpx.AsyncClient | None = None,
) -> AsyncIterator[Service]:
    """Build and start everything; yield the running :class:`Service`; shut down gracefully
    on exit (see the module docstring).

    Raises:
        ConfigError, StoreError: bad settings or an unusable database (before anything runs).
        OSError: the HTTP port is taken.
    """
    clock = clock or system_clock()
    secrets = SecretBox.from_settings(settings)
    _warn_about_key_file(settings)
    async with (
        open_store(settings.database_url, secrets=secrets, clock=clock) as store,
        (
            http_client(local_address=settings.egress_address) if http is None else _borrowed(http)
        ) as pool,
        # calls to other instances leave by the ordinary route, not from the exchange's IP
        http_client() if http is None and settings.egress_address else _borrowed(pool) as peers,
        trio.open_nursery() as nursery,
    ):
        parts = (store, pool, peers)
        service = await _start(nursery, settings, clock, parts, passwords, configure)
        try:
            yield service
        finally:
            with trio.CancelScope(shield=True):
                await service.shutdown()
            nursery.cancel_scope.cancel()


def _warn_about_key_file(settings: Settings) -> None:
    from tradercoin.store.files import key_file_beside_database

    if not settings.master_key and key_file_beside_database(
        settings.database_url, settings.master_key_file
    ):
        log.warning(
            "the master key file %s is in the database's directory: a copy of one is a copy "
            "of both; set TRADERCOIN_MASTER_KEY or move the key file elsewhere",
            settings.master_key_file,
        )


@asynccontextmanager
async def _borrowed(http: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    yield http


async def _start(
    nursery: trio.Nursery,
    settings: Settings,
    clock: WallClock,
    parts: tuple[Store, httpx.AsyncClient, httpx.AsyncClient],
    passwords: Passwords | None,
    configure: Callable[[Service], None] | None,
) -> Service:
    """Start the parts in order; returns once HTTP is listening. ``parts``: the store, the
    exchange pool and the pool of calls to other instances."""
    store, pool, peers = parts
    simulator = None
    if settings.uses_simulator:
        simulator, rest_url, ws_url = await _start_simulator(nursery, settings, clock)
        await _restore_sim_accounts(simulator, store)
    else:
        rest_url, ws_url = settings.exchange_urls()
    service = await build_service(
        settings,
        clock,
        store,
        pool,
        simulator,
        rest_url,
        ws_url,
        passwords=passwords,
        internal_http=peers,
    )
    if configure is not None:
        configure(service)  # e.g. a benchmark's extra routes, before serving starts
    await start_parts(nursery, service)
    binds = await nursery.start(
        _serve_http, service.app, hypercorn_config(settings), service._stop_http, service._http_done
    )
    service.url = binds[0]
    if isinstance(service.directory, Ownership) and not service.directory.address:
        service.directory.address = service.url  # claiming starts now that others can reach us
    if settings.metrics_address:
        service.ctx.metrics_port = int(binds[-1].rsplit(":", 1)[1])
        log.info("metrics on %s/metrics", binds[-1])
    service.sim_url = rest_url if simulator is not None else None
    service.running = True
    gc.collect()
    gc.freeze()  # start-up objects leave the collector's scans (PERF.md: GC at scale)
    log.info("Order Monitor Service started (checking every %g seconds)", settings.poll.interval)
    log.info("serving on %s", service.url)
    return service


async def build_service(
    settings: Settings,
    clock: WallClock,
    store: Store,
    pool: httpx.AsyncClient,
    simulator: Any,
    rest_url: str,
    ws_url: str,
    *,
    passwords: Passwords | None = None,
    stream: bool = True,
    supervisor_options: dict[str, Any] | None = None,
    directory: Directory | None = None,
    internal_http: httpx.AsyncClient | None = None,
) -> Service:
    """Construct governor, exchange client, supervisor, HTTP context and app (none runs yet);
    waits only for the exchange's symbol list.

    The one composition of the service: ``tradercoin serve`` and the deterministic harness
    (:mod:`tradercoin.testing`) both build with it; they differ only in the clock, the
    transports (``pool`` and the supervisor's ``connect_ws``) and the database they pass.

    Args:
        stream: give actors the user-data stream at ``ws_url`` (else they only poll).
        supervisor_options: extra keyword arguments for :class:`Supervisor`.
        directory: who owns which user, in a cluster (``settings.clustered``); by default
            :class:`~tradercoin.cluster.ownership.Ownership` (a cluster) or this instance
            alone.
        internal_http: the pool of calls to other instances (default: ``pool``).
    """
    governor = RateGovernor(
        budget_per_minute=settings.weight_budget_per_minute,
        safety_margin=settings.weight_safety_margin,
        clock=clock,
    )
    exchange = BinanceFutures(
        pool, clock=clock, on_usage=governor.on_usage, rest_url=rest_url, ws_url=ws_url
    )
    symbols = await _load_symbols(exchange, required=simulator is not None)
    options = dict(supervisor_options or {})
    # Ownership drives the supervisor (it starts only claimed users' actors); a directory a
    # test injects (StaticDirectory) routes commands only, its actors started by hand
    directory = directory or _directory(settings, store)
    if isinstance(directory, Ownership):
        options.setdefault("directory", directory)
    if options.get("connect_ws") is None:  # leaving from --egress-address when set
        options["connect_ws"] = websocket_connector(settings.egress_address)
    hub = None
    if stream and settings.stream_mode == "hub":
        hub = StreamHub(ws_url, budget=ConnectionBudget(), connect=options["connect_ws"])
        runner = functools.partial(run_hub_stream, hub=hub, governor=governor)
        options.setdefault("stream_runner", runner)
    supervisor = Supervisor(
        store=store,
        exchange=exchange,
        governor=governor,
        clock=clock,
        poll_defaults=settings.poll,
        stream_ws_url=ws_url if stream else None,
        **options,
    )
    view: SupervisorView = supervisor
    router = None
    if settings.clustered:
        router = _router(settings, clock, store, internal_http or pool, supervisor, directory)
        view = router
    ctx = HttpContext(
        settings=settings,
        store=store,
        clock=clock,
        tokens=TokenSigner(token_key(settings), clock=clock),
        supervisor=view,
        governor=governor,
        hub=hub,
        symbols=symbols,
        provision_keys=_provisioner(simulator, store, view),
        check_keys=lambda creds: check_keys(exchange, creds),
        prices=PriceFeed(exchange, governor, known=symbols),
        passwords=passwords or Passwords(),
    )
    service = Service(
        settings, store, clock, ctx, create_app(ctx), supervisor, governor, exchange, simulator
    )
    service.hub = hub
    service.directory = directory
    ctx.ready = lambda: service.running
    if router is not None:
        internal.register_routes(service.app, router)
        service.relay = router.relay
        ctx.metrics.add_parts({"relay": router.relay.statistics, "owners": router.calls.statistics})
    _add_metrics(service)
    return service


def _directory(settings: Settings, store: Store) -> Directory:
    """This instance's directory: ownership in PostgreSQL when clustered (the store's order
    writes then fenced by it), else the single instance's."""
    instance_id = settings.instance_id or f"{socket.gethostname()}-{secrets.token_hex(2)}"
    if not settings.clustered:
        return SingleInstance(instance_id, settings.advertise_url or "")
    ownership = Ownership(
        settings.database_url, instance_id=instance_id, address=settings.advertise_url or ""
    )
    store.ownership_check = ownership.write_fence
    return ownership


def _router(
    settings: Settings,
    clock: WallClock,
    store: Store,
    http: httpx.AsyncClient,
    supervisor: Supervisor,
    directory: Directory,
) -> Router:
    """A cluster's :class:`~tradercoin.cluster.router.Router`, its relay and its calls to
    other instances (all on ``directory``)."""
    store.notify_events = True
    auth = InternalAuth(token_key(settings), clock)
    relay = EventRelay(
        conninfo=conninfo(store), store=store, registry=supervisor.sessions, directory=directory
    )
    calls = OwnerCalls(http, directory, store, auth)
    return Router(
        local=supervisor, directory=directory, relay=relay, calls=calls, store=store, auth=auth
    )


def actor_summary(supervisor: Supervisor, clock: WallClock) -> dict[str, Any]:
    """Actors by state, the worst poll lag (seconds past a missed deadline), and the
    notifications the actors delivered to sessions or dropped (slow or gone sessions)."""
    now = clock.now_ms()
    states: dict[str, int] = {}
    lag = 0.0
    notified = {"delivered": 0, "dropped_slow": 0, "dropped_gone": 0}
    for status in supervisor.statuses():
        states[status.state] = states.get(status.state, 0) + 1
        if status.next_poll is not None:
            lag = max(lag, (now - status.next_poll) / 1000)
        handle = supervisor.actor(status.user_id)
        if handle is not None:
            stats = handle.sessions.statistics()
            for name in notified:
                notified[name] += getattr(stats, name)
    return {"state": states, "poll_lag_max_seconds": lag, "notifications": notified}


def _add_metrics(service: Service) -> None:
    parts: dict[str, Callable[[], Any]] = {
        "actors": lambda: actor_summary(service.supervisor, service.clock),
        "supervisor": service.supervisor.statistics,
        "governor": service.governor.statistics,
        "exchange": service.exchange.statistics,
        "store": service.store.statistics,
    }
    if service.ctx.prices is not None:
        parts["prices"] = service.ctx.prices.statistics
    if service.simulator is not None:
        parts["simulator"] = service.simulator.statistics
    if service.hub is not None:
        parts["streams"] = service.hub.statistics
    if isinstance(service.directory, Ownership):
        parts["cluster"] = service.directory.statistics
    service.ctx.metrics.add_parts(parts)


async def serve_until_signalled(settings: Settings) -> None:
    """``tradercoin serve``: run the service until SIGINT or SIGTERM, then shut down."""
    import signal

    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_service(settings) as service:
            print(f"tradercoin: instance {service.instance_id}", flush=True)
            print(f"tradercoin is serving on {service.url}", flush=True)
            async for signum in signals:
                log.info("received %s: shutting down", signal.Signals(signum).name)
                break
