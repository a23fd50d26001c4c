"""The user-data stream: events pushed at once, drops reconciled, listenKey upkeep."""

from __future__ import annotations

import itertools
import logging

import pytest
import trio

from tradercoin.orders import Order
from tradercoin.testing import TestSession, TestSystem, TestUser, open_test_system

POLLS = ("/fapi/v1/openOrders", "/fapi/v1/order")


async def fill_arrives_at_once(system: TestSystem, tab: TestSession, order: Order) -> None:
    """Fill ``order`` now; the session must get ``filled`` at this very instant (the stream)."""
    filled_at = trio.current_time()
    system.sim.fill("BTCUSDT", order.exchange_order_id)
    got = await tab.wait_for_status(order.id, "filled")
    assert got.time == filled_at


def polls(user: TestUser, after: float) -> list[float]:
    return [
        r.time for r in user.requests() if r.path in POLLS and r.method == "GET" and r.time > after
    ]


async def test_a_stream_event_reaches_the_session_with_no_poll(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(stream=True) as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        await alice.wait_stream()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        placed_at = trio.current_time()
        await trio.sleep(7)
        await fill_arrives_at_once(system, tab, order)
        assert polls(alice, after=placed_at) == []


async def test_while_the_stream_is_healthy_polling_relaxes_to_the_reconcile_interval(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(stream=True) as system:
        alice = await system.add_user("alice")
        await alice.wait_stream()
        await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        start = trio.current_time()
        await trio.sleep(300)
        times = polls(alice, after=start + 1)
        gaps = {round(b - a, 3) for a, b in itertools.pairwise(times)}
        assert gaps == {60.0}


async def test_a_fill_during_a_drop_arrives_by_reconciliation_exactly_once(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(stream=True) as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        await alice.wait_stream()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        # the stream cannot come back for a while: listenKey creation fails
        system.inject("unavailable", path="/fapi/v1/listenKey", user=alice, count=None)
        system.inject("disconnect", user=alice)
        await trio.sleep(0.5)
        dropped_at = trio.current_time()
        system.sim.fill("BTCUSDT", order.exchange_order_id)
        got = await tab.wait_for_status(order.id, "filled")
        assert got.time - dropped_at <= 5.0  # by the user's interval, not the 60 s reconcile
        system.sim.clear_faults()
        await alice.wait_stream()
        await trio.sleep(120)
        assert [u["status"] for u in tab.updates(order.id)].count("filled") == 1


async def test_an_expired_listen_key_is_recreated_and_events_flow_again(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(stream=True) as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        await alice.wait_stream()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        created = len(alice.requests("/fapi/v1/listenKey"))
        system.inject("listen_key_expired", user=alice)
        await trio.sleep(1)
        await alice.wait_stream()
        assert len(alice.requests("/fapi/v1/listenKey")) > created
        await trio.sleep(120)
        await fill_arrives_at_once(system, tab, order)


PER_USER = {"stream_mode": "per-user"}  # the connection-per-user runner (actors/stream.py)


async def test_the_listen_key_is_kept_alive_every_30_minutes(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(stream=True, settings=PER_USER) as system:
        alice = await system.add_user("alice")
        await alice.wait_stream()
        start = trio.current_time()
        await trio.sleep(3 * 3600 + 1)
        puts = [r.time - start for r in alice.requests("/fapi/v1/listenKey") if r.method == "PUT"]
        assert [round(t) for t in puts] == [1800 * k for k in range(1, 7)]
        [status] = system.supervisor.statuses()
        assert status.stream_state == "healthy"


async def test_the_connection_is_rotated_before_24h_without_a_reported_drop(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(
        stream=True, stream_options={"rotate_after": 600}, settings=PER_USER
    ) as system:
        alice = await system.add_user("alice")
        await alice.wait_stream()
        await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        start = trio.current_time()
        await trio.sleep(3600)
        times = polls(alice, after=start + 1)
        assert {round(b - a, 3) for a, b in itertools.pairwise(times)} == {60.0}
        posts = [r for r in alice.requests("/fapi/v1/listenKey") if r.method == "POST"]
        assert len(posts) == 1  # the same key on every new connection
        assert alice.status().stream_state == "healthy"


async def test_a_silent_connection_is_rotated_by_the_watchdog(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="tradercoin.actors.stream")
    options = {"silence_after": 30, "watchdog": 120}
    async with open_test_system(stream=True, stream_options=options, settings=PER_USER) as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        await alice.wait_stream()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(600)  # an idle stream carries no frames: it looks dead
        rotations = [r for r in caplog.records if "silent for 120s: rotated" in r.message]
        assert 3 <= len(rotations) <= 5  # every 120-150 s (silence is checked every 30 s)
        assert alice.status().stream_state == "healthy"
        await fill_arrives_at_once(system, tab, order)


async def test_a_stream_event_is_not_held_up_by_a_poll_waiting_for_budget(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(stream=True, budget_per_minute=100) as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        await alice.wait_stream()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(61)
        await system.governor.spend(system.governor.limit)  # others took the whole minute
        system.supervisor.wake(alice.user_id)  # a poll is due now, but has to wait
        await trio.sleep(1)
        await fill_arrives_at_once(system, tab, order)
        assert polls(alice, after=trio.current_time() - 1) == []
