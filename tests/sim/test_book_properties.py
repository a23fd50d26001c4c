"""Random orders of three accounts over the simulator's HTTP API, then what the record must
hold: every match is one trade on each side (same id, maker and taker, no self-trade), each
order's executed quantity is the sum of its trades, positions are the sum of the fills, fees
follow maker/taker rates, and no two accounts' open orders are left crossed."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sim.conftest import EPOCH_MS, SignedClient
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.sim import Simulator

MAKER_FEE, TAKER_FEE = Decimal("0.0002"), Decimal("0.0005")
PRICES = [str(p) for p in range(49_800, 50_500, 100)]  # around the mark (50000)
ORDER = st.fixed_dictionaries(
    {
        "who": st.integers(0, 2),
        "side": st.sampled_from(["BUY", "SELL"]),
        "price": st.sampled_from(PRICES),
        "quantity": st.sampled_from(["0.004", "0.010", "0.025", "2.500"]),
        "timeInForce": st.sampled_from(["GTC", "GTC", "IOC", "FOK", "GTX"]),
        "stp": st.sampled_from([None, "EXPIRE_TAKER", "EXPIRE_BOTH", "NONE"]),
    }
)
ACTION = st.one_of(
    ORDER,
    st.fixed_dictionaries({"cancel": st.integers(0, 2)}),
    st.fixed_dictionaries({"mark": st.sampled_from(PRICES)}),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(actions=st.lists(ACTION, min_size=1, max_size=16))
async def test_the_book_keeps_its_books(actions: list[dict[str, Any]]) -> None:
    sim = Simulator(clock=FixedEpochClock(EPOCH_MS), seed=1, volatility_scale=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        transport = httpx.ASGITransport(app=sim.asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            clients = [SignedClient(http, sim, *sim.create_account()) for _ in range(3)]
            for action in actions:
                await _act(sim, clients, action)
        nursery.cancel_scope.cancel()
    _check_matches(sim, clients)
    for client in clients:
        _check_account(sim, client)
    _check_not_crossed(sim, clients)


async def _act(sim: Simulator, clients: list[SignedClient], action: dict[str, Any]) -> None:
    if "mark" in action:
        sim.set_price("BTCUSDT", Decimal(action["mark"]))
    elif "cancel" in action:
        await clients[action["cancel"]].signed("DELETE", "/fapi/v1/allOpenOrders", symbol="BTCUSDT")
    else:
        params = {k: v for k, v in action.items() if k not in ("who", "stp")}
        if action["stp"]:
            params["selfTradePreventionMode"] = action["stp"]
        answer = await clients[action["who"]].signed(
            "POST", "/fapi/v1/order", symbol="BTCUSDT", type="LIMIT", **params
        )
        assert answer.status_code in (200, 400), answer.text
        if answer.status_code == 200:
            assert answer.json()["status"] == "NEW"  # ACK
        else:
            assert answer.json()["code"] in (-5021, -5022, -4131), answer.text


def _check_matches(sim: Simulator, clients: list[SignedClient]) -> None:
    by_id = {
        (c.key, t.id): t for c in clients for t in sim.trades(c.key)
    }  # each account holds an id at most once: no self-trade
    assert len(by_id) == sum(len(sim.trades(c.key)) for c in clients)
    for match in sim.matches():
        assert match.maker_api_key != match.taker_api_key
        made = by_id[(match.maker_api_key, match.trade_id)]
        took = by_id[(match.taker_api_key, match.trade_id)]
        assert (made.maker, took.maker) == (True, False)
        assert (made.order_id, took.order_id) == (match.maker_order_id, match.taker_order_id)
        assert made.price == took.price == match.price and made.qty == took.qty == match.qty
        assert made.side != took.side
    holders = Counter(trade_id for _, trade_id in by_id)
    shared = {trade_id for trade_id, n in holders.items() if n == 2}
    assert shared == {m.trade_id for m in sim.matches()}
    assert max(holders.values(), default=1) <= 2


def _check_account(sim: Simulator, client: SignedClient) -> None:
    trades = sim.trades(client.key)
    for order in sim.orders(client.key):
        own = [t for t in trades if t.order_id == order.order_id]
        assert order.executed_qty == sum((t.qty for t in own), Decimal(0))
        assert order.cum_quote == sum((t.quote_qty for t in own), Decimal(0))
        assert (order.status == "FILLED") == (order.executed_qty == order.orig_qty)
        assert order.executed_qty <= order.orig_qty
    for trade in trades:
        rate = MAKER_FEE if trade.maker else TAKER_FEE
        assert trade.commission == (trade.qty * trade.price * rate).quantize(Decimal("1e-8"))
    position = sim.account(client.key).positions.get("BTCUSDT")
    signed = sum((t.qty if t.side == "BUY" else -t.qty for t in trades), Decimal(0))
    assert (position.amount if position else Decimal(0)) == signed


def _check_not_crossed(sim: Simulator, clients: list[SignedClient]) -> None:
    open_orders = [
        (c.key, o)
        for c in clients
        for o in sim.orders(c.key)
        if o.status in ("NEW", "PARTIALLY_FILLED")
    ]
    for key, bid in open_orders:
        for other, ask in open_orders:
            if bid.side == "BUY" and ask.side == "SELL" and key != other:
                assert bid.price < ask.price, (bid, ask)
