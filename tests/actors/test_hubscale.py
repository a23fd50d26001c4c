"""Streams at scale, the actors' side (issue 10): zombie keys found by evidence, reconcile
polls spread after a drop, start-up ordered and its coverage reported, keepalives spread.

The whole service under MockClock (``open_test_system``, every actor through the hub). The
oracles: the simulator's listenKeys, weight accounting and request record, and what the
users' sessions receive."""

from __future__ import annotations

import collections
import logging
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.actors.test_stream import fill_arrives_at_once, polls
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.sim import Simulator
from tradercoin.exchange.sim.engine import Account
from tradercoin.store import Role
from tradercoin.store.secrets import generate_key
from tradercoin.testing import EPOCH_MS, TestSystem, open_test_system

LISTEN_KEY = "/fapi/v1/listenKey"


async def operator_get(system: TestSystem, path: str) -> str:
    root = await system.store.get_user_by_name("root") or await system.store.create_user(
        "root", "x", Role.OPERATOR
    )
    token = system.service.ctx.tokens.issue(root.id)
    answer = await system.http.get(path, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return answer.text


async def _a_fill_the_key_swallows(system: Any) -> tuple[Any, Any, Any, Any, Any, float]:
    """Alice on a healthy stream with two resting orders; her key turns deaf (the simulator's
    ``stream_zombie``) and the first order fills. Returns (alice, her tab, the two orders,
    the deaf key, when the fill was made)."""
    alice = await system.add_user("alice")
    tab = await alice.open_session()
    await alice.wait_stream()
    first, second = [
        await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000") for _ in range(2)
    ]
    await trio.sleep(7)
    deaf_key = system.sim.listen_key(alice.api_key)
    system.inject("stream_zombie", user=alice)
    hits = system.sim.statistics().faults_hit
    filled_at = trio.current_time()
    system.sim.fill("BTCUSDT", first.exchange_order_id)
    assert system.sim.statistics().faults_hit > hits  # the key swallowed its events
    return alice, tab, first, second, deaf_key, filled_at


async def test_a_zombie_key_is_found_by_the_poll_replaced_and_streams_again(
    autojump_clock: trio.abc.Clock, caplog: pytest.LogCaptureFixture
) -> None:
    async with open_test_system(stream=True) as system:
        alice, tab, first, second, deaf_key, filled_at = await _a_fill_the_key_swallows(system)
        with caplog.at_level(logging.WARNING, logger="tradercoin.actors.user"):
            got = await tab.wait_for_status(first.id, "filled")
            assert got.time > filled_at  # not by the stream: by the reconcile poll
            assert polls(alice, after=filled_at)[0] == got.time
            await alice.wait_stream("down")
        suspect = [r.message for r in caplog.records if "listenKey suspect" in r.message]
        assert len(suspect) == 1 and f"order {first.id} filled" in suspect[0]
        assert alice.status().stream_state == "down"
        await alice.wait_stream()  # the new key confirmed on the same connection
        new_key = system.sim.listen_key(alice.api_key)
        assert new_key is not None and new_key != deaf_key
        hub = system.service.hub
        assert hub is not None
        stats = hub.statistics()
        assert (stats.suspect_keys, stats.suspect_keys_total, stats.keys) == (0, 1, 1)
        rules = system.sim.statistics().connection_rules
        assert rules.attempts_total == 1  # nothing reconnected
        await fill_arrives_at_once(system, tab, second)  # the stream delivers again
        metrics = await operator_get(system, "/metrics")
        assert "tradercoin_stream_suspect_keys_total 1.0" in metrics
        assert "tradercoin_stream_suspect_keys 0.0" in metrics
        assert '"suspect_keys_total":1' in await operator_get(system, "/api/admin/streams")
        assert [u["status"] for u in tab.updates(first.id)].count("filled") == 1


async def test_a_zombie_key_of_a_connection_per_user_is_replaced_too(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The per-user stream (the benchmark's comparison) closes the suspect key and
    reconnects with a new one."""
    async with open_test_system(stream=True, settings={"stream_mode": "per-user"}) as system:
        alice, tab, first, second, deaf_key, filled_at = await _a_fill_the_key_swallows(system)
        assert (await tab.wait_for_status(first.id, "filled")).time > filled_at
        while system.sim.listen_key(alice.api_key) in (None, deaf_key):  # noqa: ASYNC110
            await trio.sleep(0.01)
        await alice.wait_stream()
        await fill_arrives_at_once(system, tab, second)


async def test_an_event_still_in_flight_is_not_evidence(autojump_clock: trio.abc.Clock) -> None:
    """A poll that sees a change the stream delivers two seconds later (within the grace)
    leaves the key alone."""
    async with open_test_system(stream=True) as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        await alice.wait_stream()
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(7)
        system.inject("stream_delay", seconds=2.0, user=alice)
        system.sim.fill("BTCUSDT", order.exchange_order_id)
        filled_at = trio.current_time()
        await trio.sleep(1.0)
        system.service.supervisor.wake(alice.user_id)  # a poll while the event is on its way
        got = await tab.wait_for_status(order.id, "filled")
        assert got.time == filled_at + 1.0 and set(polls(alice, after=filled_at)) == {got.time}
        await trio.sleep(5)
        assert system.sim.faults.never_hit() == []  # the event was delayed
        hub = system.service.hub
        assert hub is not None and hub.statistics().suspect_keys_total == 0
        assert alice.status().stream_state == "healthy"


async def test_after_a_drop_the_reconcile_polls_are_spread_within_the_budget(
    autojump_clock: trio.abc.Clock,
) -> None:
    """40 users on one connection with a budget of 120 weight a minute (limit 108), 8 of
    them filled while the connection is down. Each user's reconcile poll after the drop
    takes a slot of the governor's (``reconcile_at``) instead of all 40 polling at once:
    no 5-second window holds more than a few, no request waits for the budget, the
    simulator never counts more than the limit in a minute, and every fill made while the
    connection was down reaches its session once."""
    async with open_test_system(stream=True, budget_per_minute=120) as system:
        users = [await system.add_user(f"user{n}") for n in range(40)]
        tabs = [await user.open_session() for user in users]
        for user in users:
            await user.wait_stream()
        orders = []
        for user in users:  # 1.5 s apart, so the regular reconcile polls are spread too
            orders.append(await user.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000"))
            await trio.sleep(1.5)
        await trio.sleep(600)  # start-up's listenKeys and reconcile polls are long spent
        governor, hub = system.governor, system.service.hub
        assert hub is not None
        waits = governor.statistics().waits
        dropped_at = trio.current_time()
        system.inject("disconnect")  # every connection at once
        filled = list(zip(tabs, orders, strict=True))[::5]
        for _, order in filled:
            system.sim.fill("BTCUSDT", order.exchange_order_id)
        for tab, order in filled:
            await tab.wait_for_status(order.id, "filled")
        await trio.sleep(120)
        assert hub.statistics().drops == 1  # the fault fired
        for tab, order in filled:
            assert [u["status"] for u in tab.updates(order.id)].count("filled") == 1
        assert system.sim.statistics().weight_peak_minute <= governor.limit
        assert governor.statistics().waits == waits
        polled = [
            r.time - dropped_at
            for r in system.requests
            if r.path == "/fapi/v1/openOrders" and r.time >= dropped_at
        ]
        per_5_seconds = collections.Counter(int(t // 5) for t in polled)
        assert max(per_5_seconds.values()) <= 10, sorted(per_5_seconds.items())  # not 40


async def test_start_up_puts_users_with_orders_on_the_stream_first_and_reports_coverage(
    autojump_clock: trio.abc.Clock, tmp_path: Path
) -> None:
    """The service restarts (same database, the exchange runs on) with 60 users, 20 of them
    with a resting order: those 20 get their listenKeys first; the hub reports the time to
    full coverage; every key is then PUT every 30 minutes, the PUTs spread evenly."""
    sim = Simulator(clock=FixedEpochClock(EPOCH_MS), seed=0)
    options: dict[str, Any] = {
        "stream": True,
        "database_url": f"sqlite:///{tmp_path}/start.db",
        "settings": {"master_key": generate_key()},
        "sim": sim,
    }
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        async with open_test_system(**options) as system:
            users = [await system.add_user(f"user{n}") for n in range(60)]
            busy = {u.api_key for u in users[1::3]}
            for user in users:
                if user.api_key in busy:
                    await user.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        created: list[str] = []  # the exchange's record: whose listenKey POST came when
        create_key = sim.streams.create_key

        def record(account: Account) -> str:
            created.append(account.api_key)
            return create_key(account)

        sim.streams.create_key = record  # type: ignore[method-assign]
        started = trio.current_time()
        async with open_test_system(**options) as system:
            hub = system.service.hub
            assert hub is not None
            while hub.statistics().coverage_seconds is None:  # noqa: ASYNC110
                await trio.sleep(0.01)
            assert [key in busy for key in created] == [True] * 20 + [False] * 40
            last_creation = max(
                r.time for r in system.requests if r.path == LISTEN_KEY and r.method == "POST"
            )
            coverage = hub.statistics().coverage_seconds
            assert coverage is not None and last_creation - started <= coverage
            assert all(s.stream_state == "healthy" for s in system.service.supervisor.statuses())
            assert f'"coverage_seconds":{coverage}' in await operator_get(
                system, "/api/admin/streams"
            )
            assert "tradercoin_stream_coverage_seconds" in await operator_get(system, "/metrics")
            await trio.sleep(3600)
            puts = [
                r.time - started
                for r in system.requests
                if r.path == LISTEN_KEY and r.method == "PUT" and r.time - started >= 1800
            ]
            assert len(puts) == 60  # each key once in the second half hour
            per_5_minutes = collections.Counter(int(t // 300) for t in puts)
            assert sorted(per_5_minutes) == list(range(6, 12))
            assert all(9 <= n <= 11 for n in per_5_minutes.values()), per_5_minutes
        nursery.cancel_scope.cancel()
