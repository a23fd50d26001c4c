"""bench/cluster.py: the figures of several instances behind HAProxy (issue 11, "Numbers").

Each part brings up its own deployment with tests/cluster/harness.py (a throwaway PostgreSQL,
``tradercoin sim``, N ``tradercoin serve`` with their own egress address, HAProxy from
deploy/haproxy.cfg), all real processes on this machine:

- ``http``: ``GET /api/orders`` through HAProxy with 1 and with 2 instances, wrk at c=10 and
  c=100 (``--users`` users with ``--orders`` resting orders each, a token per request in
  turn): req/s, p50, p99, and the 2:1 ratio of req/s;
- ``failover``: 3 instances; ``--runs`` times, SIGKILL the instance owning most users and
  time until every one of its users runs on exactly one survivor (``/api/admin/actors`` of
  each, state ``running``: polling or streaming); meanwhile and for 5 s after, the
  simulator's weight of each IP in its current minute (its limit ``--weight-limit``, which is
  also each instance's ``weight_budget_per_minute``: the governor spends 90 % of it). The
  killed instance is started again and the users spread (none above its fair share) before
  the next run. p50 and max;
- ``delivery``: every user has a /ws session on every instance (opened on the instance
  itself, so the bench knows whether it owns the user); resting orders filled at the
  exchange at ``--fill-rate`` fills/s; p50/p99 from the exchange's fill time to each
  session's receipt, with 3 instances (sessions on the owner, and on the others: through the
  relay) and with 1.

Every figure line ends with the 1-minute load average: the machine may be shared.

    .venv/bin/python -m bench.cluster                       # every part
    .venv/bin/python -m bench.cluster --parts http --seconds 10

Needs Debian's haproxy, wrk and PostgreSQL's binaries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import trio
from trio_websocket import open_websocket_url

from bench.http import load
from tests.cluster.client import owners, sim_get
from tests.cluster.harness import (
    Deployment,
    Instance,
    deployment,
    missing_parts,
    operator_token,
)

SYMBOL = "BTCUSDT"
SETTLE = 5.0  # s after a takeover during which the weight per IP is still watched


def _load() -> str:
    """The 1-minute load average (the machine is shared: figures are read against it)."""
    return f"load average {os.getloadavg()[0]:.1f}"


def _accounts_args(args: argparse.Namespace) -> dict[str, Any]:
    """The simulator's accounts and per-IP weight limit, and each instance's budget set to
    that limit (the governor plans and spends 90 % of it)."""
    return {
        "sim_args": ("--weight-limit", str(args.weight_limit), "--fill-latency", "0.3"),
        "accounts": args.users,
        "TRADERCOIN_WEIGHT_BUDGET_PER_MINUTE": str(args.weight_limit),
    }


async def _sign_up(deployed: Deployment, rest: int) -> list[str]:
    """Register a user per simulator account through HAProxy, store its keys, rest ``rest``
    LIMIT orders far from the mark; their tokens."""
    mark = Decimal((await sim_get(deployed, "price", symbol=SYMBOL))["price"])
    price = str((mark * Decimal("0.9")).quantize(Decimal("0.1")))
    limiter = trio.CapacityLimiter(8)
    tokens: list[str] = []

    async def one(n: int, account: dict[str, str]) -> None:
        async with limiter, httpx.AsyncClient(base_url=deployed.url, timeout=60) as http:
            body = {"username": f"bench{n:04d}", "password": "bench password"}
            answer = await http.post("/api/auth/register", json=body)
            answer.raise_for_status()
            http.cookies.clear()  # with the session cookie, writes would need an Origin (CSRF)
            headers = {"Authorization": f"Bearer {answer.json()['token']}"}
            keys = {"api_key": account["api_key"], "api_secret": account["api_secret"]}
            (await http.put("/api/credentials", json=keys, headers=headers)).raise_for_status()
            order = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": "0.005"}
            for _ in range(rest):
                await _place(http, order | {"price": price}, headers)
            tokens.append(headers["Authorization"][7:])

    async with trio.open_nursery() as nursery:
        for n, account in enumerate(deployed.sim.extra["accounts"]):
            nursery.start_soon(one, n, account)
    return tokens


async def _place(http: httpx.AsyncClient, body: dict[str, str], headers: dict[str, str]) -> Any:
    """POST an order; again after a 409 or 503 (the user's actor not up, or its owner
    changing, where the request landed). Returns the order."""
    for _ in range(40):
        placed = await http.post("/api/orders", json=body, headers=headers)
        if placed.status_code not in (409, 503):
            break
        await trio.sleep(0.25)
    placed.raise_for_status()
    return placed.json()["data"]


# ------------------------------------------------------------------------ http


def http_part(args: argparse.Namespace, root: Path) -> None:
    rps: dict[tuple[int, int], float] = {}
    for instances in (1, 2):
        where = root / f"http{instances}"
        where.mkdir()
        with deployment(where, instances, **_accounts_args(args)) as deployed:
            tokens = trio.run(_sign_up, deployed, args.orders)
            load(deployed.url, "/api/orders", tokens, 10, 3, where)  # warm-up
            for c in (10, 100):
                got = load(deployed.url, "/api/orders", tokens, c, args.seconds, where)
                rps[instances, c] = got["rps"]
                print(
                    f"GET /api/orders via haproxy, {instances} instance(s), c={c}: "
                    f"{got['rps']:.0f} req/s, p50 {got['p50']:.1f} ms, p99 {got['p99']:.1f} ms, "
                    f"non-2xx {got['errors']:.0f}; {_load()}",
                    flush=True,
                )
    for c in (10, 100):
        print(f"ratio 2:1 at c={c}: {rps[2, c] / rps[1, c]:.2f}")


# ------------------------------------------------------------------------ failover


def _spread(deployed: Deployment, token: str, users: int) -> dict[int, str] | None:
    """``{user: owner}`` once every user runs on exactly one instance and none runs more than
    its fair share, ``ceil(users / instances)``; else None."""
    found = owners(deployed, token)
    if len(found) != users or any(len(ids) != 1 for ids in found.values()):
        return None
    owned = {user: ids[0] for user, ids in found.items()}
    share = -(-users // len(deployed.running()))
    if max(Counter(owned.values()).values()) > share:
        return None
    return owned


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while (value := check()) is None or value is False:
        if time.monotonic() > deadline:
            raise SystemExit(f"bench: not reached in {timeout} s: {what}")
        time.sleep(0.05)
    return value


def failover_part(args: argparse.Namespace, root: Path) -> None:
    where = root / "failover"
    where.mkdir()
    with deployment(where, 3, **_accounts_args(args)) as deployed:
        trio.run(_sign_up, deployed, 2)
        token = operator_token(deployed.url)
        took, peaks = [], []
        for _ in range(args.runs):
            owned = _wait(lambda: _spread(deployed, token, args.users), 120, "users spread")
            seconds, peak = _one_failover(deployed, token, owned)
            took.append(seconds)
            peaks.append(peak)
            print(
                f"  run {len(took)}: owned again after {seconds:.2f} s; "
                f"max weight/IP {peak}; {_load()}",
                flush=True,
            )
        print(
            f"failover (SIGKILL to every user owned again), {args.runs} runs: "
            f"p50 {statistics.median(took):.2f} s, max {max(took):.2f} s"
        )
        budget = int(args.weight_limit * 0.9)
        whole = deployed.sim_admin("statistics")["weight_peak_minute"]
        print(
            f"weight per IP during takeover: max {max(peaks)} in a minute; over the whole run "
            f"{whole} (instance budget {budget}, exchange limit {args.weight_limit})"
        )


def _weight_by_ip(deployed: Deployment) -> dict[str, int]:
    """The simulator's weight of each client IP in its current minute."""
    weights: dict[str, int] = deployed.sim_admin("statistics")["weight_by_ip"]
    return weights


