"""Foreign clients, unchanged but for their base URLs, against the simulator served over
loopback: ccxt's ``binanceusdm``, Binance's official ``binance-futures-connector``
(``UMFutures``) and python-binance (the reference client). Their answers are checked against
the simulator's own record (the account's wallet and position objects, its orders), never
against our own client."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import ccxt
import pytest
import trio
from binance.client import Client
from binance.error import ClientError
from binance.um_futures import UMFutures

from tradercoin.clock import system_clock
from tradercoin.exchange.sim import SimAddress, Simulator, serve_simulator
from tradercoin.exchange.sim.engine import Account

T = TypeVar("T")
BTC = "BTC/USDT:USDT"


async def call(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


class Served:
    def __init__(self, sim: Simulator, address: SimAddress) -> None:
        self.sim, self.address = sim, address

    def new_account(self) -> tuple[str, str, Account]:
        key, secret = self.sim.create_account()
        return key, secret, self.sim.account(key)

    def ccxt(self, key: str, secret: str) -> Any:
        """ccxt's binanceusdm with every API base URL on the simulator (an endpoint it does
        not serve answers 404, so a stray call fails the test instead of going out)."""
        exchange = ccxt.binanceusdm(
            {"apiKey": key, "secret": secret, "options": {"fetchCurrencies": False}}
        )
        for name, url in exchange.urls["api"].items():
            path = url.split(".com", 1)[1]
            exchange.urls["api"][name] = self.address.rest_url + path
        return exchange

    def um(self, key: str, secret: str) -> UMFutures:
        return UMFutures(key=key, secret=secret, base_url=self.address.rest_url)


@pytest.fixture
async def served(nursery: trio.Nursery) -> Served:
    sim = Simulator(clock=system_clock(), seed=5, volatility_scale=0)
    address = await nursery.start(serve_simulator, sim, "127.0.0.1", 0)
    return Served(sim, address)


def _d(value: Any) -> Decimal:
    return Decimal(str(value))


async def _long_btc(served: Served, um: UMFutures) -> None:
    """0.030 BTC long: 0.010 filled at 49000 (maker) and 0.020 at the 50000 mark (taker)."""
    placed = await call(
        lambda: um.new_order(
            symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.010",
            price="49000",
        )
    )  # fmt: skip
    served.sim.fill("BTCUSDT", placed["orderId"])
    await call(
        lambda: um.new_order(
            symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.020",
            newOrderRespType="RESULT",
        )
    )  # fmt: skip


async def test_ccxt_balance_positions_ticker_cancel_all(served: Served) -> None:
    key, secret, account = served.new_account()
    await _long_btc(served, served.um(key, secret))
    served.sim.set_price("BTCUSDT", Decimal("51000"))
    exchange = served.ccxt(key, secret)
    await call(exchange.load_markets)
    balance = await call(exchange.fetch_balance)
    # ccxt's total is the margin balance: wallet + 0.03 x (51000 - 49666.66666667)
    assert account.balance == Decimal("99999.402")
    assert _d(balance["USDT"]["total"]) == account.balance + 40
    assert _d(balance["USDT"]["used"]) == Decimal("76.5")  # 0.03 x 51000 / 20
    assert _d(balance["USDT"]["free"]) == account.balance + 40 - Decimal("76.5")
    positions = await call(lambda: exchange.fetch_positions([BTC]))
    [position] = positions
    assert (position["symbol"], position["side"], _d(position["contracts"])) == (
        BTC,
        "long",
        Decimal("0.03"),
    )
    assert _d(position["entryPrice"]) == account.positions["BTCUSDT"].entry_price
    assert _d(position["unrealizedPnl"]) == Decimal("40")  # 0.03 x (51000 - 49666.66666667)
    assert _d(position["markPrice"]) == Decimal("51000")
    assert position["maintenanceMarginPercentage"] == 0.004
    ticker = await call(lambda: exchange.fetch_ticker(BTC))
    assert (_d(ticker["last"]), _d(ticker["open"]), _d(ticker["high"])) == (
        Decimal("51000"),
        Decimal("50000"),
        Decimal("51000"),
    )
    assert _d(ticker["baseVolume"]) == Decimal("0.03")
    for price in ("48000", "47000"):
        await call(lambda p=price: exchange.create_order(BTC, "limit", "buy", 0.01, float(p)))
    assert len(account.open_in("BTCUSDT")) == 2
    await call(lambda: exchange.cancel_all_orders(BTC))
    assert account.open_in("BTCUSDT") == {}
    statuses = [o.status for o in served.sim.orders(key)]
    assert statuses.count("CANCELED") == 2


async def test_connector_account_balance_positions_leverage_cancel(served: Served) -> None:
    key, secret, account = served.new_account()
    um = served.um(key, secret)
    await _long_btc(served, um)
    changed = await call(lambda: um.change_leverage(symbol="BTCUSDT", leverage=10))
    assert changed == {"leverage": 10, "maxNotionalValue": "40000000", "symbol": "BTCUSDT"}
    assert account.leverage["BTCUSDT"] == 10
    info = await call(um.account)
    assert info["totalWalletBalance"] == f"{account.balance:.8f}" == "99999.40200000"
    assert info["totalPositionInitialMargin"] == "150.00000000"  # 0.03 x 50000 / 10
    [row] = info["positions"]
    assert (row["symbol"], row["positionAmt"], row["notional"]) == (
        "BTCUSDT",
        "0.030",
        "1500.00000000",
    )
    [usdt] = await call(um.balance)
    # available = wallet + 0.03 x (50000 - 49666.66666667) - 150 margin
    assert (usdt["asset"], usdt["balance"], usdt["availableBalance"]) == (
        "USDT",
        "99999.40200000",
        "99859.40200000",
    )
    [risk] = await call(lambda: um.get_position_risk(symbol="BTCUSDT"))
    assert risk["entryPrice"] == f"{account.positions['BTCUSDT'].entry_price:.8f}"
    assert risk["markPrice"] == "50000.00000000"
    placed = await call(
        lambda: um.new_order(
            symbol="BTCUSDT", side="SELL", type="LIMIT", timeInForce="GTC", quantity="0.010",
            price="52000",
        )
    )  # fmt: skip
    done = await call(lambda: um.cancel_open_orders(symbol="BTCUSDT"))
    assert done == {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert [o.status for o in served.sim.orders(key) if o.order_id == placed["orderId"]] == [
        "CANCELED"
    ]
    with pytest.raises(ClientError) as bad:
        await call(lambda: um.change_leverage(symbol="BTCUSDT", leverage=126))
    assert (bad.value.status_code, bad.value.error_code) == (400, -4028)


async def test_python_binance_account_and_market_calls(served: Served) -> None:
    key, secret, account = served.new_account()
    await _long_btc(served, served.um(key, secret))
    c = Client(key, secret, ping=False)
    c.FUTURES_URL = f"{served.address.rest_url}/fapi"
    info = await call(c.futures_account)  # GET /fapi/v2/account
    assert info["canTrade"] is True and info["totalWalletBalance"] == f"{account.balance:.8f}"
    rows = {p["symbol"]: p for p in info["positions"]}
    assert set(rows) == set(served.sim.specs)
    assert (rows["BTCUSDT"]["positionAmt"], rows["BTCUSDT"]["leverage"]) == ("0.030", "20")
    assert rows["ETHUSDT"]["positionAmt"] == "0.000"
    [usdt] = await call(c.futures_account_balance)
    assert usdt["balance"] == info["totalWalletBalance"]
    [risk] = await call(lambda: c.futures_position_information(symbol="BTCUSDT"))
    assert risk["entryPrice"] == f"{account.positions['BTCUSDT'].entry_price:.8f}"
    changed = await call(lambda: c.futures_change_leverage(symbol="BTCUSDT", leverage=50))
    assert changed["leverage"] == 50 and account.leverage["BTCUSDT"] == 50
    brackets = await call(lambda: c.futures_leverage_bracket(symbol="ETHUSDT"))
    assert brackets["brackets"][0]["initialLeverage"] == 125
    ticker = await call(lambda: c.futures_ticker(symbol="BTCUSDT"))
    assert (ticker["lastPrice"], ticker["volume"], ticker["count"]) == ("50000.00", "0.030", 2)
    book = await call(lambda: c.futures_orderbook_ticker(symbol="BTCUSDT"))
    assert (book["bidPrice"], book["askPrice"]) == ("50000.00", "50000.10")
    depth = await call(lambda: c.futures_order_book(symbol="BTCUSDT", limit=5))
    assert len(depth["bids"]) == len(depth["asks"]) == 5
    mark = await call(lambda: c.futures_mark_price(symbol="BTCUSDT"))
    assert mark["markPrice"] == "50000.00000000"
