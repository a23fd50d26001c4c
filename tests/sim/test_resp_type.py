"""``newOrderRespType``: ACK (the default) answers every order NEW with nothing executed, as
Binance does; RESULT answers the state the order has when the answer is made."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from tests.sim.conftest import SignedClient
from tradercoin.exchange.sim import Simulator


def _limit(tif: str, price: str, quantity: str = "0.010", **extra: Any) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": tif,
            "price": price, "quantity": quantity, **extra}  # fmt: skip


def _state(order: dict[str, Any]) -> tuple[str, str, str, str]:
    return order["status"], order["executedQty"], order["cumQty"], order["avgPrice"]


NOTHING = ("0.000", "0.000", "0.00000")


@pytest.mark.parametrize(
    ("params", "final"),
    [
        (_limit("IOC", "49000"), "EXPIRED"),  # cannot fill
        (_limit("IOC", "50100", "3.000"), "EXPIRED"),  # fills 2 (liquidity), the rest expires
        (_limit("GTC", "50100"), "FILLED"),  # crosses the mark
        (_limit("GTC", "50100", "3.000"), "PARTIALLY_FILLED"),
        (_limit("FOK", "50100"), "FILLED"),
        (_limit("GTX", "49000"), "NEW"),
        (_limit("GTC", "49000"), "NEW"),
    ],
)
async def test_ack_is_new_whatever_happened(
    autojump_clock: trio.testing.MockClock,
    client: SignedClient,
    params: dict[str, Any],
    final: str,
) -> None:
    answer = await client.order(**params)
    assert _state(answer) == ("NEW", *NOTHING)
    assert answer["cumQuote"] == "0.00000" and answer["updateTime"] == answer_time(client)
    assert (await client.get(answer["orderId"]))["status"] == final


def answer_time(client: SignedClient) -> int:
    return client.sim.clock.now_ms()


async def test_ack_of_a_limit_that_crossed_another_account(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    key, secret = sim.create_account()
    seller = SignedClient(client.http, sim, key, secret)
    await seller.limit(side="SELL", price="50500")
    answer = await client.order(**_limit("GTC", "50500"))
    assert _state(answer) == ("NEW", *NOTHING)
    assert len(sim.matches()) == 1
    assert (await client.get(answer["orderId"]))["status"] == "FILLED"


@pytest.mark.parametrize(
    ("params", "state"),
    [
        (_limit("IOC", "49000"), ("EXPIRED", *NOTHING)),
        (_limit("IOC", "50100", "3.000"), ("EXPIRED", "2.000", "2.000", "50000.00000")),
        (_limit("GTC", "50100"), ("FILLED", "0.010", "0.010", "50000.00000")),
        (_limit("GTC", "50100", "3.000"), ("PARTIALLY_FILLED", "2.000", "2.000", "50000.00000")),
        (_limit("FOK", "50100"), ("FILLED", "0.010", "0.010", "50000.00000")),
        (_limit("GTC", "49000"), ("NEW", *NOTHING)),
    ],
)
async def test_result_is_the_state_at_the_answer(
    autojump_clock: trio.testing.MockClock,
    client: SignedClient,
    params: dict[str, Any],
    state: tuple[str, str, str, str],
) -> None:
    answer = await client.order(**params, newOrderRespType="RESULT")
    assert _state(answer) == state
    queried = await client.get(answer["orderId"])
    assert (queried["status"], queried["executedQty"]) == state[:2]


async def test_result_of_a_limit_that_crossed_another_account(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    key, secret = sim.create_account()
    seller = SignedClient(client.http, sim, key, secret)
    await seller.limit(side="SELL", price="50500", quantity="0.004")
    answer = await client.order(**_limit("GTC", "50500", "0.010"), newOrderRespType="RESULT")
    # 0.004 from the seller at 50500, 0.006 from the market at the mark (50000)
    assert _state(answer) == ("FILLED", "0.010", "0.010", "50200.00000")


async def test_market_ack_then_fill_and_market_result(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}
    answer = await client.order(**market)
    assert _state(answer) == ("NEW", *NOTHING)
    await trio.sleep(sim.market_fill_latency + 0.001)
    assert (await client.get(answer["orderId"]))["status"] == "FILLED"
    result = await client.order(**market, newOrderRespType="RESULT")
    assert _state(result) == ("FILLED", "0.010", "0.010", "50000.00000")
