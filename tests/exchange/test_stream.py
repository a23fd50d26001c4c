"""The user-data-stream reader against a real in-memory WebSocket peer, under MockClock."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
import trio
from trio_websocket import ConnectionClosed

from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.errors import RateLimited, Unavailable
from tradercoin.exchange.parsing import PayloadError
from tradercoin.exchange.sim import ConnectionLimits, Simulator, StreamConfig
from tradercoin.exchange.stream import (
    Connected,
    ControlReply,
    Disconnected,
    ListenKeyExpired,
    Malformed,
    OrderUpdateEvent,
    Silence,
    StreamEvent,
    UserStream,
    frame_key,
    parse_frame,
    parse_reply,
    user_stream_url,
)
from tradercoin.orders import OrderStatus

from .test_parsing import STREAM_NEW, _trade_event
from .wspeer import WsPeer

EXPIRED = {"e": "listenKeyExpired", "E": "1736996475556", "listenKey": "K1"}


def test_urls() -> None:
    assert user_stream_url("wss://h/", ["a b"]) == "wss://h/private/ws?listenKey=a%20b"
    assert user_stream_url("wss://h", ["k1", "k2"]) == (
        "wss://h/private/stream?listenKey=k1&listenKey=k2"
    )
    with pytest.raises(ValueError):
        user_stream_url("wss://h", [])


def test_parse_frames() -> None:
    event = parse_frame(json.dumps(_trade_event()), "K1")
    assert isinstance(event, OrderUpdateEvent)
    assert (event.listen_key, event.event_time) == ("K1", 1568879465651)
    assert event.update.status is OrderStatus.FILLED
    assert event.update.fills[0].quantity == Decimal(20)
    wrapped = json.dumps({"stream": "K2", "data": STREAM_NEW})
    assert parse_frame(wrapped, None) == OrderUpdateEvent(
        "K2",
        parse_frame(json.dumps(STREAM_NEW), "K2").update,
        1568879465651,  # type: ignore[union-attr]
    )
    assert parse_frame(json.dumps(EXPIRED), None) == ListenKeyExpired("K1", 1736996475556)
    assert parse_frame('{"e":"MARGIN_CALL","E":1}', "K1") is None  # not one we use
    with pytest.raises(PayloadError):  # ACCOUNT_UPDATE is used: off-shape is an error
        parse_frame('{"e":"ACCOUNT_UPDATE","E":1}', "K1")


@pytest.fixture
async def peer(nursery: trio.Nursery) -> WsPeer:
    """The server side, running in the test's fixture nursery."""
    peer = WsPeer()
    await nursery.start(peer.run)
    return peer


async def _start(
    peer: WsPeer, nursery: trio.Nursery, keys: list[str], silence_after: float = 60.0
) -> tuple[UserStream, trio.MemoryReceiveChannel[StreamEvent], object]:
    send, receive = trio.open_memory_channel[StreamEvent](16)
    stream = UserStream("ws://sim", keys, send, connect=peer.connect, silence_after=silence_after)
    await nursery.start(stream.run)
    server = await peer.accepted.receive()
    assert await receive.receive() == Connected(tuple(keys))
    return stream, receive, server


async def test_single_key_events_in_order(
    peer: WsPeer, nursery: trio.Nursery, autojump_clock: object
) -> None:
    stream, events, server = await _start(peer, nursery, ["K1"])
    assert peer.urls == ["ws://sim/private/ws?listenKey=K1"]
    for frame in (
        STREAM_NEW,
        {"e": "MARGIN_CALL", "E": 2},
        "not json{",
        _trade_event(),
        EXPIRED,
    ):
        await server.send_message(frame if isinstance(frame, str) else json.dumps(frame))  # type: ignore[attr-defined]
    first, second, third = [await events.receive() for _ in range(3)]
    assert isinstance(first, OrderUpdateEvent) and first.update.status is OrderStatus.NEW
    assert isinstance(second, OrderUpdateEvent) and second.update.fills
    assert third == ListenKeyExpired("K1", 1736996475556)
    stats = stream.statistics()
    assert (stats.messages, stats.order_updates, stats.ignored, stats.malformed) == (5, 2, 1, 1)
    assert stats.connected


async def test_many_keys_share_one_connection(
    peer: WsPeer, nursery: trio.Nursery, autojump_clock: object
) -> None:
    _, events, server = await _start(peer, nursery, ["K1", "K2"])
    assert peer.urls == ["ws://sim/private/stream?listenKey=K1&listenKey=K2"]
    await server.send_message(json.dumps({"stream": "K2", "data": STREAM_NEW}))  # type: ignore[attr-defined]
    await server.send_message(json.dumps({"stream": "K1", "data": {**EXPIRED}}))  # type: ignore[attr-defined]
    update = await events.receive()
    assert isinstance(update, OrderUpdateEvent) and update.listen_key == "K2"
    assert await events.receive() == ListenKeyExpired("K1", 1736996475556)


