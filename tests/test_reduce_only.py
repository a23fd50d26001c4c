"""Reduce-only on entry (issue 12): through the real app to the simulator, and refused by the
simulator as Binance refuses it when it would grow the position."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import trio

from tradercoin.testing import TestSystem, TestUser, open_test_system


async def _post(system: TestSystem, user: TestUser, **order: Any) -> dict[str, Any]:
    answer = await system.http.post("/api/orders", json=order, headers=user.headers)
    assert answer.status_code == 201, answer.text
    placed: dict[str, Any] = answer.json()["data"]
    return placed


async def test_a_reduce_only_order_reaches_the_exchange_as_reduce_only(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_ws()
        market = {"symbol": "BTCUSDT", "type": "MARKET"}
        opened = await _post(system, alice, side="BUY", quantity="0.02", **market)
        assert opened["reduce_only"] is False
        await tab.wait_for_status(opened["id"], "filled")
        closing = await _post(
            system, alice, side="SELL", quantity="0.01", reduce_only=True, **market
        )
        assert closing["reduce_only"] is True
        await tab.wait_for_status(closing["id"], "filled")
        truth = {t.client_order_id: t for t in alice.truth()}
        assert truth[opened["client_order_id"]].reduce_only is False
        assert truth[closing["client_order_id"]].reduce_only is True
        [position] = [
            p for p in system.sim.account_view(alice.api_key).positions if p.symbol == "BTCUSDT"
        ]
        assert Decimal(position.amount) == Decimal("0.01")
        listed = (await system.http.get("/api/orders", headers=alice.headers)).json()["data"]
        assert {o["id"]: o["reduce_only"] for o in listed} == {
            opened["id"]: False,
            closing["id"]: True,
        }


async def test_a_reduce_only_order_that_would_grow_the_position_is_rejected(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        tab = await alice.open_ws()
        order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
        answer = await system.http.post(
            "/api/orders", json={**order, "reduce_only": True}, headers=alice.headers
        )
        assert answer.status_code == 400, answer.text
        # the simulator's -2022: only an order that reached it with reduceOnly=true gets it
        assert "ReduceOnly Order is rejected." in answer.json()["error"]["message"]
        assert alice.truth() == []  # the exchange kept nothing
        [stored] = (await system.http.get("/api/orders", headers=alice.headers)).json()["data"]
        assert (stored["status"], stored["reduce_only"]) == ("rejected", True)
        got = await tab.wait_for_status(stored["id"], "rejected")
        assert got.message["data"]["reduce_only"] is True


async def test_reduce_only_must_be_a_boolean(autojump_clock: trio.abc.Clock) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        order = {"symbol": "BTCUSDT", "side": "SELL", "type": "MARKET", "quantity": "0.01"}
        answer = await system.http.post(
            "/api/orders", json={**order, "reduce_only": "yes"}, headers=alice.headers
        )
        assert answer.status_code == 400
        assert answer.json()["error"]["message"] == "Reduce-only must be true or false."
        assert alice.truth() == []
