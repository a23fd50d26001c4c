"""python-binance 1.0.37, unchanged but for its base URLs, against the simulator served over
loopback (real sockets, real clock: no autojump here)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar

import pytest
import trio

# Submodules, not ``from binance import ...``: binance-futures-connector ships a
# ``binance/__init__.py`` of its own (empty) that may replace python-binance's.
from binance.async_client import AsyncClient
from binance.client import Client
from binance.exceptions import BinanceAPIException
from binance.ws.streams import BinanceSocketManager
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from tradercoin.clock import FixedEpochClock, system_clock
from tradercoin.exchange.sim import Limits, SimAddress, Simulator, serve_simulator

T = TypeVar("T")
LIMIT: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.010",
    "price": "49000",
}


class Served:
    def __init__(self, sim: Simulator, address: SimAddress) -> None:
        self.sim, self.address = sim, address

    def client(self, key: str | None = None, secret: str | None = None) -> Client:
        if key is None:
            key, secret = self.sim.create_account()
        client = Client(key, secret, ping=False)
        client.FUTURES_URL = f"{self.address.rest_url}/fapi"
        return client


async def call(fn: Callable[[], T]) -> T:
    return await trio.to_thread.run_sync(fn)


async def _serve(nursery: trio.Nursery, sim: Simulator) -> Served:
    address = await nursery.start(serve_simulator, sim, "127.0.0.1", 0)
    return Served(sim, address)


@pytest.fixture
async def served(nursery: trio.Nursery) -> Served:
    sim = Simulator(clock=system_clock(), seed=3, volatility_scale=0)
    return await _serve(nursery, sim)


async def test_orders_lifecycle(served: Served) -> None:
    c = served.client()
    placed = await call(lambda: c.futures_create_order(**LIMIT, newClientOrderId="pb-1"))
    assert placed["status"] == "NEW" and "cumQty" in placed
    got = await call(lambda: c.futures_get_order(symbol="BTCUSDT", orderId=placed["orderId"]))
    assert got["clientOrderId"] == "pb-1" and "time" in got
    by_client_id = await call(
        lambda: c.futures_get_order(symbol="BTCUSDT", origClientOrderId="pb-1")
    )
    assert by_client_id["orderId"] == placed["orderId"]
    opened = await call(lambda: c.futures_get_open_orders(symbol="BTCUSDT"))
    assert [o["orderId"] for o in opened] == [placed["orderId"]]
    market = await call(
        lambda: c.futures_create_order(
            symbol="BTCUSDT", side="SELL", type="MARKET", quantity="0.002"
        )
    )
    served.sim.fill("BTCUSDT", market["orderId"])
    canceled = await call(
        lambda: c.futures_cancel_order(symbol="BTCUSDT", orderId=placed["orderId"])
    )
    assert canceled["status"] == "CANCELED"
    every = await call(lambda: c.futures_get_all_orders(symbol="BTCUSDT"))
    assert [o["status"] for o in every] == ["CANCELED", "FILLED"]
    trades = await call(lambda: c.futures_account_trades(symbol="BTCUSDT"))
    assert [(t["orderId"], t["qty"], t["side"]) for t in trades] == [
        (market["orderId"], "0.002", "SELL")
    ]


async def test_listen_key_create_keepalive_close(served: Served) -> None:
    c = served.client()
    key = await call(c.futures_stream_get_listen_key)
    assert isinstance(key, str) and len(key) == 64
    assert await call(c.futures_stream_get_listen_key) == key
    assert await call(lambda: c.futures_stream_keepalive(key)) == {"listenKey": key}
    assert await call(lambda: c.futures_stream_close(key)) == {}
    with pytest.raises(BinanceAPIException) as err:
        await call(lambda: c.futures_stream_keepalive(key))
    assert err.value.code == -1125


async def test_error_codes(served: Served) -> None:
    key, _ = served.sim.create_account()
    wrong = served.client(key, "not-the-secret")
    with pytest.raises(BinanceAPIException) as bad_sig:
        await call(lambda: wrong.futures_get_open_orders(symbol="BTCUSDT"))
    assert (bad_sig.value.status_code, bad_sig.value.code) == (400, -1022)
    c = served.client()
    c.timestamp_offset = -60_000
    with pytest.raises(BinanceAPIException) as stale:
        await call(lambda: c.futures_get_open_orders(symbol="BTCUSDT"))
    assert stale.value.code == -1021
    c.timestamp_offset = 0
    with pytest.raises(BinanceAPIException) as unknown:
        await call(lambda: c.futures_get_order(symbol="BTCUSDT", orderId=12345))
    assert str(unknown.value) == "APIError(code=-2013): Order does not exist."
    filled = await call(
        lambda: c.futures_create_order(
            symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.002", newOrderRespType="RESULT"
        )
    )
    assert filled["status"] == "FILLED"
    with pytest.raises(BinanceAPIException) as not_open:
        await call(lambda: c.futures_cancel_order(symbol="BTCUSDT", orderId=filled["orderId"]))
    assert (not_open.value.status_code, not_open.value.code) == (400, -2011)


async def test_rate_limit_429_then_418(nursery: trio.Nursery) -> None:
    # windows are fixed minutes of the server clock: start this one at a minute's beginning
    sim = Simulator(
        clock=FixedEpochClock(1_790_000_040_000), limits=Limits(weight_per_minute=5, ban_after=2)
    )
    c = (await _serve(nursery, sim)).client()
    statuses = []
    for _ in range(9):
        try:
            await call(c.futures_time)
            statuses.append(200)
        except BinanceAPIException as exc:
            assert exc.code == -1003
            statuses.append(exc.status_code)
    assert statuses == [200] * 5 + [429, 429, 418, 418]


def _stream_until_trade(
    served: Served, key: str, secret: str, ready: Callable[[], None]
) -> list[dict[str, Any]]:
    """In a worker thread: python-binance's asyncio futures user socket, read until a TRADE."""

    async def main() -> list[dict[str, Any]]:
        client = AsyncClient(key, secret)
        client.FUTURES_URL = f"{served.address.rest_url}/fapi"
        manager = BinanceSocketManager(client)
        manager.FSTREAM_URL = served.address.ws_url + "/"
        seen: list[dict[str, Any]] = []
        try:
            async with manager.futures_user_socket() as socket:
                trio.from_thread.run_sync(ready)
                while not seen or seen[-1].get("o", {}).get("x") != "TRADE":
                    seen.append(await socket.recv())
        finally:
            await client.close_connection()
        return seen

    return asyncio.run(main())


