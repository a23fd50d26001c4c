"""The harness is the service: REST and /ws of the real app, in-process, under MockClock."""

from __future__ import annotations

from decimal import Decimal

import trio

from tradercoin.store import Role
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


async def test_the_service_streams_every_user_through_one_hub_and_operators_see_it(
    autojump_clock: trio.abc.Clock,
) -> None:
    """Issue 10: users' listenKeys share the hub's connections (the exchange's record
    counts them); operators read them on /api/admin/streams."""
    async with open_test_system(stream=True) as system:
        users = [await system.add_user(f"user{n}") for n in range(30)]
        for user in users:
            await user.wait_stream()
        rules = system.sim.statistics().connection_rules
        assert rules.connections_open == 1 and rules.refusals == 0
        root = await system.store.create_user("root", "x", Role.OPERATOR)
        token = system.service.ctx.tokens.issue(root.id)
        answer = await system.http.get(
            "/api/admin/streams", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 200, answer.text
        hub = answer.json()["data"]["hub"]
        assert (hub["connections"], hub["keys"], hub["keys_down"]) == (1, 30, 0)
        await trio.sleep(5)  # past the reconcile polls that streams coming up ask for
        tab = await users[7].open_session()
        placed_at = trio.current_time()
        order = await users[7].place("BTCUSDT", "BUY", "MARKET", "0.01")
        got = await tab.wait_for_status(order.id, "filled")
        assert got.time - placed_at <= 2.0 + 0.1  # the fill latency: pushed by the stream


async def test_account_updates_reach_the_tabs_through_the_hub(
    autojump_clock: trio.abc.Clock,
) -> None:
    """The hub routes ACCOUNT_UPDATE to the key's owner too: balances after a fill reach
    the user's tabs as {"type": "account"}, matching the exchange's own record."""
    async with open_test_system(stream=True) as system:
        alice = await system.add_user("alice")
        await alice.wait_stream()
        tab = await alice.open_session()
        await alice.place("BTCUSDT", "BUY", "MARKET", "0.01")
        got = await tab.wait_for(lambda m: m["type"] == "account")
        truth = system.sim.account_view(alice.api_key)
        [usdt] = [b for b in got.message["balances"] if b["asset"] == "USDT"]
        assert Decimal(usdt["wallet_balance"]) == truth.wallet  # the fee was paid
        [position] = got.message["positions"]
        assert Decimal(position["amount"]) == Decimal("0.01")
        assert system.service.hub is not None
        assert system.service.hub.statistics().connections == 1
