"""REST orders in-process under MockClock: field sets, lifecycle, fills, lookups."""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
import trio.testing

from tests.sim.conftest import BASE, SignedClient
from tradercoin.exchange.sim import Simulator


async def test_limit_order_post_get_cancel_field_sets(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    placed = await client.limit(newClientOrderId="my-id_1")
    assert placed["status"] == "NEW"
    assert placed["clientOrderId"] == "my-id_1"
    assert placed["price"] == "49000.00" and placed["origQty"] == "0.010"
    assert placed["cumQty"] == "0.000" and placed["cumQuote"] == "0.00000"
    assert "time" not in placed and placed["reduceOnly"] is False

    got = await client.signed("GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
    assert got.status_code == 200
    body = got.json()
    assert "cumQty" not in body and body["time"] == placed["updateTime"]
    assert got.headers["content-type"] == "application/json"
    assert got.headers["x-mbx-used-weight-1m"] == "1"

    canceled = await client.signed(
        "DELETE", "/fapi/v1/order", symbol="BTCUSDT", origClientOrderId="my-id_1"
    )
    assert canceled.json()["status"] == "CANCELED" and "cumQty" in canceled.json()
    again = await client.signed(
        "DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"]
    )
    assert again.status_code == 400
    assert again.json() == {"code": -2011, "msg": "Unknown order sent."}


async def test_order_ids_increment_per_symbol(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    first = await client.limit()
    second = await client.limit()
    eth = await client.order(
        symbol="ETHUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        price="2900.00",
        quantity="0.010",
    )
    assert second["orderId"] == first["orderId"] + 1
    assert eth["orderId"] // 1_000_000_000 != first["orderId"] // 1_000_000_000


async def test_market_order_fills_after_latency(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    start = trio.current_time()
    placed = await client.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.500")
    assert placed["status"] == "NEW"
    await trio.sleep(1.999)
    mid = await client.get(placed["orderId"])
    assert mid["status"] == "NEW"
    await trio.sleep_until(start + 2.001)
    done = await client.get(placed["orderId"])
    assert done["status"] == "FILLED"
    assert done["updateTime"] == placed["updateTime"] + 2000
    assert done["avgPrice"] == "50000.00000"
    assert done["cumQuote"] == "25000.00000"


async def test_market_result_answers_filled(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    placed = await client.order(
        symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.010", newOrderRespType="RESULT"
    )
    assert placed["status"] == "FILLED" and placed["executedQty"] == "0.010"


async def test_large_market_order_fills_in_parts(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    start = trio.current_time()
    placed = await client.order(symbol="BTCUSDT", side="BUY", type="MARKET", quantity="5.000")
    await trio.sleep_until(start + 2.001)
    first = sim.orders(client.key)[0]
    assert (first.status, first.executed_qty) == ("PARTIALLY_FILLED", Decimal("2.000"))
    await trio.sleep_until(start + 4.001)
    trades = await client.signed(
        "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", orderId=placed["orderId"]
    )
    assert [t["qty"] for t in trades.json()] == ["2.000", "2.000", "1.000"]
    assert sim.orders(client.key)[0].status == "FILLED"


async def test_limit_fills_when_price_crosses(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    placed = await client.limit(price="49000.00", quantity="0.010")
    sim.set_price("BTCUSDT", Decimal("49500"))
    assert sim.orders(client.key)[0].status == "NEW"
    sim.set_price("BTCUSDT", Decimal("48990"))
    got = await client.get(placed["orderId"])
    assert got["status"] == "FILLED" and got["avgPrice"] == "49000.00000"
    trades = (await client.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")).json()
    assert trades[0]["maker"] is True and trades[0]["commission"] == "0.09800000"


async def test_fill_hook_partial_then_full(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    placed = await client.limit(quantity="0.030")
    sim.fill("BTCUSDT", placed["orderId"], Decimal("0.010"))
    assert sim.orders(client.key)[0].status == "PARTIALLY_FILLED"
    sim.fill("BTCUSDT", placed["orderId"])
    assert sim.orders(client.key)[0].executed_qty == Decimal("0.030")
    cancel = await client.signed(
        "DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"]
    )
    assert cancel.json()["code"] == -2011


async def test_open_orders_and_all_orders(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    a = await client.limit()
    b = await client.limit(price="48000")
    await client.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=a["orderId"])
    opened = await client.signed("GET", "/fapi/v1/openOrders", symbol="BTCUSDT")
    assert [o["orderId"] for o in opened.json()] == [b["orderId"]]
    every = await client.signed("GET", "/fapi/v1/openOrders")
    assert every.headers["x-mbx-used-weight-1m"] == "42"  # 1 + 1 + 40
    all_orders = await client.signed("GET", "/fapi/v1/allOrders", symbol="BTCUSDT")
    assert [o["status"] for o in all_orders.json()] == ["CANCELED", "NEW"]
    since = await client.signed("GET", "/fapi/v1/allOrders", symbol="BTCUSDT", orderId=b["orderId"])
    assert len(since.json()) == 1


async def test_cancel_all_open_orders(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    await client.limit()
    await client.limit()
    done = await client.signed("DELETE", "/fapi/v1/allOpenOrders", symbol="BTCUSDT")
    assert done.json() == {"code": 200, "msg": "The operation of cancel all open order is done."}
    opened = await client.signed("GET", "/fapi/v1/openOrders", symbol="BTCUSDT")
    assert opened.json() == []


async def test_purge_rule_on_the_sim_clock(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    canceled = await client.limit()
    await client.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=canceled["orderId"])
    kept = await client.limit()
    await trio.sleep(3 * 86400 + 1)
    gone = await client.signed(
        "GET", "/fapi/v1/order", symbol="BTCUSDT", orderId=canceled["orderId"]
    )
    assert gone.json() == {"code": -2013, "msg": "Order does not exist."}
    still = await client.get(kept["orderId"])
    assert still["status"] == "NEW"
    await trio.sleep(87 * 86400)
    old = await client.get(kept["orderId"])
    assert old["code"] == -2013


async def test_ioc_expires_remainder_and_fok_gtx_rejects(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    def limit(tif: str, price: str, quantity: str = "0.010") -> dict[str, str]:
        return {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": tif,
            "price": price,
            "quantity": quantity,
            "newOrderRespType": "RESULT",
        }

    ioc = await client.order(**limit("IOC", "49000"))
    assert ioc["status"] == "EXPIRED"
    taker = await client.order(**limit("IOC", "50100", "3.000"))
    assert (taker["status"], taker["executedQty"]) == ("EXPIRED", "2.000")
    fok = await client.signed("POST", "/fapi/v1/order", **limit("FOK", "49000"))
    assert fok.json()["code"] == -5021
    gtx = await client.signed("POST", "/fapi/v1/order", **limit("GTX", "50100"))
    assert gtx.json()["code"] == -5022
    orders = await client.signed("GET", "/fapi/v1/allOrders", symbol="BTCUSDT")
    assert len(orders.json()) == 2


async def test_gtd_expires_at_its_second(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    now = sim.clock.now_ms()
    too_soon = await client.signed(
        "POST", "/fapi/v1/order", **{**BASE, "timeInForce": "GTD", "goodTillDate": now + 600_000}
    )
    assert too_soon.json()["code"] == -1102
    placed = await client.order(**{**BASE, "timeInForce": "GTD", "goodTillDate": now + 700_500})
    assert placed["goodTillDate"] == now + 700_000
    await trio.sleep(699.999)
    assert (await client.get(placed["orderId"]))["status"] == "NEW"
    await trio.sleep(0.002)
    expired = await client.get(placed["orderId"])
    assert (expired["status"], expired["updateTime"]) == ("EXPIRED", now + 700_000)


async def test_user_trades_by_from_id_time_and_order(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    first = await client.limit(quantity="0.010")
    second = await client.limit(quantity="0.020")
    sim.fill("BTCUSDT", first["orderId"])
    await trio.sleep(10)
    sim.fill("BTCUSDT", second["orderId"])
    trades = (await client.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")).json()
    assert [t["orderId"] for t in trades] == [first["orderId"], second["orderId"]]
    later = await client.signed(
        "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", fromId=trades[1]["id"]
    )
    assert [t["id"] for t in later.json()] == [trades[1]["id"]]
    recent = await client.signed(
        "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", startTime=trades[0]["time"] + 1
    )
    assert [t["qty"] for t in recent.json()] == ["0.020"]
    by_order = await client.signed(
        "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", orderId=first["orderId"]
    )
    assert [t["qty"] for t in by_order.json()] == ["0.010"]
    limited = await client.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT", limit=1)
    assert [t["id"] for t in limited.json()] == [trades[1]["id"]]
    mixed = await client.signed(
        "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", fromId=1, startTime=1
    )
    assert mixed.json()["code"] == -1128
    too_wide = await client.signed(
        "GET", "/fapi/v1/userTrades", symbol="BTCUSDT", startTime=1, endTime=1 + 8 * 86_400_000
    )
    assert too_wide.json()["code"] == -1127


async def test_open_order_singular(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    placed = await client.limit()
    found = await client.signed(
        "GET", "/fapi/v1/openOrder", symbol="BTCUSDT", orderId=placed["orderId"]
    )
    assert found.json()["orderId"] == placed["orderId"] and "time" in found.json()
    sim.fill("BTCUSDT", placed["orderId"])
    gone = await client.signed(
        "GET", "/fapi/v1/openOrder", symbol="BTCUSDT", orderId=placed["orderId"]
    )
    assert gone.json() == {"code": -2013, "msg": "Order does not exist."}


async def test_other_accounts_orders_are_unknown(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    placed = await client.limit()
    key, secret = sim.create_account()
    stranger = SignedClient(client.http, sim, key, secret)
    assert (await stranger.get(placed["orderId"]))["code"] == -2013
    cancel = await stranger.signed(
        "DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"]
    )
    assert cancel.json()["code"] == -2011


@pytest.mark.parametrize(
    ("mode", "maker_status", "taker_status"),
    [
        (None, "EXPIRED_IN_MATCH", "FILLED"),  # EXPIRE_MAKER is the default
        ("EXPIRE_TAKER", "NEW", "EXPIRED_IN_MATCH"),
        ("EXPIRE_BOTH", "EXPIRED_IN_MATCH", "EXPIRED_IN_MATCH"),
        ("NONE", "NEW", "FILLED"),
    ],
)
async def test_self_trade_prevention(
    autojump_clock: trio.testing.MockClock,
    client: SignedClient,
    mode: str | None,
    maker_status: str,
    taker_status: str,
) -> None:
    maker = await client.limit(side="SELL", price="50500")  # resting above the mark (50000)
    extra = {"selfTradePreventionMode": mode} if mode else {}
    taker = await client.limit(side="BUY", price="50500", **extra)  # crosses mark and maker
    assert (await client.get(taker["orderId"]))["status"] == taker_status
    assert (await client.get(maker["orderId"]))["status"] == maker_status
    other_side = await client.limit(side="BUY", price="49000")
    assert other_side["status"] == "NEW"
