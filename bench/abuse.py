"""Abuse: the floods of issue 13 against one real ``tradercoin serve`` while a user trades.

A ``tradercoin sim`` and a ``tradercoin serve`` (SQLite) run on loopback. One normal user
holds a /ws session and, all along, (a) reads ``GET /api/orders`` in a loop, (b) places a
LIMIT order, has the exchange fill it (``/sim/admin/fill``) and waits for the ``filled``
update on /ws (delivery latency: from the fill call to the receipt), and (c) logs in with
the right password once a second from an address that never failed. Phases, each
``--seconds`` long, one flood at a time:

- quiet: nothing else;
- registrations: 25 clients creating accounts from one address each;
- logins: 25 clients guessing passwords of existing accounts from 25 addresses;
- spraying: one guess on each of many account names from 11 addresses;
- slow bodies: 500 connections that declare a 100-byte body and send 1 byte;
- oversized: 25 clients declaring a 2 MB body and sending 2 bytes, over and over;
- sockets: 1,000 unauthenticated /ws connections from 8 addresses, each reopened a second
  after it is refused or closed.

For each phase it prints the user's p50/p99 of ``GET /api/orders``, of delivery and of the
login, what the flood got (status counts), and the server's file descriptors and RSS at the
end of the phase; then both again after a settle. Every loop is bounded by its phase's time
and every connection targets 127.0.0.0/8.

    .venv/bin/python -m bench.abuse                 # 20 s a phase
    .venv/bin/python -m bench.abuse --seconds 10
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from tests.procs import Child, serve_env, start_serve, start_sim

PASSWORD = "plum Tractor 93 violet"
SYMBOL = "BTCUSDT"


@dataclass
class Phase:
    name: str
    reads: list[float] = field(default_factory=list)
    deliveries: list[float] = field(default_factory=list)
    logins: list[float] = field(default_factory=list)
    login_statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    attack: collections.Counter[str] = field(default_factory=collections.Counter)
    fds: int = 0
    rss_mib: float = 0.0


def client(url: str, address: str = "127.0.0.1", timeout: float = 30) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(base_url=url, transport=transport, timeout=timeout)


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def process_figures(pid: int) -> tuple[int, float]:
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return fds, int(line.split()[1]) / 1024
    return fds, 0.0


# ------------------------------------------------------------------ the normal user


async def read_loop(http: httpx.AsyncClient, user: dict[str, str], phase: Phase) -> None:
    while True:
        started = time.monotonic()
        answer = await http.get("/api/orders?page_size=20", headers=user)
        if answer.status_code == 200:
            phase.reads.append(time.monotonic() - started)
        await trio.sleep(0.05)


async def trade_loop(
    http: httpx.AsyncClient, sim: httpx.AsyncClient, ws: Any, user: dict[str, str], phase: Phase
) -> None:
    price = Decimal((await sim.get("/sim/admin/price", params={"symbol": SYMBOL})).json()["price"])
    limit = str((price * Decimal("0.9")).quantize(Decimal("0.1")))
    body = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": "0.010", "price": limit}
    while True:
        placed = await http.post("/api/orders", json=body, headers=user)
        order = placed.json()["data"]
        started = time.monotonic()
        fill = {"symbol": SYMBOL, "orderId": order["exchange_order_id"]}
        await sim.post("/sim/admin/fill", json=fill)
        while True:
            message = json.loads(await ws.get_message())
            data = message.get("data") or {}
            if data.get("id") == order["id"] and data.get("status") == "filled":
                phase.deliveries.append(time.monotonic() - started)
                break
        await trio.sleep(0.2)


async def login_loop(url: str, phase: Phase) -> None:
    async with client(url, "127.0.9.9") as http:
        while True:
            started = time.monotonic()
            body = {"username": "trader", "password": PASSWORD}
            answer = await http.post("/api/auth/login", json=body)
            http.cookies.clear()
            phase.login_statuses[answer.status_code] += 1
            phase.logins.append(time.monotonic() - started)
            await trio.sleep(1.0)


# ------------------------------------------------------------------ the floods


async def _workers(count: int, work: Callable[[int], Awaitable[None]]) -> None:
    async with trio.open_nursery() as nursery:
        for i in range(count):
            nursery.start_soon(work, i)


async def _post_flood(
    url: str,
    phase: Phase,
    workers: int,
    path: str,
    address: Callable[[int], str],
    body: Callable[[int, int], dict[str, str]],
    pause: float = 0.0,
) -> None:
    """``workers`` clients, each from ``address(i)``, POSTing ``body(i, n)`` in a loop
    (``pause`` seconds after a 429)."""

    async def work(i: int) -> None:
        async with client(url, address(i)) as http:
            n = 0
            while True:
                n += 1
                answer = await http.post(path, json=body(i, n))
                http.cookies.clear()
                phase.attack[str(answer.status_code)] += 1
                if answer.status_code == 429:
                    await trio.sleep(pause)

    await _workers(workers, work)


async def flood_registrations(url: str, phase: Phase) -> None:
    await _post_flood(
        url,
        phase,
        25,
        "/api/auth/register",
        lambda i: f"127.0.20.{i + 1}",
        lambda i, n: {"username": f"flood{i}x{n}", "password": PASSWORD},
        pause=0.05,
    )


async def flood_logins(url: str, phase: Phase, names: list[str]) -> None:
    await _post_flood(
        url,
        phase,
        25,
        "/api/auth/login",
        lambda i: f"127.0.21.{i + 1}",
        lambda i, n: {"username": names[n % len(names)], "password": f"guess {i} {n}"},
    )


async def flood_spraying(url: str, phase: Phase) -> None:
    await _post_flood(
        url,
        phase,
        22,
        "/api/auth/login",
        lambda i: f"127.0.22.{i % 11 + 1}",
        lambda i, n: {"username": f"sprayed{i}x{n}", "password": "Summer2024!"},
    )


async def _raw_once(port: int, address: str, request: bytes, phase: Phase) -> None:
    """Send ``request`` and read until the server closes; counts what came back."""
    sock = trio.socket.socket()
    try:
        await sock.bind((address, 0))
        await sock.connect(("127.0.0.1", port))
        await sock.send(request)
        first = b""
        while chunk := await sock.recv(65536):
            first = first or chunk
        phase.attack[first[9:12].decode(errors="replace") or "closed"] += 1
    except OSError as error:
        phase.attack[type(error).__name__] += 1
    finally:
        sock.close()


async def flood_bodies(port: int, phase: Phase, *, declared: int, sent: bytes, count: int) -> None:
    head = (
        b"POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % declared
    )

    async def work(i: int) -> None:
        while True:
            await _raw_once(port, f"127.0.23.{i % 200 + 1}", head + sent, phase)

    await _workers(count, work)


async def flood_sockets(port: int, phase: Phase) -> None:
    upgrade = (
        b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    async def work(i: int) -> None:
        while True:  # hold a socket; when it is refused or closed, open another a second later
            await _raw_once(port, f"127.0.24.{i % 8 + 1}", upgrade, phase)
            await trio.sleep(1.0)

    await _workers(1000, work)


# ------------------------------------------------------------------ the run


async def run_phase(
    phase: Phase, seconds: float, flood: Callable[[], Awaitable[None]] | None, parts: Any
) -> None:
    url, http, sim, ws, user, pid = parts
    with trio.move_on_after(seconds):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_loop, http, user, phase)
            nursery.start_soon(trade_loop, http, sim, ws, user, phase)
            nursery.start_soon(login_loop, url, phase)
            if flood is not None:
                nursery.start_soon(flood)
    phase.fds, phase.rss_mib = process_figures(pid)


async def setup(serve: Child, sim_child: Child) -> tuple[dict[str, str], list[str]]:
    async with client(serve.url) as http:
        answer = await http.post(
            "/api/auth/register", json={"username": "trader", "password": PASSWORD}
        )
        user = {"Authorization": f"Bearer {answer.json()['token']}"}
        account = sim_child.extra["accounts"][0]
        await http.put("/api/credentials", json=account, headers=user)
        names = []
        for i in range(8):
            async with client(serve.url, f"127.0.8.{i + 1}") as other:
                body = {"username": f"victim{i}", "password": PASSWORD}
                await other.post("/api/auth/register", json=body)
            names.append(f"victim{i}")
    return user, names


async def run(seconds: float, where: Path, only: str | None = None) -> list[Phase]:
    sim_child = await trio.to_thread.run_sync(
        lambda: start_sim(where, "--fill-latency", "0.2", "--weight-limit", "1000000", accounts=1)
    )
    env = serve_env(
        f"sqlite:///{where}/abuse.db",
        TRADERCOIN_EXCHANGE=sim_child.url,
        TRADERCOIN_EXCHANGE_WS=sim_child.extra["ws_url"],
        TRADERCOIN_WEIGHT_BUDGET_PER_MINUTE="100000",
    )
    serve = await trio.to_thread.run_sync(lambda: start_serve(where, env))
    port = int(serve.url.rsplit(":", 1)[1])
    try:
        user, names = await setup(serve, sim_child)
        token = user["Authorization"][7:]
        ws_url = serve.url.replace("http://", "ws://") + f"/ws?token={token}"
        async with (
            client(serve.url) as http,
            httpx.AsyncClient(base_url=sim_child.url, timeout=30) as sim,
            open_websocket_url(ws_url) as ws,
        ):
            parts = (serve.url, http, sim, ws, user, serve.process.pid)
            floods: list[tuple[str, Callable[[Phase], Awaitable[None]] | None]] = [
                ("quiet", None),
                ("registrations", lambda p: flood_registrations(serve.url, p)),
                ("logins", lambda p: flood_logins(serve.url, p, names)),
                ("spraying", lambda p: flood_spraying(serve.url, p)),
                (
                    "slow bodies",
                    lambda p: flood_bodies(port, p, declared=100, sent=b"{", count=500),
                ),
                (
                    "oversized",
                    lambda p: flood_bodies(port, p, declared=2_000_000, sent=b"ab", count=25),
                ),
                ("sockets", lambda p: flood_sockets(port, p)),
            ]
            phases = []
            for name, flood in floods:
                if only is not None and name not in ("quiet", only):
                    continue
                phase = Phase(name)
                start = (lambda f=flood, ph=phase: f(ph)) if flood is not None else None
                await run_phase(phase, seconds, start, parts)
                phases.append(phase)
                print(f"  {name}: done", file=sys.stderr, flush=True)
            settle = Phase("after 15 s settle")
            await trio.sleep(15)
            await run_phase(settle, 5.0, None, parts)
            phases.append(settle)
        return phases
    finally:
        await trio.to_thread.run_sync(serve.stop)
        await trio.to_thread.run_sync(sim_child.stop)


def ms(value: float) -> str:
    return "-" if value != value else f"{value * 1000:.0f}"


def report(phases: list[Phase]) -> None:
    print(f"interpreter: {platform.python_implementation()} {platform.python_version()}")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    print(
        "| phase | orders GET p50 / p99 ms (n) | delivery p50 / p99 ms (n) | "
        "login p99 ms (statuses) | flood answers | fds | RSS MiB |"
    )
    print("|---|---|---|---|---|---|---|")
    for p in phases:
        reads = f"{ms(quantile(p.reads, 0.5))} / {ms(quantile(p.reads, 0.99))} ({len(p.reads)})"
        deliv = p.deliveries
        delivery = f"{ms(quantile(deliv, 0.5))} / {ms(quantile(deliv, 0.99))} ({len(deliv)})"
        login = f"{ms(quantile(p.logins, 0.99))} ({dict(p.login_statuses)})"
        attack = ", ".join(f"{k}: {v}" for k, v in sorted(p.attack.items())) or "-"
        print(
            f"| {p.name} | {reads} | {delivery} | {login} | {attack} | {p.fds} | {p.rss_mib:.0f} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase")
    parser.add_argument("--only", default=None, help="run only the quiet phase and this one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tradercoin-abuse-") as where:
        try:
            phases = trio.run(run, args.seconds, Path(where), args.only)
        finally:
            log = (Path(where) / "serve.log").read_text()
            errors = [line for line in log.splitlines() if " ERROR " in line]
            print(f"service log: {len(errors)} ERROR lines")
            if errors:
                print(log[log.index(errors[0]) :][:6000], "...", log[-3000:], sep="\n")
    report(phases)


if __name__ == "__main__":
    main()
