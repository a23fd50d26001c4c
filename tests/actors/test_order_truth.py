"""Issue 9 regressions: what a user is shown of an order is what the exchange did with it.

The oracle is the simulator's record (its orders and trades per account) and what the
sessions received, never our own stored events.
"""

from __future__ import annotations

import dataclasses
import itertools
from decimal import Decimal
from typing import Any

import pytest
import trio

from tradercoin.actors.messages import ActorUnavailable, Stop, StreamUpdates
from tradercoin.orders import (
    ExchangeUpdate,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    new_order,
)
from tradercoin.testing import TestSession, TestUser, open_test_system

RANK = {"pending": 0, "new": 1, "partially_filled": 2}


def never_went_back(tab: TestSession, order_id: int | None) -> bool:
    """No update of the order lowered its executed quantity or its status's progress."""
    seen = [
        (RANK.get(u["status"], 3), Decimal(u["filled_quantity"])) for u in tab.updates(order_id)
    ]
    return all(a[0] <= b[0] and a[1] <= b[1] for a, b in itertools.pairwise(seen))


def exchange_fills(user: TestUser, order: Order) -> list[tuple[Any, ...]]:
    """The exchange's trades of ``order``, as (trade id, price, qty, fee, pnl, maker)."""
    trades = user.system.sim.trades(user.api_key)
    return sorted(
        (t.id, t.price, t.qty, t.commission, t.realized_pnl, t.maker)
        for t in trades
        if t.order_id == order.exchange_order_id
    )


def our_fills(fills: list[Fill]) -> list[tuple[Any, ...]]:
    return sorted(
        (f.trade_id, f.price, f.quantity, f.commission, f.realized_pnl, f.maker) for f in fills
    )


def snapshot(order: Order, status: str, executed: str, at: int, *fills: Fill) -> ExchangeUpdate:
    assert order.exchange_order_id is not None
    return ExchangeUpdate(
        symbol=order.symbol,
        exchange_order_id=order.exchange_order_id,
        client_order_id=order.client_order_id,
        status=OrderStatus.from_exchange(status),
        executed_qty=Decimal(executed),
        avg_price=Decimal(1000) if Decimal(executed) else None,
        update_time=at,
        fills=fills,
    )


def trade(order: Order, trade_id: int, qty: str) -> Fill:
    assert order.exchange_order_id is not None
    return Fill(
        symbol=order.symbol,
        trade_id=trade_id,
        exchange_order_id=order.exchange_order_id,
        price=Decimal(1000),
        quantity=Decimal(qty),
        commission=Decimal("0.04"),
        commission_asset="USDT",
        time=1,
    )


async def test_a_stale_update_after_filled_in_one_batch_stores_and_pushes_filled_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Defect 1: [FILLED, stale PARTIALLY_FILLED, FILLED again] in one stream batch used to
    store partially_filled after filled and push both, and the duplicate twice."""
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        t = order.exchange_update_time
        filled = snapshot(order, "FILLED", "0.2", t + 20, trade(order, 2, "0.1"))
        stale = snapshot(order, "PARTIALLY_FILLED", "0.1", t + 10, trade(order, 1, "0.1"))
        alice.actor.tell(StreamUpdates((filled, stale, filled)))
        await tab.wait_for_status(order.id, "filled")
        await trio.sleep(1)
        assert [u["status"] for u in tab.updates(order.id)] == ["pending", "new", "filled"]
        stored = await system.store.get_order(alice.user_id, order.id or 0)
        assert stored is not None and stored.status == "filled"
        assert [f.trade_id for f in await alice.fills(order.id or 0)] == [1, 2]


async def test_a_trade_whose_snapshot_loses_the_merge_is_still_kept(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Defect 2: a poll saw the partial fill first; the stream event of the same trade has an
    equal merge key and loses, and its trade used to be dropped for good."""
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        system.sim.fill("BTCUSDT", order.exchange_order_id or 0, Decimal("0.05"))
        seen = await tab.wait_for_status(order.id, "partially_filled")  # the poll's
        truth = system.sim.trades(alice.api_key)[0]
        late = snapshot(
            order,
            "PARTIALLY_FILLED",
            "0.05",
            int(seen.message["data"]["exchange_update_time"]),
            dataclasses.replace(trade(order, truth.id, "0.05"), price=truth.price),
        )
        alice.actor.tell(StreamUpdates((late,)))
        await trio.sleep(1)
        assert [f.trade_id for f in await alice.fills(order.id or 0)] == [truth.id]
        assert [u["status"] for u in tab.updates(order.id)].count("partially_filled") == 1


