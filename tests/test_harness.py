"""The harness is the service: REST and /ws of the real app, in-process, under MockClock."""

from __future__ import annotations

from decimal import Decimal

import trio

from tradercoin.testing import open_test_system


async def test_place_through_the_api_and_watch_the_push_on_ws(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_ws()
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
        answer = await system.http.post("/api/orders", json=order, headers=alice.headers)
        assert answer.status_code == 201, answer.text
        placed = answer.json()["data"]
        got = await tab.wait_for_status(placed["id"], "filled")
        assert got.time <= 2.0 + 5.0  # fill latency + one poll interval
        listed = (await system.http.get("/api/orders", headers=alice.headers)).json()
        assert listed["data"][0]["status"] == "filled" and listed["total"] == 1
        fills = await system.http.get(f"/api/orders/{placed['id']}/fills", headers=alice.headers)
        assert [Decimal(f["quantity"]) for f in fills.json()["data"]] == [Decimal("0.01")]


async def test_a_ws_resume_replays_what_was_missed(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        order = await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        late = await alice.open_ws(since=0)
        await late.wait_for_status(order.id, "new")
        assert [m["seq"] for m in late.messages("order_update")] == [1, 2]
        await late.send({"type": "ping"})
        await late.wait_for(lambda m: m["type"] == "pong")


async def test_retention_runs_in_the_harness_as_in_production(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system(settings={"event_retention": 3600.0}) as system:
        alice = await system.add_user("alice")
        await alice.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000")
        assert await system.store.events_since(alice.user_id, 0)
        await trio.sleep(2 * 3600)
        assert await system.store.events_since(alice.user_id, 0) == []
