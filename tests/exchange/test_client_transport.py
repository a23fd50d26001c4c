"""No answer at all, over real loopback sockets: timeouts, dropped and refused connections.

Real sockets, so no autojump clock (trio issue 456).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from functools import partial

import pytest
import trio

from tradercoin.clock import system_clock
from tradercoin.exchange.client import AccountClient, BinanceFutures, http_client
from tradercoin.exchange.errors import ExchangeError, Unavailable, UnknownOutcome
from tradercoin.exchange.protocol import Credentials, PlaceOrder
from tradercoin.orders import OrderType, Side

MARKET = PlaceOrder(
    symbol="BTCUSDT",
    side=Side.BUY,
    type=OrderType.MARKET,
    quantity=Decimal("0.01"),
    client_order_id="c-1",
)
Handler = Callable[[trio.SocketStream], Awaitable[None]]


async def _read_request(stream: trio.SocketStream) -> None:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await stream.receive_some()
        if not chunk:
            return
        data += chunk


async def silent(stream: trio.SocketStream) -> None:
    await _read_request(stream)
    await trio.sleep_forever()


async def hang_up(stream: trio.SocketStream) -> None:
    await _read_request(stream)
    await stream.aclose()


async def _serve(handler: Handler, nursery: trio.Nursery) -> int:
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port: int = listeners[0].socket.getsockname()[1]
    return port


async def _account(url: str) -> AsyncIterator[AccountClient]:
    async with http_client(timeout=0.2) as http:
        exchange = BinanceFutures(http, clock=system_clock(), rest_url=url)
        yield exchange.for_account(Credentials("k" * 64, "s" * 64))


@pytest.fixture(params=[silent, hang_up], ids=["timeout", "dropped"])
async def account(
    request: pytest.FixtureRequest, nursery: trio.Nursery
) -> AsyncIterator[AccountClient]:
    port = await _serve(request.param, nursery)
    async for client in _account(f"http://127.0.0.1:{port}"):
        yield client


async def test_no_answer_to_a_write_is_unknown_outcome(account: AccountClient) -> None:
    with pytest.raises(UnknownOutcome, match="outcome unknown"):
        await account.place_order(MARKET)
    with pytest.raises(UnknownOutcome):
        await account.cancel_order("BTCUSDT", client_order_id="c-1")


async def test_no_answer_to_a_read_is_unavailable(account: AccountClient) -> None:
    with pytest.raises(Unavailable) as info:
        await account.get_order("BTCUSDT", client_order_id="c-1")
    assert info.value.status == 0


async def test_refused_connection_is_unavailable_even_for_a_write() -> None:
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    async for account in _account(f"http://127.0.0.1:{port}"):
        with pytest.raises(ExchangeError) as info:
            await account.place_order(MARKET)
        assert type(info.value) is Unavailable
        assert "k" * 64 not in str(info.value)
