"""Soak: a real ``tradercoin serve`` against ``tradercoin sim`` over loopback, for a long time.

Setup: USERS users (seeded straight into the store, with the simulator's keys), PENDING
resting LIMIT orders each (placed through the service), SESSIONS WebSocket sessions spread
over the users. Then, for the run, a driver fills random resting orders at the exchange and
places a new one each time, so every user keeps PENDING orders. It prints, every sample:
the service's RSS, fills made, updates delivered; and at the end:

- RSS growth after warm-up (target < 10 %);
- ERROR / Traceback lines in the service's log (target: none);
- notifications lost: per session, seq gaps and the distance from its last seq to the
  store's newest seq for its user (target: zero);
- detection latency: from the fill call to the exchange to a session's receipt of the
  ``filled`` update (target of the actors issue, stream mode: p99 <= 0.5 s).

    .venv/bin/python -m bench.soak                 # 2,000 users x 5, 5,000 sessions, 30 min
    .venv/bin/python -m bench.soak --short         # CI: 200 users, 500 sessions, 60 s
    .venv/bin/python -m bench.soak --users 1000 --sessions 2500 --minutes 6
    .venv/bin/python -m bench.soak --users 10000 --pending 1 --sessions 5000 --minutes 10

Its own soft limit of open files is raised to the hard one (inherited by both children):
5,000 sessions are 5,000 sockets on each side of loopback.

Exit status 1 when a target is missed (so CI can run ``--short``).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import trio

from tests.procs import Child, serve_env, start_serve, start_sim
from tests.reliability.live import ResumingSession
from tradercoin.clock import system_clock
from tradercoin.exchange.protocol import Credentials
from tradercoin.http.security import TokenSigner
from tradercoin.store import SecretBox, generate_key, open_store

SYMBOL = "BTCUSDT"
TICK = Decimal("0.1")
RSS_TARGET = 0.10
P99_TARGET = 0.5
GREET_TIMEOUT = 300.0


@dataclass
class Options:
    users: int = 2000
    pending: int = 5
    sessions: int = 5000
    seconds: float = 1800.0
    fills_per_second: float = 5.0
    sample_every: float = 10.0
    warmup_fraction: float = 0.2
    budget: int = 100_000_000  # weight per minute, the simulator's limit and the service's


@dataclass(eq=False)
class Soak:
    options: Options
    sim: Child
    base: str
    tokens: dict[int, str]  # user id -> token
    resting: dict[int, list[int]] = field(default_factory=dict)  # user -> exchange order ids
    far: str = ""
    fill_sent: dict[int, float] = field(default_factory=dict)  # exchange order id -> time
    latencies: list[float] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)
    fills: int = 0
    place_errors: int = 0
    sessions: list[tuple[int, ResumingSession]] = field(default_factory=list)
    rules: dict[str, Any] = field(default_factory=dict)  # the exchange's connection rules

    def on_update(self, message: dict[str, Any]) -> None:
        order = message["data"]
        sent = self.fill_sent.get(order.get("exchange_order_id") or 0)
        if sent is not None and order["status"] == "filled":
            self.latencies.append(trio.current_time() - sent)


async def seed(db_url: str, master_key: str, accounts: list[dict[str, str]]) -> dict[int, str]:
    """Users with the simulator's keys, straight into the store; their tokens."""
    signer = TokenSigner(master_key.encode(), clock=system_clock())
    box = SecretBox.parse(master_key)
    tokens = {}
    limiter = trio.CapacityLimiter(32)  # concurrent writers share the store's group commits

    async def one(i: int, account: dict[str, str]) -> None:
        async with limiter:
            user = await store.create_user(f"soak{i}", "not-a-password-hash")
            creds = Credentials(api_key=account["api_key"], api_secret=account["api_secret"])
            await store.set_credentials(user.id, creds)
            tokens[user.id] = signer.issue(user.id)

    async with (
        open_store(db_url, secrets=box, clock=system_clock()) as store,
        trio.open_nursery() as nursery,
    ):
        for i, account in enumerate(accounts):
            nursery.start_soon(one, i, account)
    return dict(sorted(tokens.items()))