async def test_every_terminal_order_ends_holding_exactly_the_exchanges_trades(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Partial fills seen only by polls (no stream), then the rest: the order's fills are the
    exchange's trades, fetched because the known ones did not add up."""
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.3", price="1000")
        for qty in ("0.1", "0.1"):
            system.sim.fill("BTCUSDT", order.exchange_order_id or 0, Decimal(qty))
            await trio.sleep(6)
        canceled = await alice.cancel(order.id or 0)
        assert canceled.status == "canceled" and canceled.filled_quantity == Decimal("0.2")
        await trio.sleep(6)
        assert our_fills(await alice.fills(order.id or 0)) == exchange_fills(alice, order)
        assert len(exchange_fills(alice, order)) == 2
        assert never_went_back(tab, order.id)


async def test_a_stream_fill_is_kept_with_its_pnl_and_maker_flag(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(stream=True) as system:
        alice = await system.add_user("alice")
        await alice.wait_stream()
        tab = await alice.open_session()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(1)  # past the reconcile poll that a stream coming up asks for
        system.sim.fill("BTCUSDT", order.exchange_order_id or 0)
        await tab.wait_for_status(order.id, "filled")
        assert our_fills(await alice.fills(order.id or 0)) == exchange_fills(alice, order)
        assert alice.requests("/fapi/v1/userTrades") == []  # the stream brought the trade


async def test_an_unknown_outcome_being_resolved_never_holds_up_the_actor(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Defect 6: the look-up of an unknown outcome (seconds of back-off) used to sleep
    inside the actor's loop; a cancel of another order waited behind it."""
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        resting = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        system.inject("visibility_delay", seconds=5.0, user=alice, path="/fapi/v1/order")
        system.inject("unknown_error", path="/fapi/v1/order", user=alice)
        done: dict[str, float] = {}

        async def place() -> None:
            placed = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="900")
            assert placed.status == "new"
            done["place"] = trio.current_time()

        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(place)
            await trio.sleep(0.1)
            canceled = await alice.cancel(resting.id or 0)
            done["cancel"] = trio.current_time()
        assert canceled.status == "canceled"
        assert done["cancel"] - start < 1.0 < done["place"] - start
        posts = [r for r in alice.requests("/fapi/v1/order") if r.method == "POST"]
        assert len(posts) == 2 and len(alice.truth()) == 2  # never placed twice


async def test_cancel_all_cancels_every_open_order_of_the_symbol_and_sessions_see_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        mine = [
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=str(p)) for p in (900, 950)
        ]
        other = await alice.place("ETHUSDT", "BUY", "LIMIT", "1", price="100")
        assert await alice.cancel_all("BTCUSDT") == 2
        for order in mine:
            await tab.wait_for_status(order.id, "canceled")
        truth = {t.client_order_id: t.status for t in alice.truth()}
        assert [truth[o.client_order_id] for o in mine] == ["CANCELED", "CANCELED"]
        assert truth[other.client_order_id] == "NEW"


async def test_a_replay_longer_than_the_session_holds_is_a_resync_not_a_history(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Defect 8: a resume from 0 loaded the user's whole history into one list in the
    actor; now a session further behind than its channel holds is told to resync."""
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        for _ in range(6):
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        latest = await system.store.latest_seq(alice.user_id)
        small = await alice.open_session(since=0, capacity=8)
        await trio.sleep(0.1)
        assert [m["type"] for m in small.messages()] == ["resync"]
        assert small.messages()[0]["seq"] == latest
        roomy = await alice.open_session(since=latest - 3, capacity=8)
        await trio.sleep(0.1)
        assert [m["seq"] for m in roomy.messages()] == [latest - 2, latest - 1, latest]


def _far(system: Any, below: str = "0.97") -> str:
    mark = system.sim.mark("BTCUSDT")
    return str((mark * Decimal(below)).quantize(Decimal("0.1")))


async def test_two_of_our_users_trading_with_each_other_both_keep_their_fill(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Defect 3: both sides of a trade carry the same trade id; fills unique by (symbol,
    trade id) silently dropped the second user's."""
    async with open_test_system(stream=True) as system:
        alice, bob = await system.add_user("alice"), await system.add_user("bob")
        price = _far(system)
        bid = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=price)
        ask = await bob.place("BTCUSDT", "SELL", "LIMIT", "0.2", price=price)
        await trio.sleep(6)
        [match] = system.sim.matches()
        for user, order in ((alice, bid), (bob, ask)):
            stored = await system.store.get_order(user.user_id, order.id or 0)
            assert stored is not None and stored.status == "filled"
            assert our_fills(await user.fills(order.id or 0)) == exchange_fills(user, order)
        [mine], [theirs] = await alice.fills(bid.id or 0), await bob.fills(ask.id or 0)
        assert mine.trade_id == theirs.trade_id and (mine.maker, theirs.maker) == (True, False)
        assert match is not None


@pytest.mark.parametrize("kind", ["http_500", "http_502", "http_504"])
async def test_a_server_error_after_the_place_never_shows_a_live_order_as_rejected(
    autojump_clock: trio.abc.Clock, kind: str
) -> None:
    """Defect 4: a 5xx on a place was taken as "not sent" and the order marked rejected
    (terminal) while it was live at the exchange."""
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        system.inject(kind, path="/fapi/v1/order", user=alice)
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=_far(system))
        [truth] = alice.truth()
        assert truth.status == "NEW" and order.status == "new"
        assert order.exchange_order_id == truth.order_id
        assert "rejected" not in [u["status"] for u in tab.updates(order.id)]
        posts = [r for r in alice.requests("/fapi/v1/order") if r.method == "POST"]
        assert len(posts) == 1


