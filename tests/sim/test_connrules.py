"""Binance's WebSocket connection rules in the simulator: attempts per 5 minutes per IP
(429, then 418 and a ban), streams per connection, messages per second, and the statistics
that report them (in-process, MockClock)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import trio_websocket

from tests.sim.conftest import EPOCH_MS, SignedClient
from tests.sim.test_server import _read_until
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.sim import ConnectionLimits, Simulator, StreamConfig

STREAM = "ws://sim/private/stream"


async def _attempt(sim: Simulator, ip: str = "127.0.0.1") -> int:
    """One handshake: 101 when accepted (closed again at once), else the refusal status."""
    try:
        async with sim.open_websocket(STREAM, ip=ip):
            return 101
    except trio_websocket.ConnectionRejected as exc:
        return exc.status_code or 0


async def _small(nursery: trio.Nursery, **limits: Any) -> Simulator:
    config = StreamConfig(rules=ConnectionLimits(**limits))
    sim = Simulator(clock=FixedEpochClock(EPOCH_MS), stream=config, volatility_scale=0.0)
    await nursery.start(sim.run)
    return sim


async def test_300_attempts_per_5_minutes_then_429_with_retry_after(
    autojump_clock: trio.testing.MockClock, sim: Simulator
) -> None:
    start = trio.current_time()
    for i in range(300):
        assert await _attempt(sim) == 101, i
        await trio.sleep(0.5)  # the first attempt leaves the window at start + 300
    with pytest.raises(trio_websocket.ConnectionRejected) as refused:
        async with sim.open_websocket(STREAM):
            pass
    assert refused.value.status_code == 429
    headers = dict(refused.value.headers or [])
    assert headers[b"retry-after"] == b"150"
    assert json.loads(refused.value.body or b"")["code"] == -1003
    assert await _attempt(sim, ip="10.0.0.2") == 101  # per IP
    await trio.sleep_until(start + 300)
    assert await _attempt(sim) == 101
    rules = sim.statistics().connection_rules
    assert rules.refusals == 1 and rules.max_attempts_in_window == 300
    assert rules.attempts_in_window == {"127.0.0.1": 300, "10.0.0.2": 1}


async def test_repeated_attempts_while_refused_get_418_and_a_ban(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = await _small(nursery, max_attempts=2, attempt_window=60, ban_after=3)
    assert [await _attempt(sim) for _ in range(5)] == [101, 101, 429, 429, 429]
    assert await _attempt(sim) == 418
    await trio.sleep(119)
    assert await _attempt(sim) == 418  # the ban holds even once the window is empty
    await trio.sleep(1)
    assert await _attempt(sim) == 101
    rules = sim.statistics().connection_rules
    assert (rules.refusals, rules.banned_refusals, rules.bans) == (3, 2, 1)


async def test_more_than_1024_streams_on_a_connection_are_refused(
    autojump_clock: trio.testing.MockClock, sim: Simulator
) -> None:
    async with sim.open_websocket(STREAM) as ws:
        keys = [f"k{i:04d}" for i in range(1025)]
        await ws.send_message(json.dumps({"method": "SUBSCRIBE", "params": keys, "id": 1}))
        reply = json.loads(await ws.get_message())
        assert reply["id"] == 1 and "1024" in reply["error"]["msg"]


async def test_a_url_over_the_stream_limit_is_refused_and_subscribe_stops_at_it(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = await _small(nursery, max_streams=2)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.asgi_app), base_url="http://s")
    keys = []
    for _ in range(3):
        client = SignedClient(http, sim, *sim.create_account())
        keys.append((await client.keyed("POST", "/fapi/v1/listenKey")).json()["listenKey"])
    query = "&".join(f"listenKey={k}" for k in keys)
    with pytest.raises(trio_websocket.ConnectionRejected) as refused:
        async with sim.open_websocket(f"{STREAM}?{query}"):
            pass
    assert refused.value.status_code == 400
    async with sim.open_websocket(f"{STREAM}?listenKey={keys[0]}&listenKey={keys[1]}") as ws:
        assert sim.statistics().connection_rules.streams_per_connection == [2]
        await ws.send_message(json.dumps({"method": "SUBSCRIBE", "params": [keys[2]], "id": 5}))
        assert "error" in json.loads(await ws.get_message())
        await ws.send_message('{"method": "LIST_SUBSCRIPTIONS", "id": 6}')
        assert sorted(json.loads(await ws.get_message())["result"]) == sorted(keys[:2])


async def test_ten_messages_a_second_pass_the_eleventh_closes(
    autojump_clock: trio.testing.MockClock, sim: Simulator
) -> None:
    async with sim.open_websocket(STREAM) as ws:
        for _ in range(3):  # 10 a second, for three seconds: allowed
            for i in range(10):
                await ws.send_message(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
                assert json.loads(await ws.get_message())["id"] == i
            await trio.sleep(1.0)
        for i in range(10):
            await ws.send_message(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
        await ws.send_message(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 10}))
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            while True:
                await ws.get_message()
        assert closed.value.reason.code == 1008
        assert closed.value.reason.reason == "too many messages"
    assert sim.statistics().connection_rules.closed_for_messages == 1


async def test_statistics_over_the_admin_route(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    async with sim.open_websocket(STREAM):
        body = (await http.get("/sim/admin/statistics")).json()
    rules = body["connection_rules"]
    assert rules["connections_open"] == 1 and rules["streams_per_connection"] == [0]
    assert rules["attempts_in_window"] == {"127.0.0.1": 1} and rules["refusals"] == 0


async def test_cli_flags_set_the_rules_over_real_sockets() -> None:
    """``tradercoin sim --ws-attempts 2``: the third handshake from 127.0.0.1 gets 429."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tradercoin.cli", "sim", "--port", "0", "--ws-attempts", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        err = await _read_until(process.stderr, lambda text: "(user stream)" in text)
        found = re.search(r"and (ws://\S+) \(user stream\)", err)
        assert found is not None
        url = f"{found.group(1)}/private/stream"
        for _ in range(2):
            async with trio_websocket.open_websocket_url(url):
                pass
        with pytest.raises(trio_websocket.ConnectionRejected) as refused:
            async with trio_websocket.open_websocket_url(url):
                pass
        assert refused.value.status_code == 429
    finally:
        process.terminate()
        await process.wait()
