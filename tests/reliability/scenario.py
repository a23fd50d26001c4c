"""The trading scenario the reliability suites run under faults, and its checks.

Several users, each with two sessions (one attached from the start, one attached later with
``since=0``), place MARKET and LIMIT orders that fill, partially fill and get canceled,
retrying as a browser would when the service says "try again" (``ActorUnavailable``). The
checks compare our database with the simulator's truth, each session's messages with the
simulator's final state of every order (never with our stored events), and count the
simulator's orders per client order id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import trio

from tests.model.checks import (
    EXCHANGE_STATUS,
    NEVER_PLACED,
    exchange_final,
    order_paths,
    path_ends,
    seq_gaps,
)
from tradercoin.actors import ActorUnavailable
from tradercoin.actors.user import ActorConfig
from tradercoin.config import PollPolicy
from tradercoin.exchange.sim import Fault, FaultKind, OrderTruth
from tradercoin.orders import Order, OrderStatus
from tradercoin.testing import TestSession, TestSystem, TestUser, open_test_system

__all__ = ["Case", "Hook", "Trader", "both", "fault", "run_case", "run_trading"]

ATTEMPTS = 50

Hook = Callable[[TestSystem, "Trader"], Awaitable[None]]


async def _nothing(system: TestSystem, trader: Trader) -> None:
    return None


@dataclass
class Trader:
    """A user driven by the scenario, with what the service accepted from it."""

    user: TestUser
    sessions: list[TestSession] = field(default_factory=list)
    accepted: list[Order] = field(default_factory=list)  # one per logical order
    skip_cancel: set[int] = field(default_factory=set)  # canceled outside the service

    def truth(self) -> dict[str, OrderTruth]:
        return {t.client_order_id: t for t in self.user.truth()}

    def exchange_id(self, order: Order) -> int:
        return self.truth()[order.client_order_id].order_id


async def _retry_delay(system: TestSystem) -> None:
    """What a client does after "try again": wait a second, or out the announced pause."""
    await trio.sleep(max(1.0, system.governor.paused_until - trio.current_time()))


async def place(system: TestSystem, trader: Trader, *args: str, **kw: str) -> Order:
    """Place until the service takes it (each attempt is a fresh order)."""
    for _ in range(ATTEMPTS):
        try:
            order = await trader.user.place(*args, **kw)
        except ActorUnavailable:
            await _retry_delay(system)
            continue
        trader.accepted.append(order)
        return order
    raise AssertionError(f"the service never took the order {args}")


async def cancel(system: TestSystem, trader: Trader, order: Order) -> Order:
    for _ in range(ATTEMPTS):
        try:
            return await trader.user.cancel(order.id or 0)
        except ActorUnavailable:
            await _retry_delay(system)
    raise AssertionError(f"the service never took the cancel of order {order.id}")


async def trade(
    system: TestSystem, trader: Trader, before_fills: Hook, before_cancels: Hook
) -> None:
    """One user's part: 5 orders; one MARKET fill, one LIMIT fill, one partial fill left
    open, one cancel, one partial fill then cancel."""
    sim = system.sim
    trader.sessions.append(await trader.user.open_session())
    market = await place(system, trader, "BTCUSDT", "BUY", "MARKET", "0.010")
    full = await place(system, trader, "BTCUSDT", "BUY", "LIMIT", "0.200", price="1000")
    part = await place(system, trader, "ETHUSDT", "BUY", "LIMIT", "0.500", price="100")
    gone = await place(system, trader, "BTCUSDT", "BUY", "LIMIT", "0.300", price="1000")
    part_gone = await place(system, trader, "ETHUSDT", "SELL", "LIMIT", "0.400", price="9000")
    trader.sessions.append(await trader.user.open_session(since=0))
    del market
    await before_fills(system, trader)
    sim.fill("BTCUSDT", trader.exchange_id(full))
    sim.fill("ETHUSDT", trader.exchange_id(part), Decimal("0.2"))
    sim.fill("ETHUSDT", trader.exchange_id(part_gone), Decimal("0.1"))
    await before_cancels(system, trader)
    for order in (gone, part_gone):
        if order.id not in trader.skip_cancel:
            ended = await cancel(system, trader, order)
            assert ended.status == OrderStatus.CANCELED, ended


async def run_trading(
    system: TestSystem,
    users: list[TestUser],
    *,
    before_fills: Hook = _nothing,
    before_cancels: Hook = _nothing,
) -> list[Trader]:
    """Every user trades at once; returns when all are done."""
    traders = [Trader(user) for user in users]
    async with trio.open_nursery() as nursery:
        for trader in traders:
            nursery.start_soon(trade, system, trader, before_fills, before_cancels)
    return traders


async def all_orders(system: TestSystem, user: TestUser) -> list[Order]:
    page = await system.store.list_orders(user.user_id, page_size=1000)
    return list(page.items)


def _matches(order: Order, truth: OrderTruth | None, purged_ok: bool) -> bool:
    if truth is None:
        return order.status in NEVER_PLACED
    if purged_ok and _purged(order, truth):
        return True
    return (
        order.status == EXCHANGE_STATUS[truth.status]
        and order.filled_quantity == truth.executed_qty
        and order.exchange_order_id == truth.order_id
    )


def _purged(order: Order, truth: OrderTruth) -> bool:
    """The exchange purged it (canceled/expired, no fill, > 3 days): all anyone can learn is
    that it is gone (-2013), which we record as expired with that note."""
    return (
        truth.status in ("CANCELED", "EXPIRED")
        and truth.executed_qty == 0
        and order.status == OrderStatus.EXPIRED
        and "-2013" in (order.note or "")
    )


async def differences(
    system: TestSystem, traders: list[Trader], *, purged_ok: bool = False
) -> list[str]:
    """Where our database and the exchange's truth disagree (empty: they agree)."""
    found = []
    for trader in traders:
        truth = trader.truth()
        ours = await all_orders(system, trader.user)
        known = {o.client_order_id for o in ours}
        for order in ours:
            exchange = truth.get(order.client_order_id)
            if not _matches(order, exchange, purged_ok):
                found.append(f"ours {order} / exchange {exchange}")
        found += [f"not in our db: {t}" for cid, t in truth.items() if cid not in known]
    return found