async def test_one_accounts_order_rate_limit_slows_only_that_account(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Defect 5: a -1015 went to the shared governor and paused every user's places and
    polls; now only that account waits, and it is slowed before the exchange refuses."""
    async with open_test_system() as system:
        alice, bob = await system.add_user("alice"), await system.add_user("bob")
        system.sim.set_order_limits(alice.api_key, per_10s=2, per_minute=100)
        price = _far(system)
        for _ in range(2):
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=price)
        with pytest.raises(ActorUnavailable) as refused:
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=price)
        assert refused.value.retry_after is not None and 0 < refused.value.retry_after <= 10
        with pytest.raises(ActorUnavailable):  # paused here: the exchange is not asked again
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=price)
        posts = [r for r in alice.requests("/fapi/v1/order") if r.method == "POST"]
        assert [r.status for r in posts] == [200, 200, 429]
        assert system.governor.paused_until <= trio.current_time()
        theirs = await bob.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=price)
        assert theirs.status == "new"
        await trio.sleep(refused.value.retry_after)
        again = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=price)
        assert again.status == "new" and len(alice.truth()) == 3


async def test_the_ack_of_a_limit_order_is_never_taken_as_final(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Defect 9: Binance ACKs every order as NEW; an IOC that cannot fill ends EXPIRED and
    a crossing LIMIT ends FILLED only by query or stream."""
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        ioc = await alice.place(
            "BTCUSDT", "BUY", "LIMIT", "0.2", price=_far(system), time_in_force="IOC"
        )
        crossing = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=_far(system, "1.03"))
        assert (ioc.status, crossing.status) == ("new", "new")  # what the ACK says
        await tab.wait_for_status(ioc.id, "expired")
        await tab.wait_for_status(crossing.id, "filled")
        truth = {t.client_order_id: t.status for t in alice.truth()}
        assert truth[ioc.client_order_id] == "EXPIRED"
        assert truth[crossing.client_order_id] == "FILLED"
        assert never_went_back(tab, ioc.id) and never_went_back(tab, crossing.id)


async def test_an_order_saved_but_never_sent_is_settled_in_a_poll_span_while_the_stream_is_up(
    autojump_clock: trio.abc.Clock,
) -> None:
    """A crash between saving an order and sending it leaves it ``pending`` in the store and
    unknown to the exchange; with the stream healthy, polls were 60 s apart and its three
    vanish confirmations took minutes (the crash test's 90 s settle timed out)."""
    async with open_test_system(stream=True) as system:
        alice = await system.add_user("alice")
        change = new_order(
            user_id=alice.user_id,
            symbol="BTCUSDT",
            side=Side.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal("0.2"),
            price=Decimal(_far(system)),
            time_in_force=TimeInForce.GTC,
            client_order_id="tcneversent",
            now=system.clock.now_ms(),
        )
        [saved] = await system.store.apply([change])
        alice.actor.tell(Stop())
        await alice.actor.done.wait()
        await system.supervisor.credentials_changed(alice.user_id)  # a new actor loads it
        await alice.wait_stream()
        start = trio.current_time()
        tab = await alice.open_session(since=0)
        got = await tab.wait_for_status(saved.order.id, "expired")
        assert got.time - start <= 30.0 + 5.0 + 1.0  # the -2013s' 30 s span, one interval
        assert alice.truth() == []
