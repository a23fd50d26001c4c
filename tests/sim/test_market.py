"""The moving market under MockClock: the seeded walk, fills on crossing, repeatability."""

from __future__ import annotations

from decimal import Decimal

import httpx
import trio
import trio.testing

from tests.sim.conftest import EPOCH_MS, SignedClient
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.sim import Simulator


async def _fill_of_resting_order(seed: int) -> tuple[float, int, str, Decimal]:
    """Run a fresh simulator: one BUY 2 % under the mark; when and how did it fill?"""
    async with trio.open_nursery() as nursery:
        sim = Simulator(clock=FixedEpochClock(EPOCH_MS), seed=seed)
        await nursery.start(sim.run)
        start = trio.current_time()
        transport = httpx.ASGITransport(app=sim.asgi_app)
        async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
            key, secret = sim.create_account()
            client = SignedClient(http, sim, key, secret)
            placed = await client.limit(price="49000", quantity="0.010")
            for _ in range(1000):  # poll like a client would, every 10 minutes
                order = await client.get(placed["orderId"])
                if order["status"] == "FILLED":
                    break
                await trio.sleep(600)
            trades = (await client.signed("GET", "/fapi/v1/userTrades", symbol="BTCUSDT")).json()
        nursery.cancel_scope.cancel()
    fill_time = trades[0]["time"]
    return trio.current_time() - start, fill_time, order["avgPrice"], sim.mark("BTCUSDT")


async def test_resting_limit_fills_when_the_walk_crosses(
    autojump_clock: trio.testing.MockClock,
) -> None:
    _, fill_ms, avg, _ = await _fill_of_resting_order(seed=1)
    assert avg == "49000.00000"
    assert (fill_ms - EPOCH_MS) % 1000 == 0  # on the one-second price grid
    assert fill_ms > EPOCH_MS


async def test_same_seed_same_market(autojump_clock: trio.testing.MockClock) -> None:
    first = await _fill_of_resting_order(seed=5)
    second = await _fill_of_resting_order(seed=5)
    assert first[1:] == second[1:]
    other = await _fill_of_resting_order(seed=1)
    assert other[1] != first[1]


async def test_prices_walk_on_the_clock(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = Simulator(clock=FixedEpochClock(EPOCH_MS), seed=2)
    await nursery.start(sim.run)
    seen = set()
    for _ in range(10):
        seen.add(sim.mark("ETHUSDT"))
        await trio.sleep(60)
    assert len(seen) > 5
    assert all(Decimal("2000") < p < Decimal("4000") for p in seen)
    assert all(p == p.quantize(Decimal("0.01")) for p in seen)


async def test_ticker_and_mark_price_routes(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = Simulator(clock=FixedEpochClock(EPOCH_MS), volatility_scale=0)
    await nursery.start(sim.run)
    sim.set_price("ETHUSDT", Decimal("3123.456"))
    transport = httpx.ASGITransport(app=sim.asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        one = (await http.get("/fapi/v1/ticker/price?symbol=ETHUSDT")).json()
        assert one == {"symbol": "ETHUSDT", "price": "3123.46", "time": EPOCH_MS}
        every = await http.get("/fapi/v2/ticker/price")
        assert len(every.json()) == 5 and every.headers["x-mbx-used-weight-1m"] == "3"
        mark = (await http.get("/fapi/v1/premiumIndex?symbol=BTCUSDT")).json()
        assert mark["markPrice"] == "50000.00000000" and mark["nextFundingTime"] > EPOCH_MS
        bad = await http.get("/fapi/v1/premiumIndex?symbol=NOPE")
        assert bad.json() == {"code": -1121, "msg": "Invalid symbol."}
