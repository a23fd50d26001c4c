"""Conformance: the python-binance scenarios run through OUR client against the simulator.

Every test runs twice: in-process (httpx.ASGITransport + the simulator's in-memory WebSocket,
under MockClock with autojump) and over loopback (serve_simulator on a real port, trio-websocket,
real clock, no autojump).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
import trio
import trio.testing
from cryptography.hazmat.primitives import serialization

from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.client import BinanceFutures
from tradercoin.exchange.errors import (
    InvalidCredentials,
    InvalidRequest,
    IPBanned,
    OrderNotFound,
    RateLimited,
)
from tradercoin.exchange.protocol import Credentials
from tradercoin.exchange.stream import OrderUpdateEvent, StreamEvent, UserStream
from tradercoin.orders import OrderStatus

from .conftest import EPOCH, FILL_LATENCY, Env, limit, market


async def test_market_order_fills_after_latency(env: Env, sim_clock: object) -> None:
    account = env.account()
    placed = await account.place_order(market("m-1"))
    assert (placed.status, placed.client_order_id, placed.avg_price) == (
        OrderStatus.NEW,
        "m-1",
        None,
    )
    await trio.sleep(FILL_LATENCY * 2)
    done = await account.get_order("BTCUSDT", client_order_id="m-1")
    assert done.status is OrderStatus.FILLED
    assert done.executed_qty == Decimal("0.010") and done.avg_price is not None
    fills = await account.user_trades("BTCUSDT", order_id=placed.exchange_order_id)
    assert sum(f.quantity for f in fills) == Decimal("0.010")
    assert all(f.exchange_order_id == placed.exchange_order_id for f in fills)


async def test_limit_lifecycle(env: Env, sim_clock: object) -> None:
    account = env.account()
    placed = await account.place_order(limit("l-1"))
    assert placed.status is OrderStatus.NEW
    by_id = await account.get_order("BTCUSDT", order_id=placed.exchange_order_id)
    by_cid = await account.get_order("BTCUSDT", client_order_id="l-1")
    assert by_id == by_cid and by_id.exchange_order_id == placed.exchange_order_id
    assert [o.client_order_id for o in await account.open_orders("BTCUSDT")] == ["l-1"]
    assert [o.client_order_id for o in await account.open_orders()] == ["l-1"]
    assert [o.client_order_id for o in await account.all_orders("BTCUSDT")] == ["l-1"]
    canceled = await account.cancel_order("BTCUSDT", client_order_id="l-1")
    assert canceled.status is OrderStatus.CANCELED
    assert await account.open_orders("BTCUSDT") == []
    with pytest.raises(OrderNotFound) as again:
        await account.cancel_order("BTCUSDT", order_id=placed.exchange_order_id)
    assert again.value.code == -2011


async def test_unknown_order_is_minus_2013(env: Env, sim_clock: object) -> None:
    with pytest.raises(OrderNotFound) as info:
        await env.account().get_order("BTCUSDT", order_id=999_999)
    assert (info.value.code, info.value.status) == (-2013, 400)


async def test_filled_limit_has_trades_and_cannot_be_cancelled(env: Env, sim_clock: object) -> None:
    account = env.account()
    placed = await account.place_order(limit("l-2"))
    env.sim.fill("BTCUSDT", placed.exchange_order_id)
    filled = await account.get_order("BTCUSDT", client_order_id="l-2")
    assert (filled.status, filled.executed_qty) == (OrderStatus.FILLED, Decimal("0.010"))
    (fill,) = await account.user_trades("BTCUSDT")
    assert (fill.exchange_order_id, fill.quantity, fill.price) == (
        placed.exchange_order_id,
        Decimal("0.010"),
        Decimal("40000.0"),
    )
    with pytest.raises(OrderNotFound) as info:
        await account.cancel_order("BTCUSDT", client_order_id="l-2")
    assert info.value.code == -2011


async def test_listen_key_create_keepalive_close(env: Env, sim_clock: object) -> None:
    account = env.account()
    key = await account.create_listen_key()
    assert await account.create_listen_key() == key
    await account.keepalive_listen_key(key)
    await account.close_listen_key(key)
    with pytest.raises(InvalidRequest) as info:
        await account.keepalive_listen_key(key)
    assert info.value.code == -1125


async def test_bad_signature_and_unknown_key(env: Env, sim_clock: object) -> None:
    api_key, _ = env.sim.create_account()
    wrong = env.exchange.for_account(Credentials(api_key, "0" * 64))
    with pytest.raises(InvalidCredentials) as bad_signature:
        await wrong.open_orders("BTCUSDT")
    assert bad_signature.value.code == -1022
    stranger = env.exchange.for_account(Credentials("A" * 64, "0" * 64))
    with pytest.raises(InvalidCredentials) as unknown:
        await stranger.open_orders("BTCUSDT")
    assert (unknown.value.code, unknown.value.status) == (-2015, 401)


async def test_stale_timestamp_resyncs_once(env: Env, sim_clock: object) -> None:
    api_key, api_secret = env.sim.create_account()
    behind = BinanceFutures(
        env.http, clock=FixedEpochClock(EPOCH - 30_000), rest_url=env.exchange.rest_url
    )
    account = behind.for_account(Credentials(api_key, api_secret))
    assert await account.open_orders("BTCUSDT") == []
    stats = behind.statistics()
    assert (stats.resync_retries, stats.time_syncs) == (1, 1)
    assert abs(stats.time_offset_ms - 30_000) < 1_000
    assert await account.open_orders("BTCUSDT") == []
    assert behind.statistics().resync_retries == 1


async def test_rate_limit_429_then_418(env: Env, sim_clock: object) -> None:
    account = env.account()
    with pytest.raises(RateLimited) as limited:
        for _ in range(100):  # weight 40 each: 2400 a minute allows 60
            await account.open_orders()
    assert limited.value.status == 429 and limited.value.retry_after > 0
    with pytest.raises(IPBanned) as banned:
        for _ in range(100):
            try:
                await account.open_orders()
            except RateLimited:
                continue
    assert banned.value.status == 418
    assert banned.value.until > env.exchange.timestamp()


async def test_usage_is_reported(env: Env, sim_clock: object) -> None:
    account = env.account()
    await account.place_order(limit("u-1"))
    await account.open_orders("BTCUSDT")
    placed, polled = env.usages[-2:]
    assert placed.path == "/fapi/v1/order" and placed.order_count_10s == 1
    assert polled.used_weight_1m is not None and polled.used_weight_1m >= 1


async def test_order_trade_update_after_fill(
    env: Env, sim_clock: object, nursery: trio.Nursery
) -> None:
    account = env.account()
    key = await account.create_listen_key()
    send, events = trio.open_memory_channel[StreamEvent](16)
    stream = UserStream(env.ws_url, [key], send, connect=env.connect, silence_after=600)
    await nursery.start(stream.run)
    await events.receive()  # Connected
    placed = await account.place_order(limit("s-1"))
    env.sim.fill("BTCUSDT", placed.exchange_order_id)
    updates = []
    while not updates or updates[-1].status is not OrderStatus.FILLED:
        event = await events.receive()
        if isinstance(event, OrderUpdateEvent):
            assert event.listen_key == key
            updates.append(event.update)
    assert updates[0].status is OrderStatus.NEW
    (fill,) = updates[-1].fills
    assert (fill.exchange_order_id, fill.quantity) == (placed.exchange_order_id, Decimal("0.010"))


async def test_ed25519_keys_sign_orders(env: Env, sim_clock: object) -> None:
    api_key, private = env.sim.create_ed25519_account()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = env.exchange.for_account(Credentials(api_key, pem))
    placed = await account.place_order(limit("ed-1"))
    assert (await account.get_order("BTCUSDT", client_order_id="ed-1")) == placed


async def test_chinese_symbol_is_signed_as_sent(env: Env, sim_clock: object) -> None:
    """The simulator checks the signature over the raw bytes before the symbol: -1121, not -1022."""
    with pytest.raises(InvalidRequest) as info:
        await env.account().get_order("测试USDT", client_order_id="a b:/c")
    assert info.value.code == -1121


async def test_many_listen_keys_share_one_connection(
    env: Env, sim_clock: object, nursery: trio.Nursery
) -> None:
    accounts = [env.account() for _ in range(3)]
    keys = [await a.create_listen_key() for a in accounts]
    send, events = trio.open_memory_channel[StreamEvent](64)
    stream = UserStream(env.ws_url, keys, send, connect=env.connect, silence_after=600)
    await nursery.start(stream.run)
    await events.receive()  # Connected
    for i, account in enumerate(accounts):
        await account.place_order(limit(f"multi-{i}"))
    seen = {}
    while len(seen) < 3:
        event = await events.receive()
        if isinstance(event, OrderUpdateEvent):
            seen[event.listen_key] = event.update.client_order_id
    assert seen == {key: f"multi-{i}" for i, key in enumerate(keys)}
