"""The actor flows end to end through the harness, under MockClock autojump."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest
import trio

from tradercoin.actors import OrderNotFoundError, OrderRejected
from tradercoin.actors.user import UserActor
from tradercoin.testing import open_test_system


async def test_market_order_reaches_both_sessions_filled_within_latency_plus_interval(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab1 = await alice.open_session()
        tab2 = await alice.open_session()
        start = trio.current_time()
        order = await alice.place("BTCUSDT", "BUY", "MARKET", "0.01")
        assert order.status == "new"
        for tab in (tab1, tab2):
            got = await tab.wait_for_status(order.id, "filled")
            assert got.time - start <= 2.0 + 5.0
        statuses = [u["status"] for u in tab1.updates(order.id)]
        assert statuses == ["pending", "new", "filled"]
        assert tab1.messages() == tab2.messages()


async def test_place_meeting_a_503_unknown_outcome_ends_with_exactly_one_order(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        system.inject("unknown_error", path="/fapi/v1/order", user=alice)
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        assert order.status == "new"
        assert order.exchange_order_id is not None
        [truth] = alice.truth()
        assert truth.client_order_id == order.client_order_id
        placed = [r for r in alice.requests("/fapi/v1/order") if r.method == "POST"]
        assert len(placed) == 1
        await tab.wait_for_status(order.id, "new")


async def test_unknown_outcome_waits_out_the_visibility_delay_and_never_places_twice(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        system.inject("visibility_delay", seconds=1.0, user=alice, path="/fapi/v1/order")
        system.inject("unknown_error", path="/fapi/v1/order", user=alice)
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        assert order.status == "new"
        assert len(alice.truth()) == 1
        queries = [r for r in alice.requests("/fapi/v1/order") if r.method == "GET"]
        assert [r.status for r in queries][-1] == 200
        assert len(queries) >= 2  # the first one(s) met -2013 while the order was invisible


async def test_an_order_the_exchange_refuses_is_stored_rejected_with_its_reason(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        with pytest.raises(OrderRejected) as caught:
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.0000001", price="1000")
        assert caught.value.code is not None and caught.value.code < 0
        got = await tab.wait_for(lambda m: m["data"]["status"] == "rejected")
        update = got.message["data"]
        assert str(caught.value.code) in update["note"]
        assert alice.truth() == []


async def test_cancel_goes_through_the_exchange(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        canceled = await alice.cancel(order.id)
        assert canceled.status == "canceled"
        assert [t.status for t in alice.truth()] == ["CANCELED"]
        await tab.wait_for_status(order.id, "canceled")


async def test_cancel_of_an_order_that_filled_meanwhile_resolves_to_filled(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        system.sim.fill("BTCUSDT", order.exchange_order_id)
        result = await alice.cancel(order.id)
        assert result.status == "filled"
        assert result.filled_quantity == Decimal("0.2")


async def test_cancel_of_another_users_order_is_not_found(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        bob = await system.add_user("bob")
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        with pytest.raises(OrderNotFoundError):
            await bob.cancel(order.id)


async def test_an_order_invisible_for_longer_than_the_confirmations_is_marked_vanished(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        system.inject("visibility_delay", seconds=60.0, user=alice, path="/fapi/v1/order")
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        got = await tab.wait_for_status(order.id, "expired")
        assert "-2013" in got.message["data"]["note"]
        misses = [r.time for r in alice.requests("/fapi/v1/order") if r.method == "GET"]
        assert len(misses) >= 3 and misses[-1] - misses[0] >= 30.0  # answers spanning 30 s


async def test_an_order_visible_after_two_misses_is_not_marked_vanished(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        system.inject("visibility_delay", seconds=12.0, user=alice, path="/fapi/v1/order")
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(30)
        [status] = [s for s in system.supervisor.statuses() if s.user_id == alice.user_id]
        assert status.pending_orders == 1
        stored = await system.store.get_order(alice.user_id, order.id)
        assert stored is not None and stored.status == "new"


async def test_the_readme_example(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_system(stream=False) as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        system.sim.fill("BTCUSDT", order.exchange_order_id)
        got = await tab.wait_for_status(order.id, "filled")
        assert got.time <= 5.0
        assert [r.path for r in alice.requests()][-1] == "/fapi/v1/userTrades"


async def test_logs_tell_the_story_and_never_show_a_secret(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        await alice.open_session()
        order = await alice.place("BTCUSDT", "BUY", "MARKET", "0.01")
        await trio.sleep(10)
        creds = await system.store.get_credentials(alice.user_id)
    assert creds is not None
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert creds.api_secret not in text and creds.api_key not in text
    assert f"order {order.id} status changed: new -> filled" in text
    assert "ORDER MONITOR - user 1: checking 1 pending orders" in text
    assert f"WebSocket notification sent to user {alice.user_id}" in text
    assert "order monitor check completed in" in text


async def test_actor_statistics_count_polls_and_sessions(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        await alice.open_session()
        await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(20)
        actor = alice.actor.actor
        assert isinstance(actor, UserActor)
        stats = actor.statistics()
        assert (stats.pending_orders, stats.sessions, stats.state) == (1, 1, "running")
        assert stats.polls == len(alice.requests("/fapi/v1/openOrders")) == 4
        assert stats.cycle_weight > 0 and not stats.waiting_for_budget
