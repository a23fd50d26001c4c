"""The model-based test's driver: runs one :class:`Schedule` against the real pipeline
(``tradercoin.testing.open_test_system`` on a temp-file SQLite database, the simulator
outliving restarts of the service) inside one ``trio.run`` under
``MockClock(autojump_threshold=0)``, lets it settle, and returns what the oracle needs: the
simulator's record, our store's orders and fills, and everything every tab received.

Users act as a browser does: a place or cancel the service refuses ("try again", or the
exchange's refusal) is noted and not retried; the exchange's side (fills, matches, the
mark, faults) is driven through the simulator's own hooks.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import trio
import trio.testing

from tests.model.checks import Observed, Tab, store_differences
from tests.model.steps import (
    FAULT_SECONDS,
    HAS_CANCEL_ALL,
    USERS,
    Advance,
    Attach,
    Cancel,
    CancelAll,
    CrashActor,
    Detach,
    DropStream,
    Fill,
    Inject,
    Mark,
    Match,
    OrderLimit,
    Place,
    Restart,
    Resume,
    Schedule,
    Step,
)
from tradercoin.actors import ActorUnavailable, OrderRejected
from tradercoin.actors.messages import OrderNotFoundError
from tradercoin.actors.user import ActorConfig, UserActor
from tradercoin.clock import FixedEpochClock
from tradercoin.config import PollPolicy
from tradercoin.exchange.errors import ExchangeError
from tradercoin.exchange.sim import Fault, FaultKind, OrderTruth, Simulator
from tradercoin.orders import Order
from tradercoin.store import Store
from tradercoin.store.secrets import generate_key
from tradercoin.testing import EPOCH_MS, TestSystem, TestUser, open_test_system

__all__ = ["our_fills", "run_schedule"]

POLL_INTERVAL = 5.0  # PollPolicy() default, polling mode
RECONCILE = 60.0  # PollPolicy() default while the stream is healthy
FILL_LATENCY = 2.0  # the simulator's MARKET fill latency
RESOLVE = sum(ActorConfig().resolve_delays)  # an unknown outcome's queries by client id
VANISH = 3 * POLL_INTERVAL  # three -2013 confirmations, one per poll
RESTART_BACKOFF = 1.25  # the supervisor's first restart delay, jitter included
ORDER_WINDOW = 10.0  # an account's order-rate limit is counted over 10 s (and a minute)
QUIET = 90.0  # watched after convergence: nothing may change any more
MASTER_KEY = generate_key()  # one for every run: a restarted service decrypts the keys
ACTION_LIMIT = 900.0  # a place or cancel that takes longer than this (trio time) is a hang
STARTS = 10  # attempts to start the service (each one spends a hit of a fault for anyone)


def _crashable(requests: dict[int, trio.Event]) -> type[UserActor]:
    """A :class:`UserActor` that raises when ``requests[user_id]`` is set (a bug, seen from
    the supervisor: the incarnation ends with an exception and is restarted)."""

    class Crashable(UserActor):
        async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            event = requests[self.user_id] = trio.Event()
            async with trio.open_nursery() as nursery:

                async def crash() -> None:
                    await event.wait()
                    raise RuntimeError("model test: injected actor crash")

                nursery.start_soon(crash)
                try:
                    await super().run(task_status=task_status)
                finally:
                    if requests.get(self.user_id) is event:
                        del requests[self.user_id]
                nursery.cancel_scope.cancel()

    return Crashable


class World:
    """One run: the simulator, the service (reopened on restarts) and the users' tabs."""

    def __init__(self, schedule: Schedule, sim: Simulator, db_url: str) -> None:
        self.schedule = schedule
        self.sim = sim
        self.db_url = db_url
        self.crash_requests: dict[int, trio.Event] = {}
        self.system: TestSystem | None = None
        self.stack = contextlib.AsyncExitStack()
        self.user_ids: list[int] = []
        self.keys: dict[int, str] = {}
        self.tabs: list[Tab] = []
        self.returned: dict[int, list[int]] = {u: [] for u in range(USERS)}
        self.recovery = 0.0
        self.crashes = 0
        self.hangs: list[str] = []
        self.refused: list[str] = []
        self.touched: set[int] = set()  # users with a fault, a limit or a crash of their own
        self.shared = False  # a fault for anyone (or the IP's: 429/418) was armed

    # ------------------------------------------------------------ the service

    async def open(self) -> TestSystem:
        """Start the service; as an operator would, start it again (a second later) when
        an armed fault answered its startup ``exchangeInfo`` and it refused to start."""
        for _ in range(STARTS - 1):
            try:
                return await self._open()
            except* ExchangeError:
                pass
            await trio.sleep(1.0)
        return await self._open()

    async def _open(self) -> TestSystem:
        system = await self.stack.enter_async_context(
            open_test_system(
                stream=self.schedule.stream,
                poll=PollPolicy(),
                sim=self.sim,
                database_url=self.db_url,
                settings={"master_key": MASTER_KEY},
                supervisor_options={"actor_class": _crashable(self.crash_requests)},
            )
        )
        for user_id, api_key in self.keys.items():  # after a restart: the same users
            system.users[user_id] = TestUser(system, user_id, api_key)
        self.system = system
        return system

    async def start(self) -> None:
        system = await self.open()
        for _ in range(USERS):
            user = await system.add_user()
            self.user_ids.append(user.user_id)
            self.keys[user.user_id] = user.api_key
        for u in range(USERS):
            tab = Tab(u, 0, permanent=True)
            self.tabs.append(tab)
            await self._connect(tab, 0)

    def user(self, u: int) -> TestUser:
        assert self.system is not None
        return self.system.users[self.user_ids[u]]

    async def _connect(self, tab: Tab, since: int | None) -> None:
        user = self.user(tab.user)
        if tab.ws:
            try:
                session = await user.open_ws(since=since)
            except EOFError:  # the app closed it before hello (the actor is restarting)
                tab.open = False
                return
            hello = session.messages("hello")
            if since is None and tab.since is None and hello:
                tab.since = hello[0]["seq"]  # live from the newest seq the app announced
            if session.messages("error"):
                tab.open = False
            tab.sessions.append(session)
            return
        try:
            tab.sessions.append(await user.open_session(since=since))
        except ActorUnavailable:
            tab.open = False  # the browser gives up on this tab

    async def restart(self) -> None:
        await self.stack.aclose()
        self.stack = contextlib.AsyncExitStack()
        await self.open()
        for tab in self.tabs:
            if tab.open:
                await self._connect(tab, tab.last_seq() or 0)
        self.recovery = max(self.recovery, RESTART_BACKOFF)

    # ------------------------------------------------------------ steps

    async def do(self, step: Step) -> None:
        match step:
            case Place() | Match():
                await self._place(step)
            case Cancel(u, k):
                ids = self.returned[u]
                if ids:
                    await self._act(f"{step}", self.user(u).cancel(ids[k % len(ids)]))
            case CancelAll(u, symbol):
                if HAS_CANCEL_ALL:
                    await self._act(f"{step}", self.user(u).cancel_all(symbol))  # type: ignore[attr-defined]
            case Fill(u, k, quarters):
                self._fill(u, k, quarters)
            case Mark(symbol, percent):
                price = self.sim.mark(symbol) * (1 + Decimal(percent) / 100)
                self.sim.set_price(symbol, self._tick(symbol, price))
            case Inject():
                self._inject(step)
            case OrderLimit(u, per_10s):
                api_key = self.user(u).api_key
                self.sim.set_order_limits(api_key, per_10s=per_10s, per_minute=10 * per_10s)  # type: ignore[attr-defined]
                self.touched.add(u)
                self.recovery = max(self.recovery, ORDER_WINDOW)
            case Advance(seconds):
                await trio.sleep(seconds)
            case DropStream(u, expire):
                kind = FaultKind.LISTEN_KEY_EXPIRED if expire else FaultKind.DISCONNECT
                self.sim.inject(Fault(kind), account=self.user(u).api_key)
            case CrashActor(u):
                event = self.crash_requests.get(self.user_ids[u])
                if event is not None:
                    await self._crash(u, event)
            case Restart():
                await self.restart()
            case Attach(u, ws):
                tab = Tab(u, None, ws=ws)
                self.tabs.append(tab)
                await self._connect(tab, None)
            case Detach(u, k):
                await self._detach(u, k)
            case Resume(u, k, back, ws):
                await self._resume(u, k, back, ws)

    async def _crash(self, u: int, event: trio.Event) -> None:
        """Crash ``u``'s actor and wait until the supervisor has seen it (a crash that
        lands while the service shuts down is a different story: see the report)."""
        handle = self.user(u).actor
        crashes = handle.crashes
        self.touched.add(u)
        event.set()
        self.crashes += 1
        self.recovery = max(self.recovery, RESTART_BACKOFF * 2 ** (self.crashes - 1))
        while handle.crashes == crashes:  # noqa: ASYNC110  (the supervisor has no event)
            await trio.sleep(0.01)

    async def _act(self, what: str, action: Any) -> Any:
        """Await a user's request as a browser does: refusals are answers, not failures
        (returned as the exception)."""
        with trio.move_on_after(ACTION_LIMIT):
            try:
                return await action
            except (ActorUnavailable, OrderRejected, OrderNotFoundError) as refused:
                return refused
        self.hangs.append(f"{what} did not return within {ACTION_LIMIT} s")
        return None

    def _untouched(self, u: int) -> bool:
        """Nothing of this schedule so far may keep ``u`` from placing: no fault armed for
        it or for anyone, no order-rate limit of its own, no crash of its actor."""
        return u not in self.touched and not self.shared

    async def _place(self, step: Place | Match) -> None:
        if isinstance(step, Match):
            args = self._match_args(step)
            if args is None:
                return
            u, symbol, side, qty, price, tif = args
        else:
            u, symbol, side, qty = step.user, step.symbol, step.side, Decimal(step.qty)
            price = None
            tif = None if step.kind == "MARKET" else ("IOC" if step.kind == "IOC" else "GTC")
            if step.kind != "MARKET":
                mark = self.sim.mark(symbol)
                price = self._tick(symbol, mark * (1 + Decimal(step.offset) / 1000))
        kind = "MARKET" if price is None else "LIMIT"
        untouched = self._untouched(u)
        order = await self._act(
            f"{step}", self.user(u).place(symbol, side, kind, qty, price, time_in_force=tif)
        )
        if isinstance(order, Order) and order.id is not None:
            self.returned[u].append(order.id)
        elif isinstance(order, ActorUnavailable | OrderRejected) and untouched:
            self.refused.append(f"{step}: user {u} (no fault of its own) was refused: {order}")

    def _match_args(self, step: Match) -> tuple[int, str, str, Decimal, Decimal, str] | None:
        maker = self._open_at_exchange(step.maker, limit_only=True)
        if not maker:
            return None
        order = maker[step.order % len(maker)]
        side = "SELL" if order.side == "BUY" else "BUY"
        qty = order.orig_qty - order.executed_qty
        return (1 - step.maker, order.symbol, side, qty, order.price, "GTC")

    def _open_at_exchange(self, u: int, *, limit_only: bool = False) -> list[OrderTruth]:
        return [
            t
            for t in self.user(u).truth()
            if t.status in ("NEW", "PARTIALLY_FILLED") and (t.type == "LIMIT" or not limit_only)
        ]

    def _fill(self, u: int, k: int, quarters: int) -> None:
        open_orders = self._open_at_exchange(u)
        if not open_orders:
            return
        order = open_orders[k % len(open_orders)]
        qty = None
        if quarters:
            step = self.sim.specs[order.symbol].step_size
            remaining = order.orig_qty - order.executed_qty
            qty = max(step, (remaining * quarters / 4).quantize(step))
        self.sim.fill(order.symbol, order.order_id, qty)

    def _tick(self, symbol: str, price: Decimal) -> Decimal:
        tick = self.sim.specs[symbol].tick_size
        return (price / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP) * tick

    def _inject(self, step: Inject) -> None:
        account = None if step.user is None else self.user(step.user).api_key
        if step.user is None or step.kind in ("rate_limited", "banned"):
            self.shared = True  # 429/418 are the IP's: every user pauses, as Binance wants
        else:
            self.touched.add(step.user)
        fault = Fault(FaultKind(step.kind), FAULT_SECONDS[step.kind])
        self.sim.inject(fault, path=step.path, account=account, count=step.count)
        self.recovery = max(self.recovery, step.count * max(FAULT_SECONDS[step.kind], RESOLVE))

    async def _detach(self, u: int, k: int) -> None:
        extra = [t for t in self.tabs if t.user == u and t.open and not t.permanent]
        if not extra:
            return
        tab = extra[k % len(extra)]
        tab.open = False
        if tab.ws:
            tab.sessions[-1].close()
            return
        with contextlib.suppress(ActorUnavailable):
            await self.user(u).actor.detach(tab.sessions[-1].session_id)

    async def _resume(self, u: int, k: int, back: int, ws: bool) -> None:
        mine = [t for t in self.tabs if t.user == u]
        last = mine[k % len(mine)].last_seq() or 0
        tab = Tab(u, max(0, last - back), ws=ws)
        self.tabs.append(tab)
        await self._connect(tab, tab.since)

    # ------------------------------------------------------------ the end

    def bound(self) -> float:
        """Seconds the pipeline may take to agree with the exchange after the last step:
        one poll interval (the reconciliation interval with the stream) and a MARKET fill,
        plus what the faults, crashes and restarts of this schedule may add (each fault
        kind's seconds or an unknown outcome's resolution, per hit), plus the -2013
        confirmations of an order the exchange never got."""
        interval = RECONCILE if self.schedule.stream else POLL_INTERVAL
        return interval + FILL_LATENCY + RESOLVE + VANISH + self.recovery

    async def settle(self) -> tuple[float, float | None]:
        """Clear faults, then wait until our store equals the exchange (or the bound)."""
        self.sim.clear_faults()
        bound = self.bound()
        start = trio.current_time()
        converged = None
        with trio.move_on_after(bound):
            while not await self._agrees():  # noqa: ASYNC110  (the exchange has no event)
                await trio.sleep(0.5)
            converged = trio.current_time() - start
        if converged is not None:
            await trio.sleep(QUIET)
        return bound, converged

    async def _agrees(self) -> bool:
        observed = await self.observe(0.0, None)
        return not store_differences(observed)

    async def observe(self, bound: float, converged: float | None) -> Observed:
        assert self.system is not None
        store = self.system.store
        ours, fills, truth, trades = {}, {}, {}, {}
        for u in range(USERS):
            user = self.user(u)
            page = await store.list_orders(user.user_id, page_size=1000)
            ours[u] = list(page.items)
            truth[u] = user.truth()
            trades[u] = self.sim.trades(user.api_key)
            fills[u] = {
                o.exchange_order_id: await our_fills(store, user.user_id, o)
                for o in ours[u]
                if o.exchange_order_id is not None
            }
        return Observed(
            truth, trades, ours, fills, self.tabs, bound, converged, self.hangs, self.refused
        )