async def test_user_socket_gets_order_trade_update(served: Served) -> None:
    key, secret = served.sim.create_account()
    c = served.client(key, secret)
    connected = trio.Event()
    result: list[list[dict[str, Any]]] = []

    async def listen() -> None:
        result.append(
            await trio.to_thread.run_sync(_stream_until_trade, served, key, secret, connected.set)
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(listen)
        await connected.wait()
        placed = await call(lambda: c.futures_create_order(**LIMIT))
        served.sim.set_price("BTCUSDT", Decimal("48900"))
    events = result[0]
    assert [(e["e"], e["o"]["x"]) for e in events] == [
        ("ORDER_TRADE_UPDATE", "NEW"),
        ("ORDER_TRADE_UPDATE", "TRADE"),
    ]
    trade = events[-1]["o"]
    assert (trade["i"], trade["X"], trade["l"], trade["L"]) == (
        placed["orderId"],
        "FILLED",
        "0.010",
        "49000.00",
    )


async def test_ed25519_key_signs_orders(served: Served) -> None:
    api_key, private = served.sim.create_ed25519_account()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    c = Client(api_key, private_key=pem, ping=False)
    c.FUTURES_URL = f"{served.address.rest_url}/fapi"
    placed = await call(lambda: c.futures_create_order(**LIMIT))
    got = await call(lambda: c.futures_get_order(symbol="BTCUSDT", orderId=placed["orderId"]))
    assert got["status"] == "NEW"


async def test_cancel_all_and_statistics(served: Served) -> None:
    c = served.client()
    for _ in range(2):
        await call(lambda: c.futures_create_order(**LIMIT))
    done = await call(lambda: c.futures_cancel_all_open_orders(symbol="BTCUSDT"))
    assert done == {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert await call(lambda: c.futures_get_open_orders(symbol="BTCUSDT")) == []
    stats = served.sim.statistics()
    assert stats.requests_by_path["/fapi/v1/order"] == 2
    assert stats.requests_by_path["/fapi/v1/allOpenOrders"] == 1
    assert (stats.orders_created, stats.fills, stats.weight_used) == (2, 0, 2)


def _async_client_calls(served: Served, key: str, secret: str) -> list[Any]:
    """python-binance's AsyncClient (aiohttp: needs application/json) in a worker thread."""

    async def main() -> list[Any]:
        client = AsyncClient(key, secret)
        client.FUTURES_URL = f"{served.address.rest_url}/fapi"
        try:
            placed = await client.futures_create_order(**LIMIT)
            return [
                await client.futures_time(),
                placed,
                await client.futures_get_order(symbol="BTCUSDT", orderId=placed["orderId"]),
            ]
        finally:
            await client.close_connection()

    return asyncio.run(main())


async def test_async_client_rest(served: Served) -> None:
    key, secret = served.sim.create_account()
    server_time, placed, got = await trio.to_thread.run_sync(
        _async_client_calls, served, key, secret
    )
    assert set(server_time) == {"serverTime"}
    assert got["orderId"] == placed["orderId"] and got["status"] == "NEW"


async def test_two_clients_trade_with_each_other_and_ack_is_new(served: Served) -> None:
    seller, buyer = served.client(), served.client()
    resting = await call(lambda: seller.futures_create_order(**{**LIMIT, "side": "SELL",
                                                                "price": "50500"}))  # fmt: skip
    crossing = await call(
        lambda: buyer.futures_create_order(**{**LIMIT, "price": "50500", "timeInForce": "IOC"})
    )
    assert (crossing["status"], crossing["executedQty"]) == ("NEW", "0.000")  # the ACK
    got = await call(lambda: buyer.futures_get_order(symbol="BTCUSDT", orderId=crossing["orderId"]))
    assert (got["status"], got["avgPrice"]) == ("FILLED", "50500.00000")
    [sold] = await call(lambda: seller.futures_account_trades(symbol="BTCUSDT"))
    [bought] = await call(lambda: buyer.futures_account_trades(symbol="BTCUSDT"))
    assert sold["id"] == bought["id"] and sold["orderId"] == resting["orderId"]
    assert (sold["maker"], bought["maker"]) == (True, False)
