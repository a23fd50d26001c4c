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
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import trio

from tradercoin.actors import ActorStatus, PlaceOrderRequest, RateGovernor, Supervisor
from tradercoin.actors.supervisor import ActorHandle
from tradercoin.clock import FixedEpochClock
from tradercoin.config import PollPolicy
from tradercoin.exchange.client import BinanceFutures
from tradercoin.exchange.protocol import Credentials
from tradercoin.exchange.sim import Simulator
from tradercoin.exchange.sim.faults import Fault, FaultKind
from tradercoin.orders import Fill, Order, OrderType, Side, TimeInForce
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

    def __init__(self, session_id: int, capacity: int) -> None:
        self.session_id = session_id
        self.capacity = capacity
        self.received: list[Received] = []
        self.closed = False
        self._changed = trio.Event()

    async def _read(self, receive: trio.MemoryReceiveChannel[dict[str, Any]]) -> None:
        async with receive:
            async for message in receive:
                self.received.append(Received(trio.current_time(), message))
                self._changed.set()
                self._changed = trio.Event()
        self.closed = True
        self._changed.set()

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
        nursery: trio.Nursery,
        sim: Simulator,
        store: Store,
        governor: RateGovernor,
        supervisor: Supervisor,
        exchange: BinanceFutures,
        clock: FixedEpochClock,
        log: _RequestLog,
    ) -> None:
        self.nursery = nursery
        self.sim = sim
        self.store = store
        self.governor = governor
        self.supervisor = supervisor
        self.exchange = exchange
        self.clock = clock
        self._log = log
        self.users: dict[int, TestUser] = {}
        self._names = itertools.count(1)

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
    stream_options: dict[str, Any] | None = None,
    supervisor_options: dict[str, Any] | None = None,
    sim_options: dict[str, Any] | None = None,
) -> AsyncIterator[TestSystem]:
    """Run the simulator, store, governor and supervisor in-process; yield a TestSystem.

    Args:
        stream: give actors the simulator's user-data stream (else they only poll).
        poll: the default poll policy (``PollPolicy()``: 5 s / 1 s / 60 s).
        budget_per_minute: the governor's weight budget.
        market_fill_latency: seconds before the simulator fills a MARKET order.
        seed: seeds the simulator and the supervisor's restart jitter.
        stream_options, supervisor_options, sim_options: extra keyword arguments for
            the stream task, the :class:`Supervisor` and the :class:`Simulator`.

    Resource handling: everything is cancelled and closed on exit.
    """
    clock = FixedEpochClock(EPOCH_MS)
    sim = Simulator(
        clock=clock, seed=seed, market_fill_latency=market_fill_latency, **(sim_options or {})
    )
    governor = RateGovernor(budget_per_minute=budget_per_minute, clock=clock)
    log = _RequestLog()
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        async with _open_exchange_and_store(sim, clock, governor, log) as (exchange, store):
            supervisor = Supervisor(
                store=store,
                exchange=exchange,
                governor=governor,
                clock=clock,
                poll_defaults=poll or PollPolicy(),
                stream_ws_url="ws://sim" if stream else None,
                connect_ws=sim.open_websocket,
                seed=seed,
                stream_options=stream_options,
                **(supervisor_options or {}),
            )
            system = TestSystem(
                nursery=nursery,
                sim=sim,
                store=store,
                governor=governor,
                supervisor=supervisor,
                exchange=exchange,
                clock=clock,
                log=log,
            )
            async with trio.open_nursery() as inner:
                await inner.start(supervisor.run)
                try:
                    yield system
                finally:
                    inner.cancel_scope.cancel()
        nursery.cancel_scope.cancel()


@asynccontextmanager
async def _open_exchange_and_store(
    sim: Simulator, clock: FixedEpochClock, governor: RateGovernor, log: _RequestLog
) -> AsyncIterator[tuple[BinanceFutures, Store]]:
    """The exchange client on the simulator's ASGI app, and an in-memory store run inline."""
    secrets = SecretBox.parse(generate_key())
    transport = httpx.ASGITransport(app=sim.asgi_app)
    hooks = {"response": [log.record]}
    async with (
        httpx.AsyncClient(transport=transport, base_url="http://sim", event_hooks=hooks) as http,
        open_store(
            "sqlite:///:memory:", secrets=secrets, clock=clock, run_sync=run_inline
        ) as store,
    ):
        exchange = BinanceFutures(
            http, clock=clock, on_usage=governor.on_usage, rest_url="http://sim"
        )
        yield exchange, store
