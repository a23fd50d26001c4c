"""bench/http.py: the HTTP and WebSocket figures of a real ``tradercoin`` server (issue 5 §7).

What it does, in order:

1. seeds a temp SQLite file with ``--users`` users x ``--orders`` orders (through the store);
2. starts the server in a subprocess (this file's ``serve`` mode: ``open_service`` with the
   embedded simulator, plus benchmark routes: ``GET /bench/bare`` (a Quart route) and
   ``GET /bench/bare-asgi`` (plain ASGI in front of Quart), bare in-memory JSON answers of the
   size of an orders page; ``POST /bench/fill``, which fills simulator orders at a given rate);
3. drives ``GET /api/orders`` with wrk (Debian's ``wrk``; a trio client if it is missing) at
   concurrency 10 and 100, cold (each request a user not read before: the store path) and
   warm (the per-user cache), beside the bare route: req/s, p50, p99;
4. opens ``--sessions`` idle WebSocket sessions and reports the server's RSS per session;
5. registers ``--fill-users`` users (simulated keys, one actor and one session each), rests
   LIMIT orders, fills them in parts at ``--fill-rate`` fills/s and reports the p50/p99 of
   ``order_update`` delivery (exchange fill time to the client's receipt).

Run: ``.venv/bin/python bench/http.py`` (defaults are the issue's sizes; ``--quick`` for a
short run). It prints which interpreter ran it.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, where "http.py" would shadow
# the standard library's http package: take it off before anything imports http.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

import argparse
import contextlib
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import httpx
import trio

from tradercoin.clock import system_clock
from tradercoin.config import Settings
from tradercoin.http.security import Passwords, TokenSigner
from tradercoin.orders import (
    OrderChange,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    new_order,
    order_to_wire,
)
from tradercoin.service import Service, open_service, token_key
from tradercoin.store import Role, SecretBox, generate_key, open_store

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
FINAL = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED)
EPOCH_MS = 1_767_225_600_000
FILL_ROUNDS = 5
COLD_SECONDS = 5.0


# ------------------------------------------------------------------------ seeding


def _orders_of(user_id: int, count: int) -> list[Any]:
    changes = []
    for i in range(count):
        change = new_order(
            user_id=user_id,
            symbol=SYMBOLS[i % 3],
            side=Side.BUY if i % 2 else Side.SELL,
            type=OrderType.LIMIT,
            quantity=Decimal("0.010"),
            price=Decimal(40_000 + i),
            time_in_force=TimeInForce.GTC,
            client_order_id=f"seed-{user_id}-{i}",
            now=EPOCH_MS + i * 1000,
        )
        changes.append(OrderChange(before=None, after=replace(change.after, status=FINAL[i % 3])))
    return changes


async def seed(url: str, key: str, users: int, per_user: int) -> None:
    """``users`` users (no exchange keys) with ``per_user`` final orders each."""
    password_hash = await Passwords.fast_for_tests().hash("bench password")
    async with open_store(url, secrets=SecretBox.parse(key), clock=system_clock()) as store:
        limiter = trio.CapacityLimiter(32)

        async def one(n: int) -> None:
            async with limiter:
                user = await store.create_user(f"user{n:05d}", password_hash, Role.USER)
                await store.apply(_orders_of(user.id, per_user))

        async with trio.open_nursery() as nursery:
            for n in range(users):
                nursery.start_soon(one, n)


# ------------------------------------------------------------------------ server mode


def add_bench_routes(service: Service) -> None:
    """``GET /bench/bare`` and ``POST /bench/fill`` on the service's app."""
    from quart import Response, request, websocket

    sample = _orders_of(1, 20)
    wire = [order_to_wire(replace(c.after, id=i + 1)) for i, c in enumerate(sample)]
    bare = json.dumps(
        {"status": "success", "data": wire, "total": 100, "page": 1, "page_size": 20},
        separators=(",", ":"),
    ).encode()

    async def bare_route() -> Response:
        return Response(bare, 200, content_type="application/json")

    async def fill_route() -> Response:
        body = await request.get_json()
        ids = [int(i) for i in body["ids"]]
        done, failed = await _fill_paced(service, ids, int(body["rounds"]), float(body["rate"]))
        return Response(
            json.dumps({"done": done, "failed": failed}), 200, content_type="application/json"
        )

    async def ws_bare_route() -> None:
        await websocket.accept()
        await websocket.send('{"type":"hello"}')
        while True:
            await websocket.receive()

    inner = service.app.asgi_app

    async def bare_asgi(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == "/bench/bare-asgi":
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(bare)),
            ]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": bare})
            return
        await inner(scope, receive, send)

    service.app.asgi_app = bare_asgi  # type: ignore[method-assign]
    service.app.add_url_rule("/bench/bare", view_func=bare_route, methods=["GET"])
    service.app.add_websocket("/bench/ws-bare", view_func=ws_bare_route)
    service.app.add_url_rule("/bench/fill", view_func=fill_route, methods=["POST"])


