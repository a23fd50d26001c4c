"""The simulator over real sockets: drops close the connection, the CLI serves what it
prints (no autojump here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest
import trio
import trio_websocket

from tradercoin.clock import system_clock
from tradercoin.exchange.sim import Fault, FaultKind, Simulator, serve_simulator


async def test_drop_closes_the_connection_and_server_lives_on(nursery: trio.Nursery) -> None:
    sim = Simulator(clock=system_clock(), volatility_scale=0)
    address = await nursery.start(serve_simulator, sim, "127.0.0.1", 0)
    async with httpx.AsyncClient(base_url=address.rest_url) as http:
        sim.inject(Fault(FaultKind.DROP_REQUEST), path="/fapi/v1/time")
        with pytest.raises(httpx.TransportError):
            await http.get("/fapi/v1/time")
        response = await http.get("/fapi/v1/time")
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"


async def test_websocket_route_over_loopback(nursery: trio.Nursery) -> None:
    sim = Simulator(clock=system_clock(), volatility_scale=0)
    address = await nursery.start(serve_simulator, sim, "127.0.0.1", 0)
    with pytest.raises(trio_websocket.ConnectionRejected) as rejected:
        async with trio_websocket.open_websocket_url(f"{address.ws_url}/elsewhere"):
            pass
    assert rejected.value.status_code == 404


async def test_cli_prints_accounts_then_serves() -> None:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "tradercoin.cli", "sim", "--port", "0", "--accounts", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        out = await _read_until(process.stdout, lambda text: text.count("\n") >= 2)
        accounts = [json.loads(line) for line in out.splitlines()]
        assert [sorted(a) for a in accounts] == [["api_key", "api_secret"]] * 2
        err = await _read_until(process.stderr, lambda text: "serving on" in text)
        rest_url = re.search(r"serving on (http://\S+)", err)
        assert rest_url is not None
        async with httpx.AsyncClient(base_url=rest_url.group(1)) as http:
            created = await http.post("/sim/admin/accounts")
            assert sorted(created.json()) == ["api_key", "api_secret"]
    finally:
        process.terminate()
        await process.wait()


async def _read_until(stream: trio.abc.ReceiveStream, done: object) -> str:
    text = ""
    assert callable(done)
    while not done(text):
        chunk = await stream.receive_some()
        assert chunk, f"stream ended early: {text!r}"
        text += chunk.decode()
    return text


async def test_cli_port_in_use_is_one_line_and_status_1() -> None:
    with trio.socket.socket() as taken:
        await taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await trio.run_process(
            [sys.executable, "-m", "tradercoin.cli", "sim", "--port", str(port)],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 1
    assert result.stderr.decode().strip() == (
        f"tradercoin: error: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
