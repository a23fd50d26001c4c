"""New-order validation: the first broken rule answers with Binance's code and message."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.sim.conftest import BASE, EPOCH_MS, SignedClient
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.sim import DEFAULT_SYMBOLS, Simulator


@pytest.mark.parametrize(
    ("change", "code", "msg"),
    [
        (
            {"symbol": None},
            -1102,
            "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
        ),
        ({"symbol": "DOGEUSDT"}, -1121, "Invalid symbol."),
        ({"side": "UP"}, -1117, "Invalid side."),
        (
            {"type": "STOP_MARKET"},
            -4120,
            "Order type not supported for this endpoint. Please "
            "use the Algo Order API endpoints instead.",
        ),
        ({"type": "ICEBERG"}, -1116, "Invalid orderType."),
        ({"timeInForce": "DAY"}, -1115, "Invalid timeInForce."),
        (
            {"timeInForce": None},
            -1102,
            "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.",
        ),
        ({"price": "49000.05"}, -4014, "Price not increased by tick size."),
        ({"price": "49000.001"}, -1111, "Precision is over the maximum defined for this asset."),
        ({"quantity": "0.0105"}, -1111, "Precision is over the maximum defined for this asset."),
        (
            {"quantity": "1e3"},
            -1100,
            "Illegal characters found in parameter 'quantity'; legal "
            "range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        ),
        (
            {"quantity": "0.001"},
            -4164,
            "Order's notional must be no smaller than 100 (unless you choose reduce only).",
        ),
        ({"price": "60000"}, -4016, "Limit price can't be higher than 52500.00."),
        (
            {"newClientOrderId": "x" * 37},
            -4015,
            "Client order id length should not be more than 36 chars",
        ),
        (
            {"newClientOrderId": "has space"},
            -4015,
            "Client order id length should not be more than 36 chars",
        ),
        ({"positionSide": "LONG"}, -4061, "Order's position side does not match user's setting."),
    ],
)
async def test_new_order_rule(
    autojump_clock: trio.testing.MockClock,
    client: SignedClient,
    change: dict[str, Any],
    code: int,
    msg: str,
) -> None:
    params = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    response = await client.signed("POST", "/fapi/v1/order", **params)
    assert response.status_code == 400
    assert response.json() == {"code": code, "msg": msg}
    assert client.sim.orders(client.key) == []


async def test_min_notional_waived_for_reduce_only(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    rejected = await client.signed("POST", "/fapi/v1/order", **{**BASE, "reduceOnly": "true"})
    assert rejected.json() == {"code": -2022, "msg": "ReduceOnly Order is rejected."}
    await client.short()
    placed = await client.order(**{**BASE, "quantity": "0.001", "reduceOnly": "true"})
    assert placed["reduceOnly"] is True


async def test_duplicate_client_id_only_among_open(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    first = await client.order(**BASE, newClientOrderId="same")
    dup = await client.signed("POST", "/fapi/v1/order", **BASE, newClientOrderId="same")
    assert dup.json() == {"code": -4116, "msg": "clientOrderId is duplicated"}
    await client.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=first["orderId"])
    again = await client.order(**BASE, newClientOrderId="same")
    assert again["orderId"] == first["orderId"] + 1


async def test_get_needs_an_id(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    response = await client.signed("GET", "/fapi/v1/order", symbol="BTCUSDT")
    assert response.json() == {
        "code": -1102,
        "msg": "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
    }
    unknown = await client.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=1)
    assert unknown.json() == {"code": -2013, "msg": "Order does not exist."}


async def test_auto_client_order_id(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    placed = await client.order(**BASE)
    assert len(placed["clientOrderId"]) == 22 and placed["clientOrderId"].isalnum()


async def test_step_size_finer_than_precision(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    odd = dataclasses.replace(
        DEFAULT_SYMBOLS[0], symbol="ODDUSDT", step_size=Decimal("0.005"), min_qty=Decimal("0.005")
    )
    sim = Simulator(clock=FixedEpochClock(EPOCH_MS), symbols=[odd], volatility_scale=0)
    await nursery.start(sim.run)
    transport = httpx.ASGITransport(app=sim.asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        client = SignedClient(http, sim, *sim.create_account())
        off_step = await client.signed(
            "POST", "/fapi/v1/order", **{**BASE, "symbol": "ODDUSDT", "quantity": "0.007"}
        )
        assert off_step.json() == {"code": -4023, "msg": "Quantity not increased by step size."}
        on_step = await client.order(**{**BASE, "symbol": "ODDUSDT", "quantity": "0.010"})
        assert on_step["origQty"] == "0.010"