async def wait_converged(
    system: TestSystem, traders: list[Trader], bound: float, *, purged_ok: bool = False
) -> float:
    """Seconds until our database equals the truth (checked every 0.25 s); fails after
    ``bound`` seconds of trio time with the remaining differences."""
    start = trio.current_time()
    with trio.move_on_after(bound):
        # polling on purpose: the truth lives in the simulator, which has no event to wait on
        while await differences(system, traders, purged_ok=purged_ok):  # noqa: ASYNC110
            await trio.sleep(0.25)
        return trio.current_time() - start
    diff = "\n".join(await differences(system, traders, purged_ok=purged_ok))
    raise AssertionError(f"not converged within {bound} s:\n{diff}")


def check_sessions(system: TestSystem, traders: list[Trader], *, purged_ok: bool = False) -> None:
    """Checked against the exchange's record, not our stored events: each session got one
    gap-free run of seqs from 1, the same run as the user's other session, no resync; per
    order a non-regressing, duplicate-free path of (status, executed quantity) that ends at
    the simulator's final state of it; and it heard of every order the exchange holds."""
    for trader in traders:
        final = {t.client_order_id: _final_states(t, purged_ok) for t in trader.user.truth()}
        runs = []
        for n, session in enumerate(trader.sessions):
            name = f"user {trader.user.user_id} session {n}"
            assert session.messages("resync") == [], name
            updates = session.messages("order_update")
            problems = seq_gaps(name, 0, updates) + order_paths(name, updates)
            problems += path_ends(name, updates, final, complete=set(final))
            assert problems == [], "\n".join(problems)
            runs.append([(m["seq"], m["data"]["id"], m["data"]["status"]) for m in updates])
        assert all(run == runs[0] for run in runs), runs


def _final_states(truth: OrderTruth, purged_ok: bool) -> set[tuple[str, Decimal]]:
    states = {exchange_final(truth)}
    if purged_ok and truth.status in ("CANCELED", "EXPIRED") and truth.executed_qty == 0:
        states.add((OrderStatus.EXPIRED.value, Decimal(0)))  # purged: -2013, see _purged
    return states


def check_no_double_place(traders: list[Trader]) -> None:
    """The exchange holds only orders the service accepted, each once. (An accepted order
    whose request was lost on the way is not there: :func:`differences` checks that we
    recorded it as never placed.)"""
    for trader in traders:
        placed = Counter(t.client_order_id for t in trader.user.truth())
        assert all(n == 1 for n in placed.values()), placed
        assert set(placed) <= {o.client_order_id for o in trader.accepted}


def check_actors_alive(system: TestSystem) -> None:
    for status in system.supervisor.statuses():
        assert status.state == "running", status
        assert status.restarts == 0, status


