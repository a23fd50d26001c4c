"""Sessions: replay on attach, lagging and closed sessions, alerts on bad keys."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tradercoin.actors import ActorUnavailable
from tradercoin.exchange.protocol import Credentials
from tradercoin.testing import open_test_system


async def test_attach_since_replays_the_missed_events_then_goes_live_without_gap(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        orders = [
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=p) for p in ("1000", "1100")
        ]
        latest = await system.store.latest_seq(alice.user_id)
        assert latest == 4  # pending and new, twice
        tab = await alice.open_session(since=1)
        await alice.cancel(orders[0].id)
        await tab.wait_for_status(orders[0].id, "canceled")
        seqs = [m["seq"] for m in tab.messages("order_update")]
        assert seqs == [2, 3, 4, 5]


async def test_attach_without_since_gets_only_new_events(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        tab = await alice.open_session()
        await alice.cancel(order.id)
        await tab.wait_for_status(order.id, "canceled")
        assert [m["seq"] for m in tab.messages()] == [3]


async def test_a_lagging_session_is_dropped_with_resync_and_others_are_untouched(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        fast_tab = await alice.open_session()
        send, slow = trio.open_memory_channel[dict[str, Any]](3)
        await alice.actor.attach(send)
        for price in ("1000", "1100", "1200"):
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price=price)
        received = [m async for m in slow]  # ends: the actor closed the channel
        assert [m["type"] for m in received] == ["order_update", "order_update", "resync"]
        assert received[-1]["seq"] == received[1]["seq"] == 2
        await fast_tab.wait_for(lambda m: m["seq"] == 6)
        assert len(alice.actor.sessions) == 1


async def test_a_closed_session_is_removed(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        send, receive = trio.open_memory_channel[dict[str, Any]](8)
        await alice.actor.attach(send)
        receive.close()
        await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        assert len(alice.actor.sessions) == 0
        assert alice.actor.sessions.statistics().dropped_gone == 1


async def test_detach_closes_the_channel(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        send, receive = trio.open_memory_channel[dict[str, Any]](8)
        session_id = await alice.actor.attach(send)
        await alice.actor.detach(session_id)
        with pytest.raises(trio.EndOfChannel):
            await receive.receive()


async def test_bad_keys_park_the_actor_alert_the_user_and_new_keys_resume_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_session()
        await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        [creds] = [await system.store.get_credentials(alice.user_id)]
        assert creds is not None
        await system.store.set_credentials(alice.user_id, Credentials(creds.api_key, "x" * 64))
        await system.supervisor.credentials_changed(alice.user_id)
        alert = await tab.wait_for(lambda m: m["type"] == "alert")
        assert alert.message["kind"] == "credentials_rejected"
        assert "x" * 8 not in repr(alert.message)
        assert alice.status().state == "parked"
        parked_at = trio.current_time()
        await trio.sleep(60)
        assert [r for r in alice.requests() if r.time > parked_at] == []
        with pytest.raises(ActorUnavailable):
            await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await system.store.set_credentials(alice.user_id, creds)
        resumed_at = trio.current_time()
        await system.supervisor.credentials_changed(alice.user_id)
        await trio.sleep(6)  # the poll at once, then one after the 5 s interval
        assert alice.status().state == "running"
        assert [r.status for r in alice.requests() if r.time >= resumed_at] == [200, 200]


async def test_attach_since_an_event_no_longer_kept_gets_a_resync_then_live_events(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        await trio.sleep(10)
        assert await system.store.prune_events(system.clock.now_ms()) == 2
        tab = await alice.open_session(since=0)
        await alice.cancel(order.id)
        await tab.wait_for_status(order.id, "canceled")
        assert [(m["type"], m["seq"]) for m in tab.messages()] == [
            ("resync", 2),
            ("order_update", 3),
        ]