async def _fill_paced(
    service: Service, ids: list[int], rounds: int, rate: float
) -> tuple[int, int]:
    """``rounds`` passes over the BTCUSDT orders ``ids``, filling 0.001 of each per pass, at
    ``rate`` fills per second on trio's clock."""
    start = trio.current_time()
    done = failed = 0
    part = Decimal("0.001")
    for i, order_id in enumerate(ids * rounds):
        await trio.sleep_until(start + i / rate)
        try:
            service.simulator.fill("BTCUSDT", order_id, part)
            done += 1
        except Exception:  # an order already closed: counted, not fatal
            failed += 1
    return done, failed


async def serve_main(db: str, key: str, port: int) -> None:
    settings = Settings(
        database_url=db,
        master_key=key,
        port=port,
        log_level="WARNING",
        registrations_per_address=10**9,  # the benchmark registers its users from one address
        registrations_per_hour=10**9,
    )
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with open_service(
            settings, passwords=Passwords.fast_for_tests(), configure=add_bench_routes
        ) as service:
            print(json.dumps({"url": service.url, "sim": service.sim_url}), flush=True)
            async for _ in signals:
                break


# ------------------------------------------------------------------------ HTTP load


_WRK_LUA = """
tokens = {%s}
counter = 0
request = function()
  counter = counter + 1
  local t = tokens[((counter - 1) %% #tokens) + 1]
  return wrk.format("GET", "%s", {["Authorization"] = "Bearer " .. t})
end
"""