# ------------------------------------------------------------------ cases

USERS = 3
POLL_INTERVAL = 5.0  # PollPolicy() default, polling mode
RECONCILE = 60.0  # PollPolicy() default reconcile interval while the stream is healthy
FILL_LATENCY = 2.0  # the simulator's MARKET fill latency
RESOLVE = sum(ActorConfig().resolve_delays)  # an unknown outcome's queries by client id
# three -2013 confirmations, one per poll, spanning at least ActorConfig().vanish_after
VANISH = max(3 * POLL_INTERVAL, ActorConfig().vanish_after + POLL_INTERVAL)
QUIET = 180.0  # watched after convergence: nothing may change any more
ORDER = "/fapi/v1/order"
OPEN_ORDERS = "/fapi/v1/openOrders"

Arm = Callable[[TestSystem, TestUser], None]


def fault(
    kind: FaultKind,
    seconds: float = 0.0,
    path: str | None = None,
    count: int = 1,
    *,
    anyone: bool = False,
) -> Arm:
    """Arm ``kind`` for this user's keys (``count`` hits on ``path``, any path if ``None``),
    or with ``anyone`` for whoever comes first."""

    def arm(system: TestSystem, user: TestUser) -> None:
        account = None if anyone else user.api_key
        system.sim.inject(Fault(kind, seconds), path=path, account=account, count=count)

    return arm


def both(*arms: Arm) -> Arm:
    def arm(system: TestSystem, user: TestUser) -> None:
        for one in arms:
            one(system, user)

    return arm


def skew(seconds: float) -> Arm:
    def arm(system: TestSystem, user: TestUser) -> None:
        system.sim.inject(Fault(FaultKind.CLOCK_SKEW, seconds))

    return arm


@dataclass(frozen=True)
class Case:
    name: str
    recovery: float  # seconds the fault may add to POLL_INTERVAL + FILL_LATENCY
    at_start: Arm | None = None  # armed per user before any order
    once: Arm | None = None  # armed once (for the first user) before any order
    before_cancels: Arm | None = None  # armed per user after the fills, before the cancels
    stream: bool = False
    purge: bool = False  # an order may end purged by the exchange (see _purged)
    during: Hook | None = None  # awaited for the first user after the fills, before cancels
    fills_at: float | None = None  # trio seconds from the start: fills wait until then
    sim_options: dict[str, Any] = field(default_factory=dict)
    stream_options: dict[str, Any] = field(default_factory=dict)
    hit: Callable[[TestSystem], bool] = lambda system: fired(system)


def fired(system: TestSystem) -> bool:
    """Every fault armed in the simulator's table hit something (by its own count)."""
    return system.sim.statistics().faults_hit > 0 and system.sim.faults.never_hit() == []


async def run_case(case: Case) -> None:
    """The scenario under ``case``, then every check (see the module doc of the matrix)."""
    async with open_test_system(
        stream=case.stream,
        sim_options={"volatility_scale": 0, **case.sim_options},
        stream_options=case.stream_options or None,
        market_fill_latency=FILL_LATENCY,
        poll=PollPolicy(),
    ) as system:
        start = trio.current_time()
        users = [await system.add_user() for _ in range(USERS)]
        if case.stream:
            for user in users:
                await user.wait_stream()
        for user in users:
            if case.at_start is not None:
                case.at_start(system, user)
        if case.once is not None:
            case.once(system, users[0])

        async def before_fills(system: TestSystem, trader: Trader) -> None:
            if case.fills_at is not None:
                await trio.sleep_until(start + case.fills_at)

        async def before_cancels(system: TestSystem, trader: Trader) -> None:
            if case.before_cancels is not None:
                case.before_cancels(system, trader.user)
            if case.during is not None and trader.user is users[0]:
                await case.during(system, trader)

        traders = await run_trading(
            system, users, before_fills=before_fills, before_cancels=before_cancels
        )
        await _check(system, case, traders)


async def _check(system: TestSystem, case: Case, traders: list[Trader]) -> None:
    bound = POLL_INTERVAL + FILL_LATENCY + case.recovery
    await wait_converged(system, traders, bound, purged_ok=case.purge)
    await trio.sleep(QUIET)
    assert await differences(system, traders, purged_ok=case.purge) == []
    check_sessions(system, traders, purged_ok=case.purge)
    check_no_double_place(traders)
    check_actors_alive(system)
    assert case.hit(system), "the fault never hit"
    if case.stream:
        assert {t.user.status().stream_state for t in traders} == {"healthy"}
