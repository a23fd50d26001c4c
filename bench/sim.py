"""Simulator benchmark: what one request and one stream event cost the simulator.

1. In-process, no HTTP: ``Simulator.handle_http`` for USERS accounts (one resting LIMIT order
   each, then ``GET openOrders`` per account), CPU per request, client-side signing included.
2. Over loopback: ``tradercoin sim`` in a child process (Hypercorn), CONCURRENCY trio/httpx
   clients polling ``GET /fapi/v1/openOrders``; requests/s and the server's CPU per request
   (from /proc), so Hypercorn's share shows.
3. User stream in stream mode: USERS listenKeys on CONNECTIONS in-process connections, one
   fill per user; events delivered per CPU second.

    .venv/bin/python -m bench.sim                     # 2,000 users
    .venv/bin/python -m bench.sim --users 500 --concurrency 20 --seconds 5
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import subprocess
import sys
import time
from decimal import Decimal

import httpx
import trio

from tradercoin.clock import system_clock
from tradercoin.exchange.sim import Limits, Simulator
from tradercoin.exchange.sim.rest import Request

NO_LIMITS = Limits(weight_per_minute=10**9, orders_per_10s=10**9, orders_per_minute=10**9)
FORM = b"application/x-www-form-urlencoded"


def _signed(secret: str, params: dict[str, object]) -> bytes:
    payload = "&".join(f"{k}={v}" for k, v in params.items())
    signature = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}&signature={signature}".encode()


async def in_process(users: int) -> None:
    sim = Simulator(clock=system_clock(), limits=NO_LIMITS, volatility_scale=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        accounts = [sim.create_account() for _ in range(users)]
        started = time.process_time()
        for key, secret in accounts:
            body = _signed(
                secret,
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "timeInForce": "GTC",
                    "price": "49000",
                    "quantity": "0.010",
                    "timestamp": sim.clock.now_ms(),
                },
            )
            headers = {b"x-mbx-apikey": key.encode(), b"content-type": FORM}
            response = await sim.handle_http(
                Request("POST", "/fapi/v1/order", b"", body, headers, "127.0.0.1")
            )
            assert response.status == 200, response.body
        placed = time.process_time() - started
        started = time.process_time()
        for key, secret in accounts:
            query = _signed(secret, {"symbol": "BTCUSDT", "timestamp": sim.clock.now_ms()})
            response = await sim.handle_http(
                Request(
                    "GET",
                    "/fapi/v1/openOrders",
                    query,
                    b"",
                    {b"x-mbx-apikey": key.encode()},
                    "127.0.0.1",
                )
            )
            assert response.status == 200, response.body
        polled = time.process_time() - started
        print(
            f"in-process, {users} accounts: POST order {placed / users * 1e6:.0f} us CPU, "
            f"GET openOrders {polled / users * 1e6:.0f} us CPU per request"
        )
        nursery.cancel_scope.cancel()


def _cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()  # noqa: SIM115
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def loopback(users: int, concurrency: int, seconds: float) -> None:
    process, accounts, rest_url = await trio.to_thread.run_sync(_start_server, users)
    try:
        await _poll(process.pid, rest_url, accounts, concurrency, seconds)
    finally:
        process.terminate()
        await trio.to_thread.run_sync(process.wait)


def _start_server(users: int) -> tuple[subprocess.Popen[str], list[dict[str, str]], str]:
    """``tradercoin sim`` in a child: its accounts (stdout) and REST URL (stderr log)."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tradercoin.cli",
            "--log-level",
            "INFO",
            "sim",
            "--port",
            "0",
            "--accounts",
            str(users),
            "--weight-limit",
            str(10**9),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stderr is not None
    accounts = [json.loads(process.stdout.readline()) for _ in range(users)]
    for line in process.stderr:
        if "serving on " in line:
            return process, accounts, line.split("serving on ")[1].split()[0]
    process.terminate()
    raise RuntimeError("tradercoin sim did not start")


async def _poll(
    pid: int, rest_url: str, accounts: list[dict[str, str]], concurrency: int, seconds: float
) -> None:
    done = 0
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=rest_url, limits=limits) as http:

        async def user(account: dict[str, str], deadline: float) -> None:
            nonlocal done
            while time.monotonic() < deadline:
                query = _signed(
                    account["api_secret"],
                    {
                        "symbol": "BTCUSDT",
                        "recvWindow": 60000,
                        "timestamp": int(time.time() * 1000),
                    },
                )
                response = await http.get(
                    f"/fapi/v1/openOrders?{query.decode()}",
                    headers={"X-MBX-APIKEY": account["api_key"]},
                )
                assert response.status_code == 200, response.text
                done += 1

        cpu, start = _cpu_seconds(pid), time.monotonic()
        async with trio.open_nursery() as nursery:
            for account in accounts[:concurrency]:
                nursery.start_soon(user, account, start + seconds)
        elapsed, cpu = time.monotonic() - start, _cpu_seconds(pid) - cpu
    print(
        f"loopback (Hypercorn), {concurrency} concurrent clients: {done / elapsed:.0f} req/s, "
        f"server CPU {cpu / done * 1e6:.0f} us per request"
    )


async def stream_fanout(users: int, connections: int) -> None:
    sim = Simulator(clock=system_clock(), limits=NO_LIMITS, volatility_scale=0)
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        accounts = [sim.account(sim.create_account()[0]) for _ in range(users)]
        keys = [sim.streams.create_key(account) for account in accounts]
        per_conn = -(-users // connections)
        received = 0
        all_received = trio.Event()

        async def reader(chunk: list[str], ready: trio.Event) -> None:
            nonlocal received
            async with sim.open_websocket("ws://sim/private/stream") as ws:
                for n in range(0, len(chunk), 200):  # a URL carries ~200 keys at most
                    request = {"method": "SUBSCRIBE", "params": chunk[n : n + 200], "id": n}
                    await ws.send_message(json.dumps(request))
                    await ws.get_message()
                ready.set()
                while True:
                    await ws.get_message()
                    received += 1
                    if received == users * 3:  # NEW, TRADE, ACCOUNT_UPDATE each
                        all_received.set()

        for i in range(0, users, per_conn):
            ready = trio.Event()
            nursery.start_soon(reader, keys[i : i + per_conn], ready)
            await ready.wait()
        started = time.process_time()
        from tradercoin.exchange.sim.validate import OrderRequest

        spec = sim.specs["BTCUSDT"]
        for n, account in enumerate(accounts):
            if n % 100 == 0:
                await trio.lowlevel.checkpoint()
            order = sim.place(
                account,
                OrderRequest(
                    spec,
                    "BUY",
                    "LIMIT",
                    "GTC",
                    Decimal("0.010"),
                    Decimal("49000"),
                    None,
                    False,
                    False,
                    0,
                ),
            )
            sim.engine.fill(order)
        await all_received.wait()
        cpu = time.process_time() - started
        print(
            f"stream, {users} keys on {connections} connections: {received / cpu:.0f} "
            f"events delivered per CPU second (matching included)"
        )
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=8.0)
    args = parser.parse_args()
    print(
        f"{platform.python_implementation()} {platform.python_version()} "
        f"({sys.executable}), {os.cpu_count()} CPUs"
    )
    trio.run(in_process, args.users)
    trio.run(stream_fanout, args.users, args.connections)
    trio.run(loopback, args.users, args.concurrency, args.seconds)


if __name__ == "__main__":
    main()