def _to_ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(
    url: str, path: str, tokens: list[str] | None, concurrency: int, seconds: float, workdir: Path
) -> dict[str, float]:
    """Run wrk; ``{"rps", "p50", "p99", "errors"}`` (ms)."""
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{seconds:.0f}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    if tokens:
        script = workdir / "tokens.lua"
        script.write_text(_WRK_LUA % (",".join(f'"{t}"' for t in tokens), path))
        command += ["-s", str(script)]
    out = subprocess.run([*command, url + path], capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+([\d.]+\w+)", out, re.M))
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for q in ("50", "99"):
        number, unit = re.match(r"([\d.]+)(\w+)", latency[q]).groups()  # type: ignore[union-attr]
        result[f"p{q}"] = _to_ms(number, unit)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


async def trio_load(
    url: str, path: str, tokens: list[str] | None, concurrency: int, seconds: float
) -> dict[str, float]:
    """A bounded closed-loop generator (when wrk is missing): ``concurrency`` workers."""
    latencies: list[float] = []
    errors = 0
    deadline = trio.current_time() + seconds
    counter = iter(range(10**9))
    async with httpx.AsyncClient(
        base_url=url, limits=httpx.Limits(max_connections=concurrency)
    ) as client:

        async def worker() -> None:
            nonlocal errors
            while trio.current_time() < deadline:
                n = next(counter)
                headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"} if tokens else {}
                started = trio.current_time()
                response = await client.get(path, headers=headers)
                latencies.append((trio.current_time() - started) * 1000)
                errors += response.status_code != 200

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
    latencies.sort()
    return {
        "rps": len(latencies) / seconds,
        "p50": latencies[len(latencies) // 2],
        "p99": latencies[int(len(latencies) * 0.99)],
        "errors": float(errors),
    }


def load(
    url: str, path: str, tokens: list[str] | None, concurrency: int, seconds: float, workdir: Path
) -> dict[str, float]:
    if shutil.which("wrk"):
        return wrk(url, path, tokens, concurrency, seconds, workdir)
    return trio.run(trio_load, url, path, tokens, concurrency, seconds)


async def warm(url: str, tokens: list[str]) -> None:
    """Read each user's first page once (fills the per-user cache)."""
    limiter = trio.CapacityLimiter(20)
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one(token: str) -> None:
            async with limiter:
                response = await client.get(
                    "/api/orders", headers={"Authorization": f"Bearer {token}"}
                )
                response.raise_for_status()

        async with trio.open_nursery() as nursery:
            for token in tokens:
                nursery.start_soon(one, token)


async def mint_tokens(key: str, user_ids: list[int]) -> list[str]:
    signer = TokenSigner(token_key(Settings(master_key=key)), clock=system_clock())
    return [signer.issue(user_id) for user_id in user_ids]


# ------------------------------------------------------------------------ WebSocket


def rss_kb(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


async def hold_sessions(
    ws_base: str, tokens: list[str], pid: int, path: str = "/ws"
) -> dict[str, float]:
    """Open one idle session per token on ``path``; the server's RSS growth per session."""
    from trio_websocket import open_websocket_url

    opened = trio.Event()
    release = trio.Event()
    count = 0
    limiter = trio.CapacityLimiter(50)

    async def session(token: str) -> None:
        nonlocal count
        async with limiter:
            ws_cm = open_websocket_url(f"{ws_base}{path}?token={token}")
            ws = await ws_cm.__aenter__()
        try:
            await ws.get_message()  # hello
            count += 1
            if count == len(tokens):
                opened.set()
            await release.wait()
        finally:
            await ws_cm.__aexit__(None, None, None)

    before = rss_kb(pid)
    started = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for token in tokens:
            nursery.start_soon(session, token)
        await opened.wait()
        took = time.perf_counter() - started
        await trio.sleep(3)
        after = rss_kb(pid)
        release.set()
    return {
        "sessions": len(tokens),
        "rss_before_mb": before / 1024,
        "rss_after_mb": after / 1024,
        "kb_per_session": (after - before) / len(tokens),
        "open_per_s": len(tokens) / took,
    }


class DeliveryProbe:
    """The clients' side of the delivery figure: one listening task per user's session."""

    def __init__(self, url: str, expected_sessions: int) -> None:
        self.url = url.replace("http", "ws", 1)
        self.expected_sessions = expected_sessions
        self.connected = 0
        self.ready = trio.Event()
        self.filling = trio.Event()
        self.latencies: list[float] = []
        self.expected = 0
        self.all_in = trio.Event()

    async def listen(self, token: str) -> None:
        from trio_websocket import open_websocket_url

        async with open_websocket_url(f"{self.url}/ws?token={token}") as ws:
            await ws.get_message()  # hello
            self.connected += 1
            if self.connected == self.expected_sessions:
                self.ready.set()
            while True:
                message = json.loads(await ws.get_message())
                if self.filling.is_set() and _is_fill(message):
                    received = time.time() * 1000
                    self.latencies.append(received - message["data"]["exchange_update_time"])
                    if len(self.latencies) >= self.expected:
                        self.all_in.set()

    def figures(self, filled: int) -> dict[str, float]:
        done = sorted(self.latencies)
        got = len(done)
        return {
            "fills": float(self.expected),
            "filled_ok": float(filled),
            "delivered": float(got),
            "p50_ms": done[got // 2] if got else float("nan"),
            "p99_ms": done[min(got - 1, int(got * 0.99))] if got else float("nan"),
        }


async def delivery(
    url: str, sim: str, users: int, orders_each: int, rate: float
) -> dict[str, float]:
    """p50/p99 of order_update delivery (exchange fill time to the client's receipt) while
    fills arrive at ``rate`` per second, spread over ``users`` users with one session each."""
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:
        tokens = await _register_many(client, users)
        price = await _resting_price(sim)
        probe = DeliveryProbe(url, len(tokens))
        async with trio.open_nursery() as nursery:
            for token in tokens:
                nursery.start_soon(probe.listen, token)
            await probe.ready.wait()
            ids = await _rest_orders(client, tokens, orders_each, price)
            probe.expected = len(ids) * FILL_ROUNDS
            probe.filling.set()
            body = {"ids": ids, "rounds": FILL_ROUNDS, "rate": rate}
            answer = await client.post("/bench/fill", json=body, timeout=None)
            with trio.move_on_after(30):
                await probe.all_in.wait()
            nursery.cancel_scope.cancel()
    return probe.figures(answer.json()["done"])


def _is_fill(message: dict[str, Any]) -> bool:
    data = message.get("data") or {}
    return (
        message.get("type") == "order_update"
        and Decimal(data.get("filled_quantity") or 0) > 0
        and data.get("exchange_update_time", 0) > 0
    )


async def _register_many(client: httpx.AsyncClient, users: int) -> list[str]:
    limiter = trio.CapacityLimiter(8)
    tokens: list[str] = []

    async def one(n: int) -> None:
        body = {"username": f"live{n:04d}", "password": "bench password"}
        async with limiter:
            for attempt in range(3):  # an idle keep-alive connection may be closed under us
                try:
                    response = await client.post("/api/auth/register", json=body)
                    break
                except httpx.TransportError:
                    if attempt == 2:
                        raise
            response.raise_for_status()
            tokens.append(response.json()["token"])

    async with trio.open_nursery() as nursery:
        for n in range(users):
            nursery.start_soon(one, n)
    client.cookies.clear()
    return tokens


async def _resting_price(sim: str) -> Decimal:
    async with httpx.AsyncClient() as client:
        mark = Decimal(
            (await client.get(f"{sim}/sim/admin/price", params={"symbol": "BTCUSDT"})).json()[
                "price"
            ]
        )
    return (mark * Decimal("0.97")).quantize(Decimal("0.1"))


async def _rest_orders(
    client: httpx.AsyncClient, tokens: list[str], each: int, price: Decimal
) -> list[int]:
    """Rest ``each`` LIMIT orders of 0.005 BTC per user (filled later in 5 parts); their
    exchange order ids, shuffled."""
    placed: list[int] = []
    limiter = trio.CapacityLimiter(16)

    async def one(token: str) -> None:
        for _ in range(each):
            async with limiter:
                response = await client.post(
                    "/api/orders",
                    json={
                        "symbol": "BTCUSDT",
                        "side": "BUY",
                        "type": "LIMIT",
                        "quantity": "0.005",
                        "price": str(price),
                    },
                    headers={"Authorization": f"Bearer {token}"},
                )
            response.raise_for_status()
            placed.append(response.json()["data"]["exchange_order_id"])

    async with trio.open_nursery() as nursery:
        for token in tokens:
            nursery.start_soon(one, token)
    random.Random(1).shuffle(placed)
    return placed


# ------------------------------------------------------------------------ main


def _print(title: str, figures: dict[str, float]) -> None:
    shown = ", ".join(
        f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in figures.items()
    )
    print(f"{title:<44} {shown}", flush=True)


def _start_server(db: str, key: str, workdir: Path) -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(
        [sys.executable, __file__, "serve", "--db", db, "--key", key, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=(workdir / "server.log").open("w"),
        text=True,
    )
    assert process.stdout is not None
    info = json.loads(process.stdout.readline())
    return process, info["url"], info["sim"]


def run(args: argparse.Namespace) -> None:
    version = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"interpreter: {sys.executable} ({version})")
    print(
        f"load generator: {'wrk' if shutil.which('wrk') else 'trio+httpx'}; cores: {os.cpu_count()}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="tc-bench-"))
    db, key = f"sqlite:///{workdir}/bench.db", generate_key()
    started = time.perf_counter()
    trio.run(seed, db, key, args.users, args.orders)
    took = time.perf_counter() - started
    print(f"seeded {args.users:,} users x {args.orders} orders in {took:.0f} s")
    try:
        with _server(db, key, workdir) as (pid, url, sim):
            if "http" in args.parts:
                _http_figures(args, url, key, workdir)
            if "ws" in args.parts:
                _ws_sessions(args, url, key, pid)
            if "delivery" in args.parts:
                _delivery(args, url, sim)
        if "ws" in args.parts:
            with _server(db, key, workdir) as (pid, url, _):  # fresh heap for the floor
                _ws_floor(args, url, key, pid)
    finally:
        log = workdir / "server.log"
        if log.exists():
            shutil.copy(log, Path(tempfile.gettempdir()) / "tradercoin-bench-server.log")
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _server(db: str, key: str, workdir: Path) -> Iterator[tuple[int, str, str]]:
    process, url, sim = _start_server(db, key, workdir)
    try:
        yield process.pid, url, sim
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median throughput (its latencies with it), and the spread."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    middle = dict(ordered[len(ordered) // 2])
    middle["rps_min"], middle["rps_max"] = ordered[0]["rps"], ordered[-1]["rps"]
    return middle


def _http_figures(args: argparse.Namespace, url: str, key: str, workdir: Path) -> None:
    ids = list(range(1, args.users + 1))
    random.Random(7).shuffle(ids)
    hot, cold = ids[: args.hot_users], ids[args.hot_users :]
    hot_tokens = trio.run(mint_tokens, key, hot)
    cold_tokens = trio.run(mint_tokens, key, cold)
    half = len(cold_tokens) // 2
    cold_halves = (cold_tokens[:half], cold_tokens[half:])  # each user read once at most
    path = "/api/orders?page=1&page_size=20"
    trio.run(warm, url, hot_tokens)
    for concurrency in (10, 100):
        bare: list[dict[str, float]] = []
        bare_asgi: list[dict[str, float]] = []
        cached: list[dict[str, float]] = []
        for _ in range(args.rounds):  # alternate, so all see the same machine load
            bare.append(load(url, "/bench/bare", None, concurrency, args.seconds, workdir))
            bare_asgi.append(
                load(url, "/bench/bare-asgi", None, concurrency, args.seconds, workdir)
            )
            cached.append(load(url, path, hot_tokens, concurrency, args.seconds, workdir))
        _print(f"bare in-memory Quart route, c={concurrency}", _median(bare))
        _print(f"bare in-memory ASGI route, c={concurrency}", _median(bare_asgi))
        _print(f"/api/orders warm (cache), c={concurrency}", _median(cached))
        cold_slice = cold_halves[0 if concurrency == 10 else 1]
        figures = load(url, path, cold_slice, concurrency, COLD_SECONDS, workdir)
        if figures["rps"] * COLD_SECONDS > len(cold_slice):
            figures["wrapped"] = 1.0  # more requests than unseen users: some hit the cache
        _print(f"/api/orders cold (store), c={concurrency}", figures)


def _ws_sessions(args: argparse.Namespace, url: str, key: str, pid: int) -> None:
    sessions = min(args.sessions, args.users)
    tokens = trio.run(mint_tokens, key, list(range(1, sessions + 1)))
    ws_base = url.replace("http", "ws", 1)
    _print(f"{sessions:,} idle /ws sessions", trio.run(hold_sessions, ws_base, tokens, pid))


def _delivery(args: argparse.Namespace, url: str, sim: str) -> None:
    figures = trio.run(delivery, url, sim, args.fill_users, args.fill_orders, float(args.fill_rate))
    _print(f"order_update delivery at {args.fill_rate} fills/s", figures)


def _ws_floor(args: argparse.Namespace, url: str, key: str, pid: int) -> None:
    """The same count of idle sessions on a bare Quart-Trio WebSocket route, for scale."""
    sessions = min(args.sessions, args.users)
    tokens = trio.run(mint_tokens, key, list(range(1, sessions + 1)))
    ws_base = url.replace("http", "ws", 1)
    floor = trio.run(hold_sessions, ws_base, tokens, pid, "/bench/ws-bare")
    _print(f"{sessions:,} idle bare Quart-Trio WS (floor)", floor)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="(internal) the server process")
    serve.add_argument("--db", required=True)
    serve.add_argument("--key", required=True)
    serve.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100)
    parser.add_argument("--hot-users", type=int, default=2_000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs per route")
    parser.add_argument("--sessions", type=int, default=5_000)
    parser.add_argument("--fill-users", type=int, default=200)
    parser.add_argument(
        "--fill-orders", type=int, default=10, help="resting orders per user (5 fills each)"
    )
    parser.add_argument("--fill-rate", type=int, default=1_000)
    parser.add_argument(
        "--parts",
        type=lambda text: set(text.split(",")),
        default={"http", "ws", "delivery"},
        help="which figures: http,ws,delivery (default all)",
    )
    parser.add_argument("--quick", action="store_true", help="1,000 users x 100, shorter runs")
    args = parser.parse_args()
    if args.command == "serve":
        trio.run(serve_main, args.db, args.key, args.port)
        return
    if args.quick:
        args.users, args.hot_users, args.seconds, args.sessions = 1_000, 500, 3, 1_000
        args.rounds = 1
        args.fill_users, args.fill_orders = 50, 4
    run(args)


if __name__ == "__main__":
    main()
