"""Our account and market methods against the simulator (in-process and over loopback); the
oracle is the simulator's own record of the account (``Simulator.account_view``)."""

from __future__ import annotations

from decimal import Decimal

import trio

from tradercoin.actors.account import check_keys
from tradercoin.exchange.protocol import Credentials
from tradercoin.exchange.stream import AccountUpdateEvent, StreamEvent, UserStream
from tradercoin.orders import OrderStatus

from .conftest import FILL_LATENCY, Env, limit, market


async def test_key_check_says_what_the_exchange_said(env: Env, sim_clock: object) -> None:
    api_key, api_secret = env.sim.create_account()
    good = await check_keys(env.exchange, Credentials(api_key, api_secret))
    assert (good.checked, good.can_read, good.can_trade) == (True, True, True)
    wrong_key = await check_keys(env.exchange, Credentials("K" * 64, api_secret))
    assert (wrong_key.checked, wrong_key.can_read) == (True, False)
    assert "API key is wrong" in wrong_key.message and "IP address" in wrong_key.message
    wrong_secret = await check_keys(env.exchange, Credentials(api_key, "S" * 64))
    assert "secret does not belong" in wrong_secret.message
    for check in (good, wrong_key, wrong_secret):
        assert api_secret not in check.message and api_key not in check.message


async def test_positions_and_balances_are_the_exchanges(env: Env, sim_clock: object) -> None:
    account = env.account()
    api_key = account._api_key
    changed = await account.change_leverage("BTCUSDT", 10)
    assert (changed.symbol, changed.leverage) == ("BTCUSDT", 10)
    await account.place_order(market("acct-1", qty="0.100"))
    await trio.sleep(FILL_LATENCY * 2)
    [position] = await account.position_risk()
    [usdt] = [b for b in await account.balances() if b.asset == "USDT"]
    summary = await account.account()
    truth = env.sim.account_view(api_key)
    held = truth.position("BTCUSDT")
    assert held is not None
    assert (
        (position.symbol, position.amount)
        == ("BTCUSDT", held.amount)
        == ("BTCUSDT", Decimal("0.1"))
    )
    assert position.entry_price == held.entry_price
    assert position.leverage == 10 == held.leverage
    assert usdt.wallet_balance == truth.wallet < Decimal(100_000)  # the commission was paid
    assert summary.total_wallet_balance == truth.wallet
    brackets = await account.leverage_brackets("BTCUSDT")
    assert brackets["BTCUSDT"][0].initial_leverage >= 10


async def test_cancel_all_open_orders_of_a_symbol(env: Env, sim_clock: object) -> None:
    account = env.account()
    for i in range(3):
        await account.place_order(limit(f"ca-{i}", price=str(40_000 + i)))
    assert len(await account.open_orders("BTCUSDT")) == 3
    await account.cancel_all_orders("BTCUSDT")
    assert await account.open_orders("BTCUSDT") == []
    statuses = {o.client_order_id: o.status for o in await account.all_orders("BTCUSDT")}
    assert statuses == {f"ca-{i}": OrderStatus.CANCELED for i in range(3)}


async def test_account_update_arrives_on_the_user_stream(
    env: Env, sim_clock: object, nursery: trio.Nursery
) -> None:
    account = env.account()
    key = await account.create_listen_key()
    send, events = trio.open_memory_channel[StreamEvent](64)
    stream = UserStream(env.ws_url, [key], send, connect=env.connect, silence_after=600)
    await nursery.start(stream.run)
    await events.receive()  # Connected
    placed = await account.place_order(limit("au-1", price="45000.0", qty="0.050"))
    env.sim.fill("BTCUSDT", placed.exchange_order_id)
    while not isinstance(event := await events.receive(), AccountUpdateEvent):
        pass
    truth = env.sim.account_view(account._api_key)
    [usdt] = [b for b in event.update.balances if b.asset == "USDT"]
    [position] = [p for p in event.update.positions if p.symbol == "BTCUSDT"]
    assert event.update.reason == "ORDER" and usdt.wallet_balance == truth.wallet
    assert (
        position.amount == Decimal("0.05")
        and position.entry_price == truth.positions[0].entry_price
    )
    ticker = await env.exchange.ticker_24hr("BTCUSDT")
    [mark] = await env.exchange.mark_prices("BTCUSDT")
    assert ticker.symbol == mark.symbol == "BTCUSDT" and mark.mark_price > 0
