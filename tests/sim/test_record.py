"""The simulator's record (the oracle of the service's tests) says what the wire says: per
order its status, executed quantity, average price and ids; per account and order its trades."""

from __future__ import annotations

from decimal import Decimal

import httpx
import trio
import trio.testing

from tests.sim.conftest import SignedClient
from tradercoin.exchange.sim import Simulator


async def test_orders_and_trades_agree_with_the_wire(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    accounts = []
    for _ in range(2):
        key, secret = sim.create_account()
        accounts.append(SignedClient(http, sim, key, secret))
    a, b = accounts
    await a.limit(side="SELL", price="50500", quantity="0.004")
    await b.limit(side="BUY", price="50500", quantity="0.010")  # 0.004 from a, 0.006 at mark
    await a.limit(side="BUY", price="49000")
    await b.order(symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.003",
                  newOrderRespType="RESULT")  # fmt: skip
    for client in accounts:
        truths = sim.orders(client.key)
        wire = (await client.signed("GET", "/fapi/v1/allOrders", symbol="BTCUSDT")).json()
        assert [
            (t.order_id, t.client_order_id, t.status, t.executed_qty, t.avg_price)
            for t in truths
        ] == [
            (w["orderId"], w["clientOrderId"], w["status"], Decimal(w["executedQty"]),
             Decimal(w["avgPrice"]))
            for w in wire
        ]  # fmt: skip
        for truth in truths:
            await _same_trades(sim, client, truth.order_id)
    assert sim.orders(b.key)[0].avg_price == Decimal("50200")  # (0.004*50500+0.006*50000)/0.01


async def _same_trades(sim: Simulator, client: SignedClient, order_id: int) -> None:
    wire = await client.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT", orderId=order_id)
    record = sim.trades(client.key, symbol="BTCUSDT", order_id=order_id)
    assert [
        (t.id, t.price, t.qty, t.commission, t.commission_asset, t.realized_pnl, t.maker)
        for t in record
    ] == [
        (w["id"], Decimal(w["price"]), Decimal(w["qty"]), Decimal(w["commission"]),
         w["commissionAsset"], Decimal(w["realizedPnl"]), w["maker"])
        for w in wire.json()
    ]  # fmt: skip
    assert all(t.order_id == order_id for t in record)
