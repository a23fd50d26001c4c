"""/ws under bad input, against the whole service on real sockets (tests/inproc.py).

Attackers, authenticated as alice or not at all, send random JSON, text that is not JSON,
deeply nested JSON, binary frames, frames over the 16 KiB limit and floods of pings they never
read, all at once. Meanwhile bob, on the same server, trades: his session must get each of
his order updates and answer his pings. Afterwards the server is healthy, alice can still
connect, and nothing was logged at ERROR (no handler crashed).
"""

from __future__ import annotations

import json
import logging
import random
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.fuzzing import random_json
from tests.inproc import next_message, register, running_service, ws_url
from tradercoin.http.ws import MAX_MESSAGE_SIZE
from tradercoin.service import Service

LIVE_TIMEOUT = 30  # a MARKET order fills after the simulator's latency; polls every 5 s
FRAMES = 300
FLOOD = 3000
TOO_BIG = 1009
POLICY = 1008


def _fuzz_frame(rng: random.Random) -> str | bytes:
    """One frame a careless or hostile client might send."""
    kind = rng.randrange(8)
    if kind == 0:  # a known type with random fields
        message = {"type": rng.choice(["ping", "resume", "auth", "hello"])}
        message.update({rng.choice(["since", "token", "seq"]): random_json(rng)})
        return json.dumps(message)
    if kind == 1:
        return json.dumps({"type": random_json(rng), "since": random_json(rng)})
    if kind == 2:
        return json.dumps(random_json(rng))
    if kind == 3:  # text that is not JSON
        return "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(1, 200)))
    if kind == 4:  # binary: random bytes, often not UTF-8
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
    if kind == 5:  # binary JSON
        return json.dumps({"type": "ping"}).encode()
    if kind == 6:  # nested as deep as the frame limit allows
        opener = rng.choice(["[", '{"a":'])
        return opener * rng.randrange(1000, MAX_MESSAGE_SIZE // len(opener))
    return json.dumps({"type": "resume", "since": rng.choice([0, 2**63, 10**30, -1, 1.5])})


async def _usable(ws: Any) -> None:
    """The connection still answers a ping."""
    await ws.send_message(json.dumps({"type": "ping"}))
    await next_message(ws, "pong")


async def _random_frames(url: str, seed: int) -> None:
    rng = random.Random(seed)
    async with open_websocket_url(url) as ws:
        for _ in range(FRAMES):
            await ws.send_message(_fuzz_frame(rng))
        await _usable(ws)


async def _nested(url: str) -> None:
    async with open_websocket_url(url) as ws:
        await next_message(ws, "hello")
        for opener, closer in (("[", "]"), ('{"a":', "}")):
            depth = MAX_MESSAGE_SIZE // (len(opener) + len(closer)) - 1
            await ws.send_message(opener * depth + "1" + closer * depth)
            error = await next_message(ws, "error")
            assert error["code"] == "bad_message"
        await _usable(ws)


async def _too_big(url: str, frame: str | bytes) -> None:
    async with open_websocket_url(url) as ws:
        await ws.send_message(frame)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await ws.get_message()
    assert closed.value.reason.code == TOO_BIG


async def _flood(url: str) -> None:
    """Pings sent without reading the pongs, then hang up."""
    async with open_websocket_url(url) as ws:
        for _ in range(FLOOD):
            await ws.send_message('{"type":"ping"}')


async def _garbage_before_auth(base: str, frame: str | bytes) -> None:
    async with open_websocket_url(f"{base}/ws") as ws:
        await ws.send_message(frame)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.get_message()
    assert closed.value.reason.code in (POLICY, TOO_BIG)


async def _attack(service: Service, alice: dict[str, str]) -> None:
    url = ws_url(service, alice)
    base = service.url.replace("http://", "ws://")
    big = "x" * (MAX_MESSAGE_SIZE + 1)
    async with trio.open_nursery() as nursery:
        for seed in range(4):
            nursery.start_soon(_random_frames, url, seed)
        nursery.start_soon(_nested, url)
        nursery.start_soon(_too_big, url, big)
        nursery.start_soon(_too_big, url, big.encode())
        nursery.start_soon(_flood, url)
        for frame in ("not json", b"\xff\xfe", "[" * 5000, '{"type":"auth","token":7}', big):
            nursery.start_soon(_garbage_before_auth, base, frame)


async def _trade_and_ping(
    http: httpx.AsyncClient, bob_ws: Any, bob: dict[str, str], seqs: list[int]
) -> None:
    """Bob's MARKET order, seen filled on his session; then a ping answered. Every update's
    seq goes to ``seqs``."""
    body = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}
    placed = await http.post("/api/orders", json=body, headers=bob)
    assert placed.status_code == 201, placed.text
    order_id = placed.json()["data"]["id"]
    while True:
        update = await next_message(bob_ws, "order_update")
        seqs.append(update["seq"])
        if update["data"]["id"] == order_id and update["data"]["status"] == "filled":
            break
    await _usable(bob_ws)


async def test_fuzz_leaves_the_server_and_other_sessions_alive(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with (
        running_service(tmp_path) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        alice = await register(http, "alice")
        bob = await register(http, "bob")
        async with open_websocket_url(ws_url(service, bob)) as bob_ws:
            with trio.fail_after(LIVE_TIMEOUT):
                await next_message(bob_ws, "hello")
                seqs: list[int] = []
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(_attack, service, alice)
                    await _trade_and_ping(http, bob_ws, bob, seqs)
                await _trade_and_ping(http, bob_ws, bob, seqs)
        assert seqs == list(range(1, len(seqs) + 1))  # each change once, in order
        assert (await http.get("/healthz")).status_code == 200
        with trio.fail_after(LIVE_TIMEOUT):
            async with open_websocket_url(ws_url(service, alice)) as ws:
                await next_message(ws, "hello")
                await _usable(ws)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


@pytest.mark.parametrize("since", [10**30, 10**6])
async def test_a_resume_beyond_the_newest_seq_is_a_resync_and_updates_still_flow(
    tmp_path: Any, since: int
) -> None:
    async with (
        running_service(tmp_path) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        alice = await register(http, "alice")
        with trio.fail_after(LIVE_TIMEOUT):
            async with open_websocket_url(ws_url(service, alice)) as ws:
                hello = await next_message(ws, "hello")
                await ws.send_message(json.dumps({"type": "resume", "since": since}))
                assert (await next_message(ws, "resync"))["seq"] == hello["seq"]
                seqs: list[int] = []
                await _trade_and_ping(http, ws, alice, seqs)
        assert seqs == list(range(1, len(seqs) + 1))