async def our_fills(store: Store, user_id: int, order: Order) -> list[dict[str, Any]]:
    """The fills we stored for ``order`` (the store's own read), as dicts of the fields the
    exchange's trades have (see checks.FILL_FIELDS)."""
    assert order.id is not None
    return [
        {
            "trade_id": f.trade_id,
            "price": f.price,
            "qty": f.quantity,
            "commission": f.commission,
            "realized_pnl": f.realized_pnl,
            "maker": f.maker,
        }
        for f in await store.order_fills(user_id, order.id)
    ]


@contextlib.asynccontextmanager
async def _simulator() -> AsyncIterator[Simulator]:
    sim = Simulator(
        clock=FixedEpochClock(EPOCH_MS),
        seed=0,
        market_fill_latency=FILL_LATENCY,
        volatility_scale=0,
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        yield sim
        nursery.cancel_scope.cancel()


async def _run(schedule: Schedule, db_url: str) -> Observed:
    async with _simulator() as sim:
        world = World(schedule, sim, db_url)
        try:
            await world.start()
            for step in schedule.steps:
                await world.do(step)
            bound, converged = await world.settle()
            return await world.observe(bound, converged)
        finally:
            await world.stack.aclose()


def run_schedule(schedule: Schedule) -> Observed:
    """Run ``schedule`` in a fresh ``trio.run`` on a MockClock (autojump) and a fresh
    temp-file database; returns what the checks need."""
    with tempfile.TemporaryDirectory(prefix="tc-model-") as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'model.db')}"
        clock = trio.testing.MockClock(autojump_threshold=0)
        return trio.run(_run, schedule, url, clock=clock)