def raise_open_files_limit() -> int:
    """Soft limit of open files up to the hard one (children inherit it); returns it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def place(soak: Soak, http: httpx.AsyncClient, user_id: int) -> None:
    body = {
        "symbol": SYMBOL,
        "side": "BUY",
        "type": "LIMIT",
        "quantity": "0.010",
        "price": soak.far,
        "time_in_force": "GTC",
    }
    headers = {"Authorization": f"Bearer {soak.tokens[user_id]}"}
    response = await http.post("/api/orders", json=body, headers=headers)
    if response.status_code != 201:
        soak.place_errors += 1
        return
    soak.resting.setdefault(user_id, []).append(response.json()["data"]["exchange_order_id"])


async def place_all(soak: Soak, http: httpx.AsyncClient) -> None:
    """PENDING resting orders per user, 32 requests at a time."""
    limiter = trio.CapacityLimiter(32)

    async def one(user_id: int) -> None:
        async with limiter:
            await place(soak, http, user_id)

    async with trio.open_nursery() as nursery:
        for user_id in soak.tokens:
            for _ in range(soak.options.pending):
                nursery.start_soon(one, user_id)


async def drive(soak: Soak, http: httpx.AsyncClient, sim: httpx.AsyncClient, until: float) -> None:
    """Fill a random resting order at the exchange, then replace it, at the set rate."""
    rng = random.Random(7)
    users = list(soak.tokens)
    while trio.current_time() < until:
        await trio.sleep(1 / soak.options.fills_per_second)
        user_id = rng.choice(users)
        if not soak.resting.get(user_id):
            continue
        order_id = soak.resting[user_id].pop(0)
        soak.fill_sent[order_id] = trio.current_time()
        answer = await sim.post("/sim/admin/fill", json={"symbol": SYMBOL, "orderId": order_id})
        soak.fills += answer.status_code == 200
        await place(soak, http, user_id)


async def greeted(soak: Soak) -> None:
    """Wait until every session has its hello; progress every 10 s; TooSlowError after
    :data:`GREET_TIMEOUT` with the sessions' states."""
    waiting = [s for _, s in soak.sessions]
    with trio.move_on_after(GREET_TIMEOUT):
        while waiting:
            with trio.move_on_after(10):
                for session in waiting:
                    await session.greeted.wait()
            waiting = [s for s in waiting if not s.greeted.is_set()]
            connects = sum(s.connects for s in waiting)
            print(f"  {len(waiting)} sessions without hello ({connects} connects)", flush=True)
        return
    raise trio.TooSlowError(f"{len(waiting)} sessions got no hello in {GREET_TIMEOUT} s")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def sample(soak: Soak, pid: int, until: float) -> None:
    start = trio.current_time()
    while trio.current_time() < until:
        kib = rss_kib(pid)
        soak.rss.append((trio.current_time() - start, kib))
        delivered = sum(s.received for _, s in soak.sessions)
        print(
            f"t={trio.current_time() - start:7.1f}s rss={kib / 1024:7.1f} MiB fills={soak.fills} "
            f"updates delivered={delivered}",
            flush=True,
        )
        await trio.sleep(soak.options.sample_every)


def newest_seqs(db_path: Path) -> dict[int, int]:
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as conn:
        return dict(conn.execute("SELECT user_id, last_seq FROM user_seq").fetchall())