def _one_failover(deployed: Deployment, token: str, owned: dict[int, str]) -> tuple[float, int]:
    """SIGKILL the busiest owner; (seconds until its users are owned again, peak weight)."""
    counts: dict[str, set[int]] = {}
    for user, instance_id in owned.items():
        counts.setdefault(instance_id, set()).add(user)
    victim = deployed.instance(max(counts, key=lambda i: len(counts[i])))
    peak = 0

    def taken_over() -> bool:
        nonlocal peak
        peak = max(peak, *_weight_by_ip(deployed).values())
        found = owners(deployed, token, states=frozenset({"running"}))  # polling or streaming
        return all(len(found.get(u, [])) == 1 for u in counts[victim.id])

    started = time.monotonic()
    deployed.kill(victim)
    _wait(taken_over, 60, f"users of {victim.id} owned again")
    seconds = time.monotonic() - started
    settle = time.monotonic() + SETTLE  # the new owners' first polls and stream keys
    while time.monotonic() < settle:
        peak = max(peak, *_weight_by_ip(deployed).values())
        time.sleep(0.2)
    deployed.start(victim)
    deployed.wait_in_rotation()
    return seconds, peak


# ------------------------------------------------------------------------ delivery


async def _delivery(
    deployed: Deployment, users: int, fills: int, rate: float
) -> dict[str, list[float]]:
    """Latencies (ms) from each fill's exchange time to its order_update at each session, by
    where the session is: ``"owner"`` (the instance running the user's actor) or ``"other"``
    (an instance that gets the event through the relay). Every user has a session on every
    instance, opened on that instance directly (not through HAProxy) to know which it is."""
    tokens = await _sign_up(deployed, 0)
    operator = await trio.to_thread.run_sync(operator_token, deployed.url)
    owned = await trio.to_thread.run_sync(
        lambda: _wait(lambda: _spread(deployed, operator, users), 120, "users spread")
    )
    user_ids = await _user_ids(deployed, tokens)
    latencies: dict[str, list[float]] = {"owner": [], "other": []}
    expected = fills * len(deployed.instances)
    ready, all_in = trio.Event(), trio.Event()
    connected = seen = 0

    async def listen(token: str, instance: Instance, kind: str) -> None:
        nonlocal connected, seen
        url = instance.url.replace("http://", "ws://")
        async with open_websocket_url(f"{url}/ws?token={token}") as ws:
            await ws.get_message()  # hello
            connected += 1
            if connected == len(tokens) * len(deployed.instances):
                ready.set()
            done: set[int] = set()
            while True:
                message = json.loads(await ws.get_message())
                data = message.get("data") or {}
                if message.get("type") != "order_update" or data.get("status") != "filled":
                    continue
                if data["id"] not in done:  # the first "filled" update of each order
                    done.add(data["id"])
                    latencies[kind].append(time.time() * 1000 - data["exchange_update_time"])
                    seen += 1
                    if seen >= expected:
                        all_in.set()

    async with trio.open_nursery() as nursery:
        for token in tokens:
            owner = owned[user_ids[token]]
            for instance in deployed.instances:
                kind = "owner" if instance.id == owner else "other"
                nursery.start_soon(listen, token, instance, kind)
        await ready.wait()
        await _fill_resting(deployed, tokens, fills, rate)
        with trio.move_on_after(15):
            await all_in.wait()
        nursery.cancel_scope.cancel()
    after = await trio.to_thread.run_sync(owners, deployed, operator)
    moved = [u for u, owner in owned.items() if after.get(u) != [owner]]
    if moved:
        print(f"  (owners changed during the run: {moved} {[after.get(u) for u in moved]})")
    return {kind: sorted(got) for kind, got in latencies.items()}


