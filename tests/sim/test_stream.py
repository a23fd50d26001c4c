"""listenKeys and the user stream in-process (real trio-websocket over memory streams)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket
import wsproto
import wsproto.events

from tests.sim.conftest import SignedClient
from tradercoin.exchange.sim import Simulator


async def _key(client: SignedClient) -> str:
    response = await client.keyed("POST", "/fapi/v1/listenKey")
    assert response.status_code == 200
    key: str = response.json()["listenKey"]
    return key


async def _next(ws: trio_websocket.WebSocketConnection) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(await ws.get_message())
    return message


async def test_listen_key_same_while_active_and_put_delete(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    key = await _key(client)
    assert len(key) == 64 and await _key(client) == key
    put = await client.keyed("PUT", "/fapi/v1/listenKey", listenKey=key)
    assert put.json() == {"listenKey": key}
    assert (await client.keyed("DELETE", "/fapi/v1/listenKey", listenKey=key)).json() == {}
    gone = await client.keyed("PUT", "/fapi/v1/listenKey", listenKey=key)
    assert gone.status_code == 400
    assert gone.json() == {"code": -1125, "msg": "This listenKey does not exist."}
    assert await _key(client) != key


async def test_order_events_new_trade_canceled(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    key = await _key(client)
    async with sim.open_websocket(f"ws://sim/private/ws?listenKey={key}") as ws:
        placed = await client.limit(quantity="0.030")
        new = await _next(ws)
        assert new["e"] == "ORDER_TRADE_UPDATE"
        assert (new["o"]["x"], new["o"]["X"], new["o"]["i"]) == ("NEW", "NEW", placed["orderId"])
        assert "N" not in new["o"] and "n" not in new["o"] and new["o"]["t"] == 0
        sim.fill("BTCUSDT", placed["orderId"], Decimal("0.010"))
        trade = await _next(ws)
        o = trade["o"]
        assert (o["x"], o["X"], o["l"], o["z"], o["L"]) == (
            "TRADE",
            "PARTIALLY_FILLED",
            "0.010",
            "0.010",
            "49000.00",
        )
        assert o["N"] == "USDT" and o["n"] == "0.09800000" and o["t"] > 0 and o["m"] is True
        account = await _next(ws)
        assert account["e"] == "ACCOUNT_UPDATE" and account["a"]["P"][0]["pa"] == "0.010"
        await client.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
        canceled = await _next(ws)
        assert (canceled["o"]["x"], canceled["o"]["X"], canceled["o"]["z"]) == (
            "CANCELED",
            "CANCELED",
            "0.010",
        )
        assert canceled["E"] >= trade["E"]


async def test_listen_key_expires_after_an_hour(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    start = trio.current_time()
    key = await _key(client)
    async with sim.open_websocket(f"ws://sim/private/ws/{key}") as ws:
        expired = await _next(ws)
        assert trio.current_time() - start == pytest.approx(3600)
        assert expired == {"e": "listenKeyExpired", "E": sim.clock.now_ms(), "listenKey": key}
        await client.limit()
        with trio.move_on_after(60) as quiet:
            await ws.get_message()
        assert quiet.cancelled_caught
    put = await client.keyed("PUT", "/fapi/v1/listenKey", listenKey=key)
    assert put.json()["code"] == -1125


async def test_keepalive_extends(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    start = trio.current_time()
    key = await _key(client)
    async with sim.open_websocket(f"ws://sim/private/ws?listenKey={key}") as ws:
        await trio.sleep(3000)
        await client.keyed("PUT", "/fapi/v1/listenKey", listenKey=key)
        expired = await _next(ws)
        assert expired["e"] == "listenKeyExpired"
        assert trio.current_time() - start == pytest.approx(6600)


async def test_stream_mode_carries_many_keys(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: Any
) -> None:
    clients = []
    for _ in range(3):
        key, secret = sim.create_account()
        clients.append(SignedClient(http, sim, key, secret))
    keys = [await _key(c) for c in clients[:2]]
    query = "&".join(f"listenKey={k}" for k in keys)
    async with sim.open_websocket(f"ws://sim/private/stream?{query}") as ws:
        third = await _key(clients[2])
        await ws.send_message(json.dumps({"method": "SUBSCRIBE", "params": [third], "id": 1}))
        assert await _next(ws) == {"result": None, "id": 1}
        for c in clients:
            await c.limit()
        seen = [await _next(ws) for _ in range(3)]
        assert [m["stream"] for m in seen] == [*keys, third]
        assert all(m["data"]["e"] == "ORDER_TRADE_UPDATE" for m in seen)


async def test_unknown_key_is_rejected(
    autojump_clock: trio.testing.MockClock, sim: Simulator
) -> None:
    with pytest.raises(trio_websocket.ConnectionRejected):
        async with sim.open_websocket("ws://sim/private/ws?listenKey=nope"):
            pass


async def test_server_pings_and_24h_disconnect(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    key = await _key(client)
    start = opened = trio.current_time()
    async with sim.open_websocket(f"ws://sim/private/ws?listenKey={key}") as ws:
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            while True:
                if trio.current_time() - start > 3000:
                    await client.keyed("PUT", "/fapi/v1/listenKey", listenKey=key)
                    start = trio.current_time()
                with trio.move_on_after(600):
                    await ws.get_message()
        assert closed.value.reason.code == 1001
        assert trio.current_time() - opened == 86400


async def test_no_pong_for_ten_minutes_disconnects(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    """A raw wsproto client that never answers: ping at 3 min, close 10 min later."""
    key = await _key(client)
    ours, theirs = trio.testing.memory_stream_pair()
    sim._nursery.start_soon(sim._serve_memory, theirs)  # type: ignore[union-attr]
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await ours.send_all(
        ws.send(wsproto.events.Request(host="sim", target=f"/private/ws?listenKey={key}"))
    )
    ws.receive_data(await ours.receive_some())
    assert isinstance(next(ws.events()), wsproto.events.AcceptConnection)
    await trio.sleep(180 + 599)
    ws.receive_data(await ours.receive_some())
    assert [type(e) for e in ws.events()] == [wsproto.events.Ping]
    await trio.sleep(2)
    ws.receive_data(await ours.receive_some())
    closed = list(ws.events())
    assert isinstance(closed[-1], wsproto.events.CloseConnection)
    assert closed[-1].code == 1008


async def test_events_filter_and_unsubscribe_on_delete(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    key = await _key(client)
    url = f"ws://sim/private/ws?listenKey={key}&events=ACCOUNT_UPDATE"
    async with sim.open_websocket(url) as ws:
        placed = await client.limit()
        sim.fill("BTCUSDT", placed["orderId"])
        only = await _next(ws)
        assert only["e"] == "ACCOUNT_UPDATE"
    async with sim.open_websocket(f"ws://sim/private/stream?listenKey={key}") as ws:
        await client.keyed("DELETE", "/fapi/v1/listenKey", listenKey=key)
        await ws.send_message('{"method": "LIST_SUBSCRIPTIONS", "id": 7}')
        assert await _next(ws) == {"result": [], "id": 7}


async def test_ioc_remainder_is_an_expired_event(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    key = await _key(client)
    async with sim.open_websocket(f"ws://sim/private/ws?listenKey={key}") as ws:
        await client.order(
            symbol="BTCUSDT",
            side="SELL",
            type="LIMIT",
            timeInForce="IOC",
            price="51000",
            quantity="0.010",
        )
        new, expired = await _next(ws), await _next(ws)
        assert (new["o"]["x"], expired["o"]["x"], expired["o"]["X"]) == (
            "NEW",
            "EXPIRED",
            "EXPIRED",
        )
        assert expired["o"]["er"] == "2" and "n" not in expired["o"]


@pytest.mark.parametrize(
    "message",
    [
        '{"method": "SUBSCRIBE", "params": 5, "id": 1}',
        "[1, 2]",
        "not json",
        '{"method": "SUBSCRIBE", "params": [{"a": 1}], "id": 1}',
        '{"method": "NOPE", "id": 1}',
        "[" * 100_000,
        b"\xff\xfe",
    ],
)
async def test_bad_control_messages_get_an_error_reply(
    autojump_clock: trio.testing.MockClock, sim: Simulator, message: str | bytes
) -> None:
    async with sim.open_websocket("ws://sim/private/stream") as ws:
        await ws.send_message(message)
        reply = await _next(ws)
        assert reply["error"]["code"] == 2
        await ws.send_message('{"method": "LIST_SUBSCRIPTIONS", "id": 3}')
        assert await _next(ws) == {"result": [], "id": 3}