def report(soak: Soak, db_path: Path, log: Path) -> bool:
    """Print the figures; True when every target is met."""
    newest = newest_seqs(db_path)
    gaps = sum(len(s.problems) for _, s in soak.sessions)
    behind = sum(max(0, newest.get(u, 0) - (s.last or 0)) for u, s in soak.sessions)
    warm = soak.options.warmup_fraction * soak.rss[-1][0]
    after = [kib for t, kib in soak.rss if t >= warm] or [soak.rss[-1][1]]
    growth = (max(after[len(after) // 2 :]) - after[0]) / after[0]
    lat = sorted(soak.latencies)
    p50 = lat[len(lat) // 2] if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    print(f"python {platform.python_implementation()} {platform.python_version()}")
    print(
        f"RSS after warm-up {after[0] / 1024:.1f} MiB -> max {max(after) / 1024:.1f} MiB, "
        f"growth {growth:.1%} (target < {RSS_TARGET:.0%})"
    )
    rules = soak.rules
    print(
        f"exchange stream connections open {len(rules['streams_per_connection'])}, "
        f"handshakes in the busiest 5 min {rules['max_attempts_in_window']} "
        f"(all {rules['attempts_total']}), refused {rules['refusals']} "
        f"+ {rules['banned_refusals']} banned"
    )
    errors = report_log(log)
    print(f"notifications lost: {gaps} gaps/resyncs, {behind} behind the store (target 0)")
    print(
        f"fills {soak.fills}, detections {len(lat)}: p50 {p50:.3f} s, p99 {p99:.3f} s "
        f"(target p99 <= {P99_TARGET} s); place errors {soak.place_errors}"
    )
    return growth < RSS_TARGET and not errors and gaps == 0 and behind == 0 and p99 <= P99_TARGET


def report_log(log: Path) -> list[str]:
    """Print the service log's ERROR / Traceback lines (a target: none) and how many
    warnings it has (not a target; a few shown); returns the errors."""
    lines = log.read_text().splitlines()
    errors = [line for line in lines if " ERROR " in line or "Traceback" in line]
    warnings = [line for line in lines if " WARNING " in line]
    print(f"errors in the service log: {len(errors)}")
    for line in errors[:10]:
        print(f"  {line[:200]}")
    print(f"warnings in the service log: {len(warnings)}")
    for line in warnings[:3]:
        print(f"  {line[:200]}")
    return errors


async def run(options: Options, where: Path) -> bool:
    sim = await trio.to_thread.run_sync(
        lambda: start_sim(where, "--weight-limit", str(options.budget), accounts=options.users)
    )
    try:
        return await _serve_and_soak(options, where, sim)
    finally:
        await trio.to_thread.run_sync(sim.stop)  # also when serve did not start


async def _serve_and_soak(options: Options, where: Path, sim: Child) -> bool:
    master_key = generate_key()
    db_path = where / "soak.db"
    db_url = f"sqlite:///{db_path}"
    tokens = await seed(db_url, master_key, sim.extra["accounts"])
    env = serve_env(
        db_url,
        master_key,
        TRADERCOIN_EXCHANGE=sim.url,
        TRADERCOIN_EXCHANGE_WS=sim.extra["ws_url"],
        TRADERCOIN_WEIGHT_BUDGET_PER_MINUTE=str(options.budget),
    )
    # every actor is up before /healthz answers: ~1 ms per user on a quiet machine
    ready = max(30.0, options.users * 0.01)
    serve = await trio.to_thread.run_sync(lambda: start_serve(where, env, timeout=ready))
    try:
        return await _soak(options, sim, serve, tokens, db_path)
    finally:
        await trio.to_thread.run_sync(serve.stop)


async def _soak(
    options: Options, sim: Child, serve: Child, tokens: dict[int, str], db_path: Path
) -> bool:
    soak = Soak(options, sim, serve.url, tokens)
    ws_base = serve.url.replace("http://", "ws://")
    users = list(tokens)
    limits = httpx.Limits(max_connections=64)
    async with (
        httpx.AsyncClient(base_url=serve.url, timeout=300, limits=limits) as http,
        httpx.AsyncClient(base_url=sim.url, timeout=60) as sim_http,
        trio.open_nursery() as nursery,
    ):
        mark = Decimal(
            (await sim_http.get("/sim/admin/price", params={"symbol": SYMBOL})).json()["price"]
        )
        soak.far = str((mark * Decimal("0.8")).quantize(TICK))
        started = time.monotonic()
        await place_all(soak, http)
        print(
            f"placed {sum(map(len, soak.resting.values()))} resting orders in "
            f"{time.monotonic() - started:.0f} s",
            flush=True,
        )
        for i in range(options.sessions):
            user_id = users[i % len(users)]
            session = ResumingSession(
                ws_base, tokens[user_id], keep=False, on_update=soak.on_update
            )
            soak.sessions.append((user_id, session))
            nursery.start_soon(session.run)
            if i % 100 == 99:  # ramp up: a batch of 100, then wait for their hellos
                with trio.move_on_after(10):
                    for _, opened in soak.sessions[-100:]:
                        await opened.greeted.wait()
        await greeted(soak)
        print(f"{options.sessions} sessions open", flush=True)
        until = trio.current_time() + options.seconds
        async with trio.open_nursery() as load:
            load.start_soon(drive, soak, http, sim_http, until)
            load.start_soon(sample, soak, serve.process.pid, until)
        await trio.sleep(3.0)  # the last fills reach the sessions
        soak.rules = (await sim_http.get("/sim/admin/statistics")).json()["connection_rules"]
        nursery.cancel_scope.cancel()
    return report(soak, db_path, serve.log)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="CI: 200 users, 500 sessions, 60 s")
    parser.add_argument("--users", type=int)
    parser.add_argument("--pending", type=int, help="resting orders per user")
    parser.add_argument("--sessions", type=int)
    parser.add_argument("--minutes", type=float)
    parser.add_argument("--fills-per-second", type=float)
    parser.add_argument(
        "--budget", type=int, help="weight per minute (default: no limit in practice)"
    )
    parser.add_argument("--dir", type=Path, help="Keep the database and logs here.")
    args = parser.parse_args()
    options = Options()
    if args.short:
        options = Options(users=200, sessions=500, seconds=60.0, sample_every=5.0)
    if args.users:
        options.users = args.users
    if args.pending:
        options.pending = args.pending
    if args.sessions:
        options.sessions = args.sessions
    if args.minutes:
        options.seconds = args.minutes * 60
    if args.budget:
        options.budget = args.budget
    if args.fills_per_second:
        options.fills_per_second = args.fills_per_second
    print(json.dumps({**options.__dict__, "open_files": raise_open_files_limit()}), flush=True)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        where = args.dir or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        ok = trio.run(run, options, where)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