async def _user_ids(deployed: Deployment, tokens: list[str]) -> dict[str, int]:
    """Each token's user id (``GET /api/auth/me``)."""
    ids = {}
    async with httpx.AsyncClient(base_url=deployed.url, timeout=30) as http:
        for token in tokens:
            answer = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
            answer.raise_for_status()
            ids[token] = answer.json()["data"]["id"]
    return ids


async def _fill_resting(deployed: Deployment, tokens: list[str], fills: int, rate: float) -> None:
    """Rest one order per fill (spread over the users), then fill them at ``rate`` per s."""
    mark = Decimal((await sim_get(deployed, "price", symbol=SYMBOL))["price"])
    body = {"symbol": SYMBOL, "side": "BUY", "type": "LIMIT", "quantity": "0.005"}
    body["price"] = str((mark * Decimal("0.9")).quantize(Decimal("0.1")))
    ids = []
    async with httpx.AsyncClient(base_url=deployed.url, timeout=30) as http:
        for n in range(fills):
            headers = {"Authorization": f"Bearer {tokens[n % len(tokens)]}"}
            ids.append((await _place(http, body, headers))["exchange_order_id"])
    await trio.sleep(2)  # every owner knows its orders before the fills
    async with httpx.AsyncClient(base_url=deployed.sim.url, timeout=10) as sim:
        for order_id in ids:
            await sim.post("/sim/admin/fill", json={"symbol": SYMBOL, "orderId": order_id})
            await trio.sleep(1 / rate)


def delivery_part(args: argparse.Namespace, root: Path) -> None:
    for instances in (3, 1):
        where = root / f"delivery{instances}"
        where.mkdir()
        with deployment(where, instances, **_accounts_args(args)) as deployed:
            got = trio.run(_delivery, deployed, args.users, args.fills, args.fill_rate)
        for kind, latencies in got.items():
            if not latencies:
                continue
            p50 = latencies[len(latencies) // 2]
            p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
            sessions = "owner" if kind == "owner" else "not the owner (relay)"
            print(
                f"delivery, {instances} instance(s), sessions on the {sessions}: "
                f"{len(latencies)} updates ({args.fills} fills), "
                f"p50 {p50:.0f} ms, p99 {p99:.0f} ms; {_load()}",
                flush=True,
            )


# ------------------------------------------------------------------------ main

PARTS = {"http": http_part, "failover": failover_part, "delivery": delivery_part}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", nargs="+", choices=list(PARTS), default=list(PARTS))
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--orders", type=int, default=5, help="resting orders per user (http)")
    parser.add_argument("--seconds", type=float, default=15, help="per wrk run")
    parser.add_argument("--runs", type=int, default=10, help="failovers")
    parser.add_argument("--fills", type=int, default=200)
    parser.add_argument("--fill-rate", type=float, default=20.0)
    parser.add_argument("--weight-limit", type=int, default=2400)
    args = parser.parse_args()
    reason = missing_parts() or (None if shutil.which("wrk") else "wrk is not installed")
    if reason is not None:
        raise SystemExit(f"bench: {reason}")
    version = f"{platform.python_implementation()} {platform.python_version()}"
    print(f"interpreter: {sys.executable} ({version}); cores: {os.cpu_count()}")
    root = Path(tempfile.mkdtemp(prefix="tc-bench-cluster-"))
    os.environ.setdefault("TRADERCOIN_HOME", str(root / "home"))
    try:
        for part in args.parts:
            PARTS[part](args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
