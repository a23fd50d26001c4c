"""The deterministic harness: the whole order pipeline in-process, on trio's clock.

:func:`open_test_system` builds an in-memory SQLite store (its SQL run in-thread, so
``trio.testing.MockClock(autojump_threshold=0)`` works: trio issue 456), the exchange
simulator reached through httpx's ASGI transport and in-memory WebSockets, the rate
governor and the supervisor with one actor per user. It yields a :class:`TestSystem` to
create users with simulator keys, place orders through their actors, attach sessions (real
bounded memory channels) and read what each received, and drive the simulator (prices,
fills, faults). Every exchange request is recorded with its trio time and user.

Use it under pytest-trio's ``autojump_clock`` fixture; hours of trading then take
milliseconds and a run repeats exactly::

    async def test_fill_reaches_the_browser(autojump_clock):
        async with open_test_system() as system:
            alice = await system.add_user("alice")
            tab = await alice.open_session()
            order = await alice.place("BTCUSDT", "BUY", "MARKET", "0.01")
            message = await tab.wait_for_status(order.id, "filled")
            assert message.time <= 2.0 + 5.0  # fill latency + one poll interval

Nothing in tradercoin imports this module; it is public for tests, tradercoin's and yours.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import trio

from tradercoin.actors import ActorStatus, PlaceOrderRequest, RateGovernor, Supervisor
from tradercoin.actors.supervisor import ActorHandle
from tradercoin.clock import FixedEpochClock, WallClock
from tradercoin.cluster.directory import Directory
from tradercoin.config import PollPolicy, Settings
from tradercoin.exchange.client import BinanceFutures
from tradercoin.exchange.protocol import Credentials
from tradercoin.exchange.sim import Simulator
from tradercoin.exchange.sim.faults import Fault, FaultKind
from tradercoin.http.security import Passwords
from tradercoin.orders import Fill, Order, OrderType, Side, TimeInForce
from tradercoin.service import Service, build_service, start_parts
from tradercoin.store import Store, open_store
from tradercoin.store.secrets import SecretBox, generate_key

__all__ = [
    "EPOCH_MS",
    "Received",
    "RecordedRequest",
    "TestSession",
    "TestSystem",
    "TestUser",
    "open_test_system",
    "run_inline",
]

T = TypeVar("T")
EPOCH_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: the harness's wall clock at t=0
SIM_URL = "http://sim"
APP_URL = "http://tradercoin.test"


async def run_inline(fn: Callable[..., T], /, *args: Any, limiter: Any = None) -> T:
    """The store's thread hop, run on the trio thread instead: for in-memory SQLite under
    MockClock autojump only (a real thread would make autojump skip time while SQL runs)."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One REST request the service sent to the simulator, noted when its answer came
    (in-process, at the same trio time unless a LATENCY fault delayed it)."""

    time: float
    method: str
    path: str
    user_id: int | None
    status: int
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class Received:
    """One message a session received, with the trio time it arrived."""

    time: float
    message: dict[str, Any]


class _RequestLog:
    """Every response from the simulator, noted by an httpx event hook."""

    def __init__(self) -> None:
        self.records: list[RecordedRequest] = []
        self.users_by_key: dict[str, int] = {}
        self.stream_connects: list[tuple[float, str]] = []

    def connecting(self, sim: Simulator) -> Callable[[str], Any]:
        """``sim.open_websocket``, noting each connection's trio time and URL first."""

        def connect(url: str) -> Any:
            self.stream_connects.append((trio.current_time(), url))
            return sim.open_websocket(url)

        return connect

    async def record(self, response: httpx.Response) -> None:
        request = response.request
        key = request.headers.get("x-mbx-apikey")
        retry_after = response.headers.get("retry-after")
        self.records.append(
            RecordedRequest(
                time=trio.current_time(),
                method=request.method,
                path=request.url.path,
                user_id=None if key is None else self.users_by_key.get(key),
                status=response.status_code,
                retry_after=None if retry_after is None else float(retry_after),
            )
        )


