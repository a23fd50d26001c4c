"""24-hour ticker, book ticker and depth: shapes, weights and the figures they derive from
the mark walk and the accounts' trades and resting orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import trio
import trio.testing

from tests.sim.conftest import EPOCH_MS, SignedClient
from tradercoin.exchange.sim import Simulator

D = Decimal
DAY_MS = 86_400_000


async def _get(http: httpx.AsyncClient, path: str) -> tuple[Any, str]:
    response = await http.get(path)
    return response.json(), response.headers["x-mbx-used-weight-1m"]


async def test_24hr_ticker_follows_marks_and_trades(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    client: SignedClient,
    http: httpx.AsyncClient,
) -> None:
    sim.set_price("BTCUSDT", D("52000"))
    await trio.sleep(120)
    sim.set_price("BTCUSDT", D("47000"))
    await trio.sleep(120)
    sim.set_price("BTCUSDT", D("51000"))
    for side in ("BUY", "SELL"):
        await client.order(
            symbol="BTCUSDT", side=side, type="MARKET", quantity="0.010",
            newOrderRespType="RESULT",
        )  # fmt: skip
    ticker, weight = await _get(http, "/fapi/v1/ticker/24hr?symbol=BTCUSDT")
    now = EPOCH_MS + 240_000
    trades = sim.trades(client.key)
    assert ticker == {
        "symbol": "BTCUSDT",
        "priceChange": "1000.00",
        "priceChangePercent": "2.000",
        "weightedAvgPrice": "51000.00",
        "lastPrice": "51000.00",
        "lastQty": "0.010",
        "openPrice": "50000.00",
        "highPrice": "52000.00",
        "lowPrice": "47000.00",
        "volume": "0.020",
        "quoteVolume": "1020.00",
        "openTime": now - DAY_MS,
        "closeTime": now,
        "firstId": trades[0].id,
        "lastId": trades[1].id,
        "count": 2,
    }
    assert weight == "1"
    every, weight = await _get(http, "/fapi/v1/ticker/24hr")
    assert [t["symbol"] for t in every] == list(sim.specs) and weight == "41"


async def test_24hr_window_forgets_what_is_older_than_a_day(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    sim.set_price("ETHUSDT", D("3500"))
    await trio.sleep(3600)
    sim.set_price("ETHUSDT", D("3100"))
    await trio.sleep(DAY_MS / 1000 - 1800)
    ticker, _ = await _get(http, "/fapi/v1/ticker/24hr?symbol=ETHUSDT")
    # the 3000 start is over a day old; 3500 still held when the window began
    assert (ticker["openPrice"], ticker["highPrice"], ticker["lowPrice"]) == (
        "3500.00",
        "3500.00",
        "3100.00",
    )
    assert (ticker["volume"], ticker["count"], ticker["firstId"]) == ("0.000", 0, -1)
    await trio.sleep(3600)
    ticker, _ = await _get(http, "/fapi/v1/ticker/24hr?symbol=ETHUSDT")
    assert (ticker["openPrice"], ticker["highPrice"], ticker["lowPrice"]) == (
        "3100.00",
        "3100.00",
        "3100.00",
    )
    assert ticker["priceChange"] == "0.00"


async def test_book_ticker_and_depth_with_resting_orders(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    client: SignedClient,
    http: httpx.AsyncClient,
) -> None:
    book, weight = await _get(http, "/fapi/v1/ticker/bookTicker?symbol=BTCUSDT")
    assert book == {
        "symbol": "BTCUSDT",
        "bidPrice": "50000.00",
        "bidQty": "2.000",
        "askPrice": "50000.10",
        "askQty": "2.000",
        "time": EPOCH_MS,
    }
    assert weight == "2"
    await client.limit(side="BUY", price="49999.80", quantity="0.500")
    await client.limit(side="SELL", price="50000.20", quantity="0.250")
    before, weight = await _get(http, "/fapi/v1/depth?symbol=BTCUSDT&limit=5")
    assert weight == "4"
    assert before["bids"] == [
        ["50000.00", "2.000"],
        ["49999.90", "2.000"],
        ["49999.80", "2.500"],
        ["49999.70", "2.000"],
        ["49999.60", "2.000"],
    ]
    assert before["asks"][:2] == [["50000.10", "2.000"], ["50000.20", "2.250"]]
    await client.signed("DELETE", "/fapi/v1/allOpenOrders", symbol="BTCUSDT")
    after, _ = await _get(http, "/fapi/v1/depth?symbol=BTCUSDT&limit=5")
    assert after["bids"][2] == ["49999.80", "2.000"]
    assert after["lastUpdateId"] > before["lastUpdateId"]
    assert after["E"] == after["T"] == EPOCH_MS


async def test_depth_weights_and_bad_limits(
    autojump_clock: trio.testing.MockClock, http: httpx.AsyncClient
) -> None:
    used = 0
    for limit, weight in (("", 10), ("100", 5), ("500", 10), ("1000", 20)):
        query = f"&limit={limit}" if limit else ""
        book, header = await _get(http, f"/fapi/v1/depth?symbol=XRPUSDT{query}")
        used += weight
        assert header == str(used)
        assert len(book["bids"]) == len(book["asks"]) == int(limit or 500)
    bad = await http.get("/fapi/v1/depth?symbol=BTCUSDT&limit=7")
    assert bad.status_code == 400 and bad.json()["code"] == -1100
    missing = await http.get("/fapi/v1/depth")
    assert missing.json()["code"] == -1102
    unknown = await http.get("/fapi/v1/ticker/bookTicker?symbol=NOPE")
    assert unknown.json() == {"code": -1121, "msg": "Invalid symbol."}


async def test_premium_index_weights(
    autojump_clock: trio.testing.MockClock, http: httpx.AsyncClient
) -> None:
    one, weight = await _get(http, "/fapi/v1/premiumIndex?symbol=SOLUSDT")
    assert (one["markPrice"], weight) == ("150.00000000", "1")
    every, weight = await _get(http, "/fapi/v1/premiumIndex")
    assert len(every) == 5 and weight == "11"
