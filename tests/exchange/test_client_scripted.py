"""BinanceFutures against a scripted real HTTP peer: encoding, signing, usage, error mapping.

The simulator covers the ordinary answers (tests/exchange/test_client_sim.py); this covers the
bodies and statuses it cannot produce, and the mapping table for every code and status.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tradercoin.exchange.client import AccountClient, BinanceFutures, error_from_response
from tradercoin.exchange.errors import (
    ExchangeError,
    InvalidCredentials,
    InvalidRequest,
    IPBanned,
    OrderNotFound,
    OrderRateLimited,
    RateLimited,
    Unavailable,
    UnknownOutcome,
)
from tradercoin.exchange.protocol import Credentials, PlaceOrder, Usage
from tradercoin.orders import OrderStatus, OrderType, Side, TimeInForce

from .peer import ScriptedPeer

EPOCH = 1_700_000_000_000
KEY = "KEY0123456789abcdefKEY"
SECRET = "SECRETsecretSECRETsecret0123456789"

ORDER = {
    "orderId": 7,
    "symbol": "BTCUSDT",
    "status": "NEW",
    "clientOrderId": "c-1",
    "price": "50000.00",
    "avgPrice": "0.00",
    "origQty": "0.010",
    "executedQty": "0.000",
    "cumQty": "0.000",
    "cumQuote": "0.00000",
    "timeInForce": "GTC",
    "type": "LIMIT",
    "side": "BUY",
    "updateTime": EPOCH,
}
LIMIT = PlaceOrder(
    symbol="BTCUSDT",
    side=Side.BUY,
    type=OrderType.LIMIT,
    quantity=Decimal("0.010"),
    client_order_id="c-1",
    price=Decimal("50000.00"),
    time_in_force=TimeInForce.GTC,
)


class StillClock:
    """A wall clock that stands at EPOCH, so expected timestamps are exact."""

    def now_ms(self) -> int:
        return EPOCH


@pytest.fixture
def peer() -> ScriptedPeer:
    return ScriptedPeer(server_time=EPOCH)


@pytest.fixture
def usages() -> list[Usage]:
    return []


@pytest.fixture
async def exchange(peer: ScriptedPeer, usages: list[Usage]) -> AsyncIterator[BinanceFutures]:
    transport = httpx.ASGITransport(app=peer)
    async with httpx.AsyncClient(transport=transport) as http:
        yield BinanceFutures(
            http, clock=StillClock(), on_usage=usages.append, rest_url="http://peer"
        )


@pytest.fixture
def account(exchange: BinanceFutures) -> AccountClient:
    return exchange.for_account(Credentials(KEY, SECRET))


def assert_no_secret(error: BaseException) -> None:
    shown = " ".join([str(error), repr(error), repr(error.args), str(vars(error))])
    assert KEY not in shown and SECRET not in shown and "signature" not in shown


async def test_place_limit_is_signed_over_the_query_as_sent(
    account: AccountClient, peer: ScriptedPeer
) -> None:
    peer.then(body=ORDER)
    update = await account.place_order(LIMIT)
    assert update.status is OrderStatus.NEW and update.exchange_order_id == 7
    (seen,) = peer.seen
    assert (seen.method, seen.path, seen.body) == ("POST", "/fapi/v1/order", b"")
    assert seen.headers["x-mbx-apikey"] == KEY
    assert seen.signature_valid(SECRET)
    assert seen.params == {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.010",
        "newClientOrderId": "c-1",
        "price": "50000.00",
        "timeInForce": "GTC",
        "recvWindow": "5000",
        "timestamp": str(EPOCH),
        "signature": seen.params["signature"],
    }
    assert seen.query.decode().split("&")[-1].startswith("signature=")


async def test_chinese_symbol_and_odd_client_id_are_encoded_then_signed(
    account: AccountClient, peer: ScriptedPeer
) -> None:
    peer.then(body={**ORDER, "symbol": "测试USDT"})
    order = PlaceOrder(
        symbol="测试USDT",
        side=Side.SELL,
        type=OrderType.MARKET,
        quantity=Decimal("1E+1"),
        client_order_id="LongTrd 1C5BTC2L:/x",
    )
    assert (await account.place_order(order)).symbol == "测试USDT"
    (seen,) = peer.seen
    assert b"symbol=%E6%B5%8B%E8%AF%95USDT" in seen.query
    assert b"newClientOrderId=LongTrd%201C5BTC2L%3A%2Fx" in seen.query
    assert seen.params["quantity"] == "10"
    assert seen.signature_valid(SECRET)


async def test_every_response_reports_usage(
    account: AccountClient, peer: ScriptedPeer, usages: list[Usage]
) -> None:
    headers = {
        "X-MBX-USED-WEIGHT-1M": "12",
        "x-mbx-order-count-10s": "3",
        "X-Mbx-Order-Count-1M": "9",
    }
    peer.then(body=ORDER, headers=headers).then(
        400, {"code": -2013, "msg": "Order does not exist."}, headers={"X-MBX-USED-WEIGHT-1M": "13"}
    )
    await account.place_order(LIMIT)
    with pytest.raises(OrderNotFound):
        await account.get_order("BTCUSDT", order_id=7)
    assert usages == [
        Usage(
            path="/fapi/v1/order", weight=0, used_weight_1m=12, order_count_10s=3, order_count_1m=9
        ),
        Usage(
            path="/fapi/v1/order",
            weight=1,
            used_weight_1m=13,
            order_count_10s=None,
            order_count_1m=None,
        ),
    ]


async def test_open_orders_weight_depends_on_symbol(
    account: AccountClient, peer: ScriptedPeer, usages: list[Usage]
) -> None:
    peer.then(body=[ORDER]).then(body=[])
    assert [u.client_order_id for u in await account.open_orders("BTCUSDT")] == ["c-1"]
    assert await account.open_orders() == []
    assert [u.weight for u in usages] == [1, 40]
    assert "symbol" not in peer.seen[1].params


async def test_minus_1021_resyncs_and_retries_once(
    exchange: BinanceFutures, account: AccountClient, peer: ScriptedPeer
) -> None:
    stale = {"code": -1021, "msg": "Timestamp for this request is outside of the recvWindow."}
    peer.server_time = EPOCH + 7_000
    peer.then(400, stale).then(200, {"serverTime": EPOCH + 7_000}).then(body=ORDER)
    await account.get_order("BTCUSDT", client_order_id="c-1")
    first, sync, second = peer.seen
    assert sync.path == "/fapi/v1/time"
    assert first.params["timestamp"] == str(EPOCH)
    assert second.params["timestamp"] == str(EPOCH + 7_000)
    assert exchange.statistics().time_offset_ms == 7_000

    peer.then(400, stale).then(200, {"serverTime": EPOCH + 7_000}).then(400, stale)
    with pytest.raises(InvalidRequest) as info:
        await account.get_order("BTCUSDT", client_order_id="c-1")
    assert info.value.code == -1021
    assert len(peer.seen) == 6  # failed, time, failed again: no third attempt
    assert exchange.statistics().resync_retries == 2


async def test_sync_time_sets_the_offset(exchange: BinanceFutures, peer: ScriptedPeer) -> None:
    peer.server_time = EPOCH - 1_500
    assert await exchange.sync_time() == -1_500
    assert exchange.timestamp() == EPOCH - 1_500


BAN_MSG = (
    "Way too many requests; IP(1.2.3.4) banned until 1700000300000. Please use the websocket "
    "for live updates to avoid bans."
)
UNKNOWN_503 = {
    "timestamp": 1638827401078,
    "path": "/fapi/v1/order",
    "msg": "Unknown error, please check your request or try again later.",
}
HTML = "<html><head><title>403 Forbidden</title></head><body>" + "x" * 400 + "</body></html>"


def _err(code: int, msg: str = "m") -> dict[str, object]:
    return {"code": code, "msg": msg}


WRITE_AND_READ_CASES = [
    # (status, body, expected class on a write, expected class on a read)
    (
        401,
        _err(-2015, "Invalid API-key, IP, or permissions for action."),
        InvalidCredentials,
        InvalidCredentials,
    ),
    (400, _err(-2014, "API-key format invalid."), InvalidCredentials, InvalidCredentials),
    (
        400,
        _err(-1022, "Signature for this request is not valid."),
        InvalidCredentials,
        InvalidCredentials,
    ),
    (400, _err(-2013, "Order does not exist."), OrderNotFound, OrderNotFound),
    (400, _err(-2011, "Unknown order sent."), OrderNotFound, OrderNotFound),
    (503, UNKNOWN_503, UnknownOutcome, Unavailable),
    (
        503,
        _err(-1006, "Unexpected response. Execution status unknown."),
        UnknownOutcome,
        Unavailable,
    ),
    (
        408,
        _err(-1007, "Timeout waiting for response from backend server."),
        UnknownOutcome,
        Unavailable,
    ),
    (503, _err(-1008, "Request throttled by system-level protection."), Unavailable, Unavailable),
    (503, {"msg": "Service Unavailable."}, Unavailable, Unavailable),
    (
        500,
        _err(-1001, "Internal error; unable to process your request. Please try again."),
        Unavailable,
        Unavailable,
    ),
    # issue 9, defect 4: a 5xx or a code-less 408 on a write may have been executed
    (502, "<html>Bad Gateway</html>", UnknownOutcome, Unavailable),
    (500, "", UnknownOutcome, Unavailable),
    (504, "", UnknownOutcome, Unavailable),
    (
        500,
        _err(-1000, "An unknown error occured while processing the request."),
        UnknownOutcome,
        Unavailable,
    ),
    (403, HTML, Unavailable, Unavailable),
    (408, "", UnknownOutcome, Unavailable),
    (400, _err(-1121, "Invalid symbol."), InvalidRequest, InvalidRequest),
    (
        400,
        _err(-4164, "Order's notional must be no smaller than 100"),
        InvalidRequest,
        InvalidRequest,
    ),
    (
        400,
        _err(
            -5022,
            "Due to the order could not be executed as maker, the Post Only order "
            "will be rejected.",
        ),
        InvalidRequest,
        InvalidRequest,
    ),
    (400, _err(-1125, "This listenKey does not exist."), InvalidRequest, InvalidRequest),
    (400, "<html>bad</html>", ExchangeError, ExchangeError),
    (404, "", ExchangeError, ExchangeError),
    (429, _err(-1003, "Too many requests; current limit is 2400."), RateLimited, RateLimited),
    (418, _err(-1003, BAN_MSG), IPBanned, IPBanned),
    # issue 9, defect 5: the account's order rate, not the IP's weight
    (
        429,
        _err(-1015, "Too many new orders; current limit is 300 orders per 10 SECOND."),
        OrderRateLimited,
        OrderRateLimited,
    ),
]


@pytest.mark.parametrize(("status", "body", "on_write", "on_read"), WRITE_AND_READ_CASES)
async def test_error_mapping(
    account: AccountClient,
    peer: ScriptedPeer,
    status: int,
    body: object,
    on_write: type[ExchangeError],
    on_read: type[ExchangeError],
) -> None:
    peer.then(status, body).then(status, body)
    with pytest.raises(ExchangeError) as write:
        await account.cancel_order("BTCUSDT", order_id=7)
    with pytest.raises(ExchangeError) as read:
        await account.get_order("BTCUSDT", order_id=7)
    assert (type(write.value), type(read.value)) == (on_write, on_read)
    for info in (write, read):
        assert info.value.status == status
        assert_no_secret(info.value)
    if isinstance(body, dict) and "code" in body:
        assert (write.value.code, write.value.msg) == (body["code"], body["msg"])
    if isinstance(body, str):
        assert read.value.body == body[:200]


async def test_rate_limited_honours_retry_after(account: AccountClient, peer: ScriptedPeer) -> None:
    peer.then(429, _err(-1003), headers={"Retry-After": "7"}).then(429, _err(-1003))
    with pytest.raises(RateLimited) as first:
        await account.open_orders("BTCUSDT")
    with pytest.raises(RateLimited) as second:
        await account.open_orders("BTCUSDT")
    assert (first.value.retry_after, second.value.retry_after) == (7.0, 60.0)


async def test_ban_until_from_message_or_retry_after(
    account: AccountClient, peer: ScriptedPeer
) -> None:
    peer.then(418, _err(-1003, BAN_MSG)).then(418, "", headers={"retry-after": "300"})
    peer.then(418, "")
    with pytest.raises(IPBanned) as from_msg:
        await account.open_orders("BTCUSDT")
    with pytest.raises(IPBanned) as from_header:
        await account.open_orders("BTCUSDT")
    with pytest.raises(IPBanned) as default:
        await account.open_orders("BTCUSDT")
    assert from_msg.value.until == 1_700_000_300_000
    assert from_header.value.until == EPOCH + 300_000
    assert default.value.until == EPOCH + 120_000


@pytest.mark.parametrize(
    "body",
    [
        "<html>oops</html>",
        '{"orderId": 7, "symbol": "BTC',
        {**ORDER, "executedQty": 1.5},
        {**ORDER, "status": None},
        [ORDER],
        "null",
    ],
)
async def test_unexpected_2xx_bodies(
    account: AccountClient, peer: ScriptedPeer, body: object
) -> None:
    peer.then(200, body).then(200, body)
    with pytest.raises(ExchangeError) as read:
        await account.get_order("BTCUSDT", order_id=7)
    with pytest.raises(UnknownOutcome) as write:
        await account.place_order(LIMIT)
    assert type(read.value) is ExchangeError
    for info in (read, write):
        assert info.value.status == 200
        assert info.value.body
        assert len(info.value.body) <= 200
        assert_no_secret(info.value)


async def test_listen_keys(account: AccountClient, peer: ScriptedPeer) -> None:
    peer.then(body={"listenKey": "LK1"}).then(body={"listenKey": "LK1"}).then(body={})
    assert await account.create_listen_key() == "LK1"
    await account.keepalive_listen_key("LK1")
    await account.close_listen_key("LK1")
    assert [(s.method, s.query) for s in peer.seen] == [
        ("POST", b""),
        ("PUT", b"listenKey=LK1"),
        ("DELETE", b"listenKey=LK1"),
    ]
    assert all(s.headers["x-mbx-apikey"] == KEY for s in peer.seen)


async def test_user_trades_and_all_orders(account: AccountClient, peer: ScriptedPeer) -> None:
    trade = {
        "commission": "0.01",
        "commissionAsset": "USDT",
        "id": 9,
        "orderId": 7,
        "price": "50000.00",
        "qty": "0.010",
        "symbol": "BTCUSDT",
        "time": EPOCH,
    }
    peer.then(body=[trade]).then(body=[ORDER])
    (fill,) = await account.user_trades("BTCUSDT", from_id=3, limit=10)
    assert (fill.trade_id, fill.quantity) == (9, Decimal("0.010"))
    assert [o.exchange_order_id for o in await account.all_orders("BTCUSDT", order_id=7)] == [7]
    assert peer.seen[0].params["fromId"] == "3" and peer.seen[0].params["limit"] == "10"
    assert peer.seen[1].params["orderId"] == "7"


async def test_reprs_hide_keys(account: AccountClient) -> None:
    assert KEY not in repr(account) and SECRET not in repr(account)
    assert SECRET not in repr(Credentials(KEY, SECRET))


async def test_at_most_max_in_flight_requests_reach_httpx() -> None:
    gate = trio.Event()
    arrived = 0

    async def gated(scope: dict[str, Any], receive: Any, send: Any) -> None:
        nonlocal arrived
        arrived += 1
        await gate.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b'{"serverTime": 1}'})

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gated)) as http:
        exchange = BinanceFutures(http, clock=StillClock(), rest_url="http://peer", max_in_flight=2)
        async with trio.open_nursery() as callers:
            for _ in range(5):
                callers.start_soon(exchange.server_time)
            await trio.testing.wait_all_tasks_blocked()
            stats = exchange.statistics()
            assert (arrived, stats.in_flight, stats.queued) == (2, 2, 3)
            gate.set()
        assert exchange.statistics().requests == 5


@pytest.mark.parametrize("key", ["", "ключ", "key\n", " key", "k\x00"])
async def test_unsendable_api_keys_are_refused_up_front(exchange: BinanceFutures, key: str) -> None:
    with pytest.raises(InvalidCredentials, match="printable ASCII"):
        exchange.for_account(Credentials(key, SECRET))


def test_an_order_rate_refusal_states_its_limit_and_the_rest_of_its_window() -> None:
    body = b'{"code":-1015,"msg":"Too many new orders; current limit is 300 orders per 10 SECOND."}'
    error = error_from_response(429, {}, body, write=True, now_ms=123_456)
    assert isinstance(error, OrderRateLimited)
    assert (error.limit, error.window, error.retry_after) == (300, 10.0, 6.544)
    minute = b'{"code":-1015,"msg":"Too many new orders; current limit is 1200 orders per MINUTE."}'
    error = error_from_response(429, {"retry-after": "7"}, minute, write=True, now_ms=0)
    assert isinstance(error, OrderRateLimited)
    assert (error.limit, error.window, error.retry_after) == (1200, 60.0, 7.0)