class TestSession:
    """A fake browser tab: a real bounded channel attached to the user's actor.

    A reader task collects every message into :attr:`received` (in arrival order).
    """

    __test__ = False  # not a pytest class

    def __init__(
        self,
        session_id: int,
        capacity: int,
        *,
        outgoing: trio.MemorySendChannel[dict[str, Any]] | None = None,
    ) -> None:
        self.session_id = session_id
        self.capacity = capacity
        self.received: list[Received] = []
        self.closed = False
        self._changed = trio.Event()
        self._outgoing = outgoing

    async def send(self, message: dict[str, Any]) -> None:
        """Send a client message (``{"type": "resume", "since": N}``, ``ping``) on a ``/ws``
        session (:meth:`TestUser.open_ws`)."""
        if self._outgoing is None:
            raise RuntimeError("an actor-attached session has no way back; use open_ws")
        await self._outgoing.send(message)

    async def _read(self, receive: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        async with receive:
            async for message in receive:
                self.received.append(Received(trio.current_time(), message))
                self._changed.set()
                self._changed = trio.Event()
        self.closed = True
        self._changed.set()

    def close(self) -> None:
        """Close a ``/ws`` session from the browser's side (the app sees a disconnect)."""
        if self._outgoing is None:
            raise RuntimeError("an actor-attached session is closed by the actor's detach")
        self._outgoing.close()

    def messages(self, type: str | None = None) -> list[dict[str, Any]]:
        """The messages received so far (of one ``type`` if given)."""
        return [r.message for r in self.received if type is None or r.message["type"] == type]

    def updates(self, order_id: int | None = None) -> list[dict[str, Any]]:
        """The ``order_update`` payloads received (of one order if given)."""
        return [
            m["data"]
            for m in self.messages("order_update")
            if order_id is None or m["data"]["id"] == order_id
        ]

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> Received:
        """Wait until a message matching ``predicate`` has arrived; returns the first one.

        Raises:
            EOFError: the session was closed before such a message arrived.
        """
        while True:
            for item in self.received:
                if predicate(item.message):
                    return item
            if self.closed:
                raise EOFError("session closed before the awaited message arrived")
            await self._changed.wait()

    async def wait_for_status(self, order_id: int | None, status: str) -> Received:
        """Wait for an ``order_update`` of ``order_id`` with ``status``."""
        return await self.wait_for(
            lambda m: (
                m["type"] == "order_update"
                and m["data"]["id"] == order_id
                and m["data"]["status"] == status
            )
        )


class TestUser:
    """A user with simulator keys and a running actor."""

    __test__ = False

    def __init__(self, system: TestSystem, user_id: int, api_key: str) -> None:
        self.system = system
        self.user_id = user_id
        self.api_key = api_key

    @property
    def actor(self) -> ActorHandle:
        handle = self.system.supervisor.actor(self.user_id)
        assert handle is not None, f"user {self.user_id} has no actor"
        return handle

    async def place(
        self,
        symbol: str,
        side: str,
        type: str,
        quantity: str | Decimal,
        price: str | Decimal | None = None,
        time_in_force: str | None = None,
    ) -> Order:
        """Place through the user's actor (as ``POST /api/orders`` does)."""
        if type == "LIMIT" and time_in_force is None:
            time_in_force = "GTC"
        request = PlaceOrderRequest(
            symbol=symbol,
            side=Side(side),
            type=OrderType(type),
            quantity=Decimal(quantity),
            price=None if price is None else Decimal(price),
            time_in_force=None if time_in_force is None else TimeInForce(time_in_force),
        )
        return await self.actor.place(request)

    async def cancel(self, order_id: int) -> Order:
        return await self.actor.cancel(order_id)

    async def cancel_all(self, symbol: str) -> int:
        """Cancel every open order of ``symbol`` (as ``DELETE /api/orders?symbol=`` does)."""
        return await self.actor.cancel_all(symbol)

    async def fills(self, order_id: int) -> list[Fill]:
        """The fills we hold of one of this user's orders (the store's, oldest first)."""
        return await self.system.store.order_fills(self.user_id, order_id)

    async def open_session(self, *, since: int | None = None, capacity: int = 256) -> TestSession:
        """Attach a fake tab (a channel of ``capacity``), replaying after ``since`` if given."""
        send, receive = trio.open_memory_channel[dict[str, Any]](capacity)
        session_id = await self.actor.attach(send, since)
        session = TestSession(session_id, capacity)
        self.system.nursery.start_soon(session._read, receive)
        return session

    @property
    def headers(self) -> dict[str, str]:
        """An ``Authorization`` header with a fresh token of this user, for
        ``system.http`` (the app in-process: ``POST /api/orders``, ``GET /api/orders``...)."""
        token = self.system.service.ctx.tokens.issue(self.user_id)
        return {"Authorization": f"Bearer {token}"}

    async def open_ws(self, *, since: int | None = None, capacity: int = 256) -> TestSession:
        """A ``/ws`` session of the app in-process (hello, order_update, resync...), its
        messages collected like :meth:`open_session`'s; ``session.send`` talks back."""
        token = self.system.service.ctx.tokens.issue(self.user_id)
        query = f"token={token}" + ("" if since is None else f"&since={since}")
        frames_send, frames_receive = trio.open_memory_channel[dict[str, Any]](capacity)
        client_send, client_receive = trio.open_memory_channel[dict[str, Any]](capacity)
        session = TestSession(0, capacity, outgoing=client_send)
        nursery = self.system.nursery
        nursery.start_soon(session._read, frames_receive)
        nursery.start_soon(
            _asgi_websocket, self.system.service.app, query, frames_send, client_receive
        )
        await session.wait_for(lambda m: m["type"] in ("hello", "resync", "error"))
        return session

    def status(self) -> ActorStatus:
        """The supervisor's status line of this user's actor."""
        [status] = [s for s in self.system.supervisor.statuses() if s.user_id == self.user_id]
        return status

    async def wait_stream(self, state: str = "healthy") -> None:
        """Wait until the actor's stream is in ``state`` (checked every 10 ms of trio time)."""
        # polling on purpose: the actor's status has no event to wait on, by design
        while self.status().stream_state != state:  # noqa: ASYNC110
            await trio.sleep(0.01)

    def requests(self, path: str | None = None) -> list[RecordedRequest]:
        """The REST requests this user's actor sent (to ``path`` if given)."""
        return self.system.requests_of(self.user_id, path)

    def truth(self) -> list[Any]:
        """The simulator's own view of this user's orders."""
        return self.system.sim.orders(self.api_key)


class TestSystem:
    """Handles on every part of a running test system (see the module doc)."""

    __test__ = False

    def __init__(
        self,
        *,
        service: Service,
        nursery: trio.Nursery,
        http: httpx.AsyncClient,
        log: _RequestLog,
    ) -> None:
        self.service = service
        self.nursery = nursery
        self.http = http
        self._log = log
        self.users: dict[int, TestUser] = {}
        self._names = itertools.count(1)

    @property
    def sim(self) -> Simulator:
        simulator: Simulator = self.service.simulator
        return simulator

    @property
    def store(self) -> Store:
        return self.service.store

    @property
    def governor(self) -> RateGovernor:
        return self.service.governor

    @property
    def supervisor(self) -> Supervisor:
        return self.service.supervisor

    @property
    def exchange(self) -> BinanceFutures:
        return self.service.exchange

    @property
    def clock(self) -> WallClock:
        return self.service.clock

    async def add_user(
        self, name: str | None = None, *, policy: PollPolicy | None = None
    ) -> TestUser:
        """Create a user with fresh simulator keys and start its actor."""
        name = name or f"user{next(self._names)}"
        user = await self.store.create_user(name, "not-a-real-hash")
        api_key, api_secret = self.sim.create_account()
        await self.store.set_credentials(user.id, Credentials(api_key, api_secret))
        if policy is not None:
            await self.store.set_poll_policy(user.id, policy, updated_by=None)
        self._log.users_by_key[api_key] = user.id
        await self.supervisor.credentials_changed(user.id)
        test_user = self.users[user.id] = TestUser(self, user.id, api_key)
        return test_user

    def inject(
        self,
        kind: str | FaultKind,
        *,
        seconds: float = 0.0,
        path: str | None = None,
        user: TestUser | None = None,
        count: int | None = 1,
    ) -> None:
        """Arm a simulator fault (for one user's keys if ``user`` is given)."""
        fault = Fault(FaultKind(kind), float(seconds))
        self.sim.inject(
            fault, path=path, account=None if user is None else user.api_key, count=count
        )

    @property
    def stream_connects(self) -> list[tuple[float, str]]:
        """Every user-stream connection the service opened: (trio time, URL with the
        listenKey), in order."""
        return self._log.stream_connects

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every REST request sent to the simulator, in order."""
        return self._log.records

    def requests_of(self, user_id: int | None, path: str | None = None) -> list[RecordedRequest]:
        return [
            r for r in self.requests if r.user_id == user_id and (path is None or r.path == path)
        ]


@asynccontextmanager
async def open_test_system(
    *,
    stream: bool = False,
    poll: PollPolicy | None = None,
    budget_per_minute: int = 2400,
    market_fill_latency: float = 2.0,
    seed: int = 0,
    database_url: str = "sqlite:///:memory:",
    stream_options: dict[str, Any] | None = None,
    supervisor_options: dict[str, Any] | None = None,
    sim_options: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    sim: Simulator | None = None,
    directory: Directory | None = None,
    internal_http: httpx.AsyncClient | None = None,
) -> AsyncIterator[TestSystem]:
    """Run the service in-process, as ``tradercoin serve`` composes it; yield a TestSystem.

    The parts are built by :func:`tradercoin.service.build_service` and started by
    :func:`tradercoin.service.start_parts`, exactly as in production (supervisor, event
    retention, the Quart app with ``/ws``); only the clock (a fixed epoch on trio's clock),
    the transports (httpx's ASGI transport to the simulator and to the app, in-memory
    WebSockets) and the database (SQLite run inline) are swapped. No socket is opened.

    Args:
        stream: give actors the simulator's user-data stream (else they only poll).
        poll: the default poll policy (``PollPolicy()``: 5 s / 1 s / 60 s).
        budget_per_minute: the governor's weight budget.
        market_fill_latency: seconds before the simulator fills a MARKET order.
        seed: seeds the simulator and the supervisor's restart jitter.
        database_url: a SQLite URL; a file lets a test reopen the same database in a second
            system (a restart).
        stream_options, supervisor_options, sim_options: extra keyword arguments for
            the stream task, the :class:`Supervisor` and the :class:`Simulator`.
        settings: overrides of the service's :class:`~tradercoin.config.Settings`.
        sim: a running simulator to use instead of a new one, and its clock (``seed``,
            ``market_fill_latency`` and ``sim_options`` are then not used): with a file
            ``database_url`` (and a fixed ``master_key`` in ``settings``) a second system
            restarts the service while the exchange runs on. The caller owns its ``run``.
        directory, internal_http: a cluster's (with ``settings={"cluster": "on"}`` and a
            PostgreSQL ``database_url``, whose SQL then runs in worker threads): see
            :func:`tradercoin.service.build_service`. Without ``cluster``, a system runs alone.

    Resource handling: everything is cancelled and closed on exit (but a given ``sim``).
    """
    own_sim = sim is None
    if sim is None:
        sim = Simulator(
            clock=FixedEpochClock(EPOCH_MS),
            seed=seed,
            market_fill_latency=market_fill_latency,
            **(sim_options or {}),
        )
    clock = sim.clock
    options: dict[str, Any] = {
        "database_url": database_url,
        "master_key": generate_key(),
        "poll": poll or PollPolicy(),
        "weight_budget_per_minute": budget_per_minute,
        "cluster": "off",  # one system alone, whatever the database (a test may ask for on)
        **(settings or {}),
    }
    config = Settings(**options)
    log = _RequestLog()
    secrets = SecretBox.from_settings(config)
    inline = run_inline if database_url.startswith("sqlite") else None
    async with trio.open_nursery() as nursery:
        if own_sim:
            await nursery.start(sim.run)
        async with (
            _exchange_pool(sim, log) as pool,
            open_store(database_url, secrets=secrets, clock=clock, run_sync=inline) as store,
        ):
            supervisor = {
                "connect_ws": log.connecting(sim),
                "seed": seed,
                "stream_options": stream_options,
                **(supervisor_options or {}),
            }
            service = await build_service(
                config,
                clock,
                store,
                pool,
                sim,
                SIM_URL,
                "ws://sim",
                passwords=Passwords.fast_for_tests(),
                stream=stream,
                supervisor_options=supervisor,
                directory=directory,
                internal_http=internal_http,
            )
            app: Any = service.app.asgi_app  # Quart's ASGI types are narrower than httpx's
            async with (
                trio.open_nursery() as inner,
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=APP_URL) as http,
            ):
                await start_parts(inner, service)
                service.running = True
                try:
                    yield TestSystem(service=service, nursery=inner, http=http, log=log)
                finally:
                    inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


async def _asgi_websocket(
    app: Any,
    query: str,
    frames: trio.MemorySendChannel[dict[str, Any]],
    client: trio.MemoryReceiveChannel[dict[str, Any]],
) -> None:
    """One ``/ws`` connection to the ASGI ``app`` in memory: server frames (JSON) go to
    ``frames``, client messages come from ``client``; ends when either side closes."""
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", APP_URL.removeprefix("http://").encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 80),
        "subprotocols": [],
    }
    connected = False

    async def receive() -> dict[str, Any]:
        nonlocal connected
        if not connected:
            connected = True
            return {"type": "websocket.connect"}
        try:
            message = await client.receive()
        except trio.EndOfChannel:
            return {"type": "websocket.disconnect", "code": 1000}
        return {"type": "websocket.receive", "text": json.dumps(message)}

    async def send(event: dict[str, Any]) -> None:
        if event["type"] == "websocket.send":
            text = event.get("text") or event.get("bytes", b"").decode()
            await frames.send(json.loads(text))
        elif event["type"] in ("websocket.close", "websocket.http.response.start"):
            frames.close()

    async with frames, client:
        await app(scope, receive, send)


@asynccontextmanager
async def _exchange_pool(sim: Simulator, log: _RequestLog) -> AsyncIterator[httpx.AsyncClient]:
    """The exchange client's pool on the simulator's ASGI app, every answer recorded."""
    transport = httpx.ASGITransport(app=sim.asgi_app)
    hooks = {"response": [log.record]}
    async with httpx.AsyncClient(transport=transport, base_url=SIM_URL, event_hooks=hooks) as http:
        yield http
