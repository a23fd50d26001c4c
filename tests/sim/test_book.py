"""One book per symbol across accounts: crossing orders of two accounts trade with each other
(price-time priority, at the resting price, one trade id, maker/taker), STP stays per account,
and orders that cross nobody fill against the mark as before."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import trio
import trio.testing

from tests.sim.conftest import SignedClient
from tradercoin.exchange.sim import Simulator


def _account(sim: Simulator, http: httpx.AsyncClient) -> SignedClient:
    key, secret = sim.create_account()
    return SignedClient(http, sim, key, secret)


async def _trades(client: SignedClient, order_id: int) -> list[dict[str, Any]]:
    response = await client.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT", orderId=order_id)
    trades: list[dict[str, Any]] = response.json()
    return trades


async def test_crossing_order_trades_with_the_resting_order_of_another_account(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    maker, taker = _account(sim, http), _account(sim, http)
    resting = await maker.limit(side="SELL", price="50500")  # above the mark (50000): rests
    crossing = await taker.limit(side="BUY", price="50600")
    assert (await maker.get(resting["orderId"]))["status"] == "FILLED"
    taken = await taker.get(crossing["orderId"])
    assert (taken["status"], taken["avgPrice"]) == ("FILLED", "50500.00000")
    [made] = await _trades(maker, resting["orderId"])
    [took] = await _trades(taker, crossing["orderId"])
    assert made["id"] == took["id"]
    assert (made["price"], made["qty"], made["maker"], made["side"]) == (
        "50500.00", "0.010", True, "SELL",
    )  # fmt: skip
    assert (took["price"], took["qty"], took["maker"], took["side"]) == (
        "50500.00", "0.010", False, "BUY",
    )  # fmt: skip
    assert made["commission"] == "0.10100000"  # 505 USDT at the maker rate 0.02 %
    assert took["commission"] == "0.25250000"  # at the taker rate 0.05 %
    assert made["commissionAsset"] == took["commissionAsset"] == "USDT"
    [match] = sim.matches()
    assert (match.trade_id, match.price) == (made["id"], Decimal("50500"))
    assert match.qty == Decimal("0.01")
    assert (match.maker_api_key, match.maker_order_id) == (maker.key, resting["orderId"])
    assert (match.taker_api_key, match.taker_order_id) == (taker.key, crossing["orderId"])


async def test_price_then_time_priority_and_the_rest_at_the_mark(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    a, b, c, taker = (_account(sim, http) for _ in range(4))
    dear = await a.limit(side="SELL", price="50500")
    first = await b.limit(side="SELL", price="50400")
    second = await c.limit(side="SELL", price="50400")
    crossing = await taker.limit(side="BUY", price="50450", quantity="0.030")
    fills = [(t["price"], t["qty"], t["maker"]) for t in await _trades(taker, crossing["orderId"])]
    assert fills == [
        ("50400.00", "0.010", False),  # b's, the older at the best price
        ("50400.00", "0.010", False),  # then c's
        ("50000.00", "0.010", False),  # the rest against the market at the mark
    ]
    assert (await a.get(dear["orderId"]))["status"] == "NEW"  # 50500 is beyond the limit
    assert [m.maker_order_id for m in sim.matches()] == [first["orderId"], second["orderId"]]


async def test_partly_taken_maker_keeps_its_place(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    maker, early, late = (_account(sim, http) for _ in range(3))
    resting = await maker.limit(side="BUY", price="49500", quantity="0.030")
    await early.limit(side="SELL", price="49500", quantity="0.010")
    partly = await maker.get(resting["orderId"])
    assert (partly["status"], partly["executedQty"]) == ("PARTIALLY_FILLED", "0.010")
    rival = await late.limit(side="BUY", price="49500", quantity="0.010")  # same price, later
    seller = _account(sim, http)
    await seller.limit(side="SELL", price="49500", quantity="0.020")
    assert (await maker.get(resting["orderId"]))["status"] == "FILLED"
    assert (await late.get(rival["orderId"]))["status"] == "NEW"


async def test_realized_pnl_of_both_sides(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    a, b = _account(sim, http), _account(sim, http)
    await a.limit(side="SELL", price="50500")
    await b.limit(side="BUY", price="50500")  # a short at 50500, b long at 50500
    b_close = await b.limit(side="SELL", price="50300")
    a_close = await a.limit(side="BUY", price="50300")
    [b_trade] = await _trades(b, b_close["orderId"])
    [a_trade] = await _trades(a, a_close["orderId"])
    assert (b_trade["maker"], b_trade["realizedPnl"]) == (True, "-2.00000000")
    assert (a_trade["maker"], a_trade["realizedPnl"]) == (False, "2.00000000")
    assert a_trade["id"] == b_trade["id"]


async def test_both_streams_carry_the_trade(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    maker, taker = _account(sim, http), _account(sim, http)
    resting = await maker.limit(side="SELL", price="50500")
    async with await _stream(sim, maker) as maker_ws, await _stream(sim, taker) as taker_ws:
        crossing = await taker.limit(side="BUY", price="50500")
        made = await _next_trade(maker_ws)
        took = await _next_trade(taker_ws)
    assert (made["i"], made["X"], made["m"], made["L"], made["l"]) == (
        resting["orderId"], "FILLED", True, "50500.00", "0.010",
    )  # fmt: skip
    assert (took["i"], took["X"], took["m"], took["L"]) == (
        crossing["orderId"], "FILLED", False, "50500.00",
    )  # fmt: skip
    assert made["t"] == took["t"] == sim.matches()[0].trade_id
    assert (made["n"], took["n"]) == ("0.10100000", "0.25250000")


async def _stream(sim: Simulator, client: SignedClient) -> Any:
    key = (await client.keyed("POST", "/fapi/v1/listenKey")).json()["listenKey"]
    return sim.open_websocket(f"ws://sim/private/ws?listenKey={key}")


async def _next_trade(ws: Any) -> dict[str, Any]:
    with trio.fail_after(5):
        while True:
            event = json.loads(await ws.get_message())
            if event["e"] == "ORDER_TRADE_UPDATE" and event["o"]["x"] == "TRADE":
                order: dict[str, Any] = event["o"]
                return order


async def test_stp_stays_per_account(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    me, other = _account(sim, http), _account(sim, http)
    mine = await me.limit(side="SELL", price="50500")
    theirs = await other.limit(side="SELL", price="50400")
    crossing = await me.limit(side="BUY", price="50600", quantity="0.020")
    assert (await other.get(theirs["orderId"]))["status"] == "FILLED"
    assert (await me.get(mine["orderId"]))["status"] == "EXPIRED_IN_MATCH"  # EXPIRE_MAKER
    fills = [(t["price"], t["maker"]) for t in await _trades(me, crossing["orderId"])]
    assert fills == [("50400.00", False), ("50000.00", False)]
    assert len(sim.matches()) == 1


async def test_stp_expire_taker_stops_at_its_own_order(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    me, other = _account(sim, http), _account(sim, http)
    mine = await me.limit(side="SELL", price="50400")
    theirs = await other.limit(side="SELL", price="50500")
    crossing = await me.limit(
        side="BUY", price="50600", quantity="0.020", selfTradePreventionMode="EXPIRE_TAKER"
    )
    taker = await me.get(crossing["orderId"])
    assert (taker["status"], taker["executedQty"]) == ("EXPIRED_IN_MATCH", "0.000")
    assert (await me.get(mine["orderId"]))["status"] == "NEW"
    assert (await other.get(theirs["orderId"]))["status"] == "NEW"
    assert sim.matches() == []


async def test_orders_crossing_nobody_fill_at_the_mark(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    seller, buyer = _account(sim, http), _account(sim, http)
    resting = await seller.limit(side="SELL", price="50500")
    market = await buyer.order(
        symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.010", newOrderRespType="RESULT"
    )
    assert (market["status"], market["avgPrice"]) == ("FILLED", "50000.00000")
    below = await buyer.limit(side="BUY", price="50200")
    [trade] = await _trades(buyer, below["orderId"])
    assert trade["price"] == "50000.00"
    assert (await seller.get(resting["orderId"]))["status"] == "NEW"
    assert sim.matches() == []


async def test_fok_counts_the_book_and_gtx_refuses_to_take(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    seller, buyer = _account(sim, http), _account(sim, http)
    await seller.limit(side="SELL", price="50500", quantity="1.000")
    fok = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "FOK",
           "price": "50500"}  # fmt: skip
    too_big = await buyer.signed("POST", "/fapi/v1/order", **fok, quantity="3.001")
    assert too_big.json()["code"] == -5021  # 1 in the book + 2 (liquidity) at the mark
    filled = await buyer.order(**fok, quantity="3.000", newOrderRespType="RESULT")
    assert (filled["status"], filled["executedQty"]) == ("FILLED", "3.000")
    await seller.limit(side="SELL", price="50500", quantity="1.000")
    gtx = await buyer.signed(
        "POST", "/fapi/v1/order", **{**fok, "timeInForce": "GTX"}, quantity="0.010"
    )
    assert gtx.json()["code"] == -5022


async def test_admin_lists_trades_and_matches(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    maker, taker = _account(sim, http), _account(sim, http)
    resting = await maker.limit(side="SELL", price="50500")
    await taker.limit(side="BUY", price="50500")
    matches = (await http.get("/sim/admin/matches")).json()
    assert [(m["maker_api_key"], Decimal(m["price"])) for m in matches] == [
        (maker.key, Decimal("50500"))
    ]
    trades = await http.get(
        "/sim/admin/trades", params={"api_key": maker.key, "orderId": resting["orderId"]}
    )
    [trade] = trades.json()
    assert (trade["id"], trade["maker"], trade["commission_asset"]) == (
        matches[0]["trade_id"], True, "USDT",
    )  # fmt: skip