async def test_silence_is_reported_each_period(
    peer: WsPeer, nursery: trio.Nursery, autojump_clock: object
) -> None:
    _, events, server = await _start(peer, nursery, ["K1"], silence_after=30.0)
    start = trio.current_time()
    assert await events.receive() == Silence(30.0)
    assert await events.receive() == Silence(60.0)
    assert trio.current_time() - start == 60.0
    await server.send_message(json.dumps(STREAM_NEW))  # type: ignore[attr-defined]
    assert isinstance(await events.receive(), OrderUpdateEvent)
    assert await events.receive() == Silence(30.0)


async def test_server_close_is_disconnected_and_run_returns(
    peer: WsPeer, autojump_clock: object
) -> None:
    async with trio.open_nursery() as nursery:
        stream, events, server = await _start(peer, nursery, ["K1"])
        await server.aclose(code=1001, reason="24h")  # type: ignore[attr-defined]
        assert await events.receive() == Disconnected("24h", 1001)
    # run returned by itself (the nursery closed) and closed its channel
    with pytest.raises(trio.EndOfChannel):
        await events.receive()
    assert not stream.statistics().connected


async def test_consumer_gone_ends_the_reader(peer: WsPeer, autojump_clock: object) -> None:
    """The consumer closes its end: the next frame ends ``run`` at once (not its next
    silence report, 60 s later), quietly, and the connection is closed."""
    with trio.fail_after(1):  # trio time, under autojump: a reader that waits on fails here
        async with trio.open_nursery() as nursery:
            stream, events, server = await _start(peer, nursery, ["K1"])
            await events.aclose()
            await server.send_message(json.dumps(STREAM_NEW))  # type: ignore[attr-defined]
        # the nursery closed: run returned by itself, without raising
    assert not stream.statistics().connected
    assert stream.statistics().order_updates == 1  # the frame was read, then found no one
    with pytest.raises(ConnectionClosed):
        await server.get_message()  # type: ignore[attr-defined]


async def test_refused_connection_is_unavailable() -> None:
    send, _ = trio.open_memory_channel[StreamEvent](1)
    listener = trio.socket.socket()
    await listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    stream = UserStream(f"ws://127.0.0.1:{port}", ["K1"], send)
    async with trio.open_nursery() as nursery:
        with pytest.raises(Unavailable, match="cannot connect"):
            await nursery.start(stream.run)


def test_multiplex_url_replies_and_frame_keys() -> None:
    assert user_stream_url("wss://h", ["k1"], multiplex=True) == (
        "wss://h/private/stream?listenKey=k1"
    )
    assert parse_reply('{"result": null, "id": 3}') == ControlReply(3, None)
    assert parse_reply('{"error": {"code": 2, "msg": "Too many"}, "id": 4}') == ControlReply(
        4, "Too many"
    )
    for other in ('{"stream": "K", "data": {}}', '{"e": "X", "id": 1}', "[]", "not json"):
        assert parse_reply(other) is None
    assert frame_key('{"stream": "K2", "data": {"e": 5}}') == "K2"
    assert frame_key("garbage") is None and frame_key('{"stream": 5}') is None


async def test_multiplex_reports_replies_and_attributable_garbage(
    peer: WsPeer, nursery: trio.Nursery, autojump_clock: object
) -> None:
    send, events = trio.open_memory_channel[StreamEvent](16)
    stream = UserStream("ws://sim", ["K1"], send, connect=peer.connect, multiplex=True)
    await nursery.start(stream.run)
    server = await peer.accepted.receive()
    assert peer.urls == ["ws://sim/private/stream?listenKey=K1"]
    assert await events.receive() == Connected(("K1",))
    await stream.send_message('{"method": "SUBSCRIBE", "params": ["K2"], "id": 1}')
    assert json.loads(await server.get_message())["params"] == ["K2"]  # type: ignore[attr-defined]
    await server.send_message('{"result": null, "id": 1}')  # type: ignore[attr-defined]
    garbled = {"stream": "K2", "data": {**STREAM_NEW, "o": {"i": "x"}}}
    await server.send_message(json.dumps(garbled))  # type: ignore[attr-defined]
    await server.send_message("not json{")  # type: ignore[attr-defined]
    assert await events.receive() == ControlReply(1, None)
    malformed = await events.receive()
    assert isinstance(malformed, Malformed) and malformed.listen_key == "K2"
    unattributed = await events.receive()
    assert isinstance(unattributed, Malformed) and unattributed.listen_key is None
    with trio.fail_after(1):
        await stream.ping()


async def test_a_429_handshake_is_rate_limited_with_its_retry_after(
    autojump_clock: object, nursery: trio.Nursery
) -> None:
    sim = Simulator(
        clock=FixedEpochClock(1_790_000_000_000),
        stream=StreamConfig(rules=ConnectionLimits(max_attempts=1)),
    )
    await nursery.start(sim.run)
    send, _ = trio.open_memory_channel[StreamEvent](4)
    for expected in (None, 300.0):
        reader = UserStream(
            "ws://sim", ["K"], send.clone(), connect=sim.open_websocket, multiplex=True
        )
        async with trio.open_nursery() as inner:
            if expected is None:
                await inner.start(reader.run)
                inner.cancel_scope.cancel()
                continue
            with pytest.raises(RateLimited) as refused:
                await inner.start(reader.run)
    assert (refused.value.status, refused.value.retry_after) == (429, 300.0)
