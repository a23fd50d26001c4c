"""The /ws protocol over a real Hypercorn on loopback (trio-websocket as the client).

The context here has no supervisor: a session replays from the store and stays unattached,
which exercises hello, replay, resume, ping, bad frames, limits and shutdown; the suites with
the whole service (test_service.py) cover live delivery through the actors.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from tests.http.conftest import add_orders, register
from tradercoin.http.app import create_app
from tradercoin.http.context import HttpContext
from tradercoin.http.ws import MAX_MESSAGE_SIZE
from tradercoin.store import Store, User


@pytest.fixture
async def base(ctx: HttpContext) -> AsyncIterator[str]:
    """The app served by Hypercorn on a free loopback port: ``host:port``."""
    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.websocket_max_message_size = MAX_MESSAGE_SIZE
    config.graceful_timeout = 1.0
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        binds = await nursery.start(
            lambda task_status: serve(
                create_app(ctx), config, shutdown_trigger=stop.wait, task_status=task_status
            )
        )
        yield binds[0].removeprefix("http://")
        stop.set()


@pytest.fixture
async def alice(ctx: HttpContext, store: Store) -> tuple[User, str]:
    token = await register(create_app(ctx).test_client(), "alice")
    user = await store.get_user_by_name("alice")
    assert user is not None
    return user, token


async def _next(ws: Any, kind: str | None = None) -> dict[str, Any]:
    """The next message (of ``kind``, skipping heartbeats)."""
    while True:
        with trio.fail_after(5):
            message: dict[str, Any] = json.loads(await ws.get_message())
        if message["type"] != "heartbeat" and (kind is None or message["type"] == kind):
            return message


async def test_hello_carries_the_newest_seq(base: str, store: Store, alice: Any) -> None:
    user, token = alice
    await add_orders(store, user, 3)
    async with open_websocket_url(f"ws://{base}/ws?token={token}") as ws:
        hello = await _next(ws)
    assert hello == {
        "type": "hello",
        "seq": 3,
        "user": {"id": user.id, "username": "alice", "role": "user"},
    }


async def test_since_replays_every_later_event_once_in_order(
    base: str, store: Store, alice: Any
) -> None:
    user, token = alice
    await add_orders(store, user, 5)
    async with open_websocket_url(f"ws://{base}/ws?token={token}&since=2") as ws:
        await _next(ws, "hello")
        seqs = [(await _next(ws, "order_update"))["seq"] for _ in range(3)]
        await ws.send_message(json.dumps({"type": "ping"}))
        assert (await _next(ws))["type"] == "pong"  # nothing else was queued before it
    assert seqs == [3, 4, 5]


async def test_order_update_has_the_whole_order_and_the_seed_keys(
    base: str, store: Store, alice: Any
) -> None:
    user, token = alice
    events = await add_orders(store, user, 1)
    async with open_websocket_url(f"ws://{base}/ws?token={token}&since=0") as ws:
        update = await _next(ws, "order_update")
    data = update["data"]
    assert data["order_id"] == events[0].order.id
    assert isinstance(data["timestamp"], int)
    assert (
        data["symbol"] == "BTCUSDT" and data["status"] == "pending" and data["quantity"] == "0.010"
    )


async def test_resume_message_replays_from_the_given_seq(
    base: str, store: Store, alice: Any
) -> None:
    user, token = alice
    await add_orders(store, user, 4)
    async with open_websocket_url(f"ws://{base}/ws?token={token}") as ws:
        assert (await _next(ws, "hello"))["seq"] == 4
        await ws.send_message(json.dumps({"type": "resume", "since": 1}))
        seqs = [(await _next(ws, "order_update"))["seq"] for _ in range(3)]
    assert seqs == [2, 3, 4]


async def test_garbage_frame_gets_an_error_and_the_connection_stays_usable(
    base: str, alice: Any
) -> None:
    _, token = alice
    async with open_websocket_url(f"ws://{base}/ws?token={token}") as ws:
        await _next(ws, "hello")
        for garbage in (
            "not json",
            "[1,2]",
            json.dumps({"type": "dance"}),
            json.dumps({"type": "resume", "since": "x"}),
        ):
            await ws.send_message(garbage)
            assert (await _next(ws))["type"] == "error"
        await ws.send_message(json.dumps({"type": "ping"}))
        assert (await _next(ws))["type"] == "pong"


async def test_oversized_frame_closes_with_1009(base: str, alice: Any) -> None:
    _, token = alice
    async with open_websocket_url(f"ws://{base}/ws?token={token}") as ws:
        await _next(ws, "hello")
        await ws.send_message("x" * (MAX_MESSAGE_SIZE + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await _next(ws)
    assert closed.value.reason.code == 1009


async def test_token_as_first_message(base: str, alice: Any) -> None:
    _, token = alice
    async with open_websocket_url(f"ws://{base}/ws") as ws:
        await ws.send_message(json.dumps({"type": "auth", "token": token}))
        assert (await _next(ws))["type"] == "hello"


async def test_without_a_token_the_connection_is_closed_1008(base: str) -> None:
    async with open_websocket_url(f"ws://{base}/ws") as ws:
        await ws.send_message(json.dumps({"type": "auth", "token": "v1.forged.token"}))
        with pytest.raises(ConnectionClosed) as closed:
            await _next(ws)
    assert closed.value.reason.code == 1008


async def test_a_foreign_origin_is_refused(base: str, alice: Any) -> None:
    _, token = alice
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(
            f"ws://{base}/ws?token={token}", extra_headers=[(b"Origin", b"https://evil.example")]
        ):
            pass
    assert rejected.value.status_code == 403


async def test_same_origin_is_allowed(base: str, alice: Any) -> None:
    _, token = alice
    origin = f"http://{base}".encode()
    async with open_websocket_url(
        f"ws://{base}/ws?token={token}", extra_headers=[(b"Origin", origin)]
    ) as ws:
        assert (await _next(ws))["type"] == "hello"


async def test_sessions_see_only_their_users_events(
    base: str, ctx: HttpContext, store: Store, alice: Any
) -> None:
    user, _ = alice
    await add_orders(store, user, 3)
    bob_token = await register(create_app(ctx).test_client(), "bob")
    async with open_websocket_url(f"ws://{base}/ws?token={bob_token}&since=0") as ws:
        assert (await _next(ws))["seq"] == 0
        await ws.send_message(json.dumps({"type": "ping"}))
        assert (await _next(ws))["type"] == "pong"  # no order_update of alice's came first


async def test_close_all_closes_sessions_with_1001(base: str, ctx: HttpContext, alice: Any) -> None:
    _, token = alice
    async with open_websocket_url(f"ws://{base}/ws?token={token}") as ws:
        await _next(ws, "hello")
        with trio.fail_after(5):
            await ctx.sessions.close_all()
        with pytest.raises(ConnectionClosed) as closed:
            await _next(ws)
    assert closed.value.reason.code == 1001
    assert len(ctx.sessions) == 0


async def test_bad_since_is_refused(base: str, alice: Any) -> None:
    _, token = alice
    with pytest.raises(ConnectionRejected) as rejected:
        async with open_websocket_url(f"ws://{base}/ws?token={token}&since=-3"):
            pass
    assert rejected.value.status_code == 400


async def test_a_replay_too_long_to_send_is_a_resync(base: str, store: Store, alice: Any) -> None:
    from tradercoin.http.ws import REPLAY_LIMIT

    user, token = alice
    await add_orders(store, user, REPLAY_LIMIT + 1)
    async with open_websocket_url(f"ws://{base}/ws?token={token}&since=0") as ws:
        await _next(ws, "hello")
        assert await _next(ws) == {"type": "resync", "seq": REPLAY_LIMIT + 1}


async def test_a_since_beyond_the_newest_seq_is_told_to_resync(
    base: str, store: Store, alice: Any
) -> None:
    user, token = alice
    await add_orders(store, user, 2)
    async with open_websocket_url(f"ws://{base}/ws?token={token}&since=50") as ws:
        assert (await _next(ws))["seq"] == 2
        assert await _next(ws) == {"type": "resync", "seq": 2}
        await add_orders(store, user, 1, symbol="ETHUSDT")
        await ws.send_message(json.dumps({"type": "resume", "since": 2}))
        assert (await _next(ws, "order_update"))["seq"] == 3
