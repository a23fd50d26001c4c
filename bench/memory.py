"""Memory benchmark: the service's RSS for N users with their actors and streams, and the
in-process simulator's own share, measured apart.

``--part service`` runs the service as ``bench/monitor.py`` does (``open_test_system``:
supervisor, actors, governor, the stream hub in ``--stream-mode``, the Quart app; the
in-process simulator; simulated time), on a SQLite file (on ``/dev/shm`` when it exists: a
deployment's database is not in the service's memory, and an in-memory one would be). It
notes the process's RSS with the service started and no user, then adds N users with M
resting LIMIT orders each (placed through their actors), waits until every key is on the
stream (at most ``--patience`` simulated seconds) and ``--settle`` seconds more (reconcile
polls, keepalives), and notes RSS again, with the exchange's connection-rule figures. The
harness's own record of every REST request is kept to its last 1,000 (it would otherwise
grow with the run and count as the service's).

``--part simulator`` builds only the simulator with the same N accounts, listenKeys and N x M
resting orders (placed straight into it), started, and notes RSS before and after: the
simulator's share. (Its server side of the hub's few in-memory connections is not in it:
``bench/hub.py`` puts the hub and both ends of its connections at ~1.4 KB per user.)

``--part both`` (the default) runs each part in its own process and prints one JSON line per
stream mode: service RSS with N users, the simulator's share, the service without it, and
the cost per user (the service's growth from 0 to N users, less the simulator's growth, over
N). ``--stream-mode both`` runs the connection-per-user design and the hub side by side::

    .venv/bin/python bench/memory.py --users 10000
    .venv/bin/python bench/memory.py --users 10000 --stream-mode both --patience 120 --settle 0

``--tracemalloc K`` (service part) also prints the K source lines holding the most memory
that Python allocated after the start (slow: a diagnostic, not a figure).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any

# bench/http.py would shadow the standard library's http package (httpx imports it)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import trio  # noqa: E402
import trio.testing  # noqa: E402

from bench.monitor import connection_rules  # noqa: E402
from tradercoin.clock import FixedEpochClock  # noqa: E402
from tradercoin.config import PollPolicy  # noqa: E402
from tradercoin.exchange.sim import Limits, Simulator  # noqa: E402
from tradercoin.exchange.sim.validate import OrderRequest  # noqa: E402
from tradercoin.testing import EPOCH_MS, TestSystem, open_test_system  # noqa: E402

SYMBOL = "BTCUSDT"


def rss_mb() -> float:
    """The process's resident set now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError("no VmRSS in /proc/self/status")


def peak_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--orders-per-user", type=int, default=2)
    parser.add_argument("--part", choices=("service", "simulator", "both"), default="both")
    parser.add_argument("--stream-mode", choices=("hub", "per-user", "both"), default="hub")
    parser.add_argument("--settle", type=float, default=300.0, help="simulated seconds")
    parser.add_argument(
        "--patience", type=float, default=900.0, help="simulated seconds to wait for coverage"
    )
    parser.add_argument("--budget", type=int, default=2400, help="weight per minute")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tracemalloc", type=int, default=0, metavar="K")
    return parser.parse_args(argv)


# --- the service --------------------------------------------------------------------------


async def add_users(system: TestSystem, args: argparse.Namespace) -> None:
    """N users, each with M resting orders far below the market, 50 users at a time."""
    limiter = trio.CapacityLimiter(50)

    async def one() -> None:
        async with limiter:
            user = await system.add_user()
            for k in range(args.orders_per_user):
                await user.place(SYMBOL, "BUY", "LIMIT", "0.2", price=str(1000 + k))

    async with trio.open_nursery() as nursery:
        for _ in range(args.users):
            nursery.start_soon(one)


def streaming(system: TestSystem) -> int:
    """How many users' actors say their stream is healthy."""
    return sum(s.stream_state == "healthy" for s in system.supervisor.statuses())


async def wait_all_streaming(system: TestSystem, users: int) -> None:
    """Until every user's actor says its stream is healthy (checked every simulated second)."""
    # polling on purpose: the actor's status has no event to wait on, by design
    while streaming(system) < users:  # noqa: ASYNC110
        await trio.sleep(1.0)


async def progress(system: TestSystem, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """A line on stderr every simulated minute: users, streams up, RSS, wall time."""
    task_status.started()
    started = time.perf_counter()
    while True:
        await trio.sleep(60.0)
        print(
            f"t={trio.current_time():.0f}s users={len(system.users)} streaming={streaming(system)}"
            f" rss={rss_mb()} MB wall={time.perf_counter() - started:.0f}s",
            file=sys.stderr,
            flush=True,
        )


async def measure_service(args: argparse.Namespace, db_url: str) -> dict[str, Any]:
    async with open_test_system(
        stream=True,
        database_url=db_url,
        settings={"stream_mode": args.stream_mode},
        poll=PollPolicy(),
        budget_per_minute=args.budget,
        seed=args.seed,
        sim_options={"limits": Limits(weight_per_minute=args.budget)},
    ) as system:
        system._log.records = collections.deque(maxlen=1000)  # type: ignore[assignment]
        await trio.sleep(1.0)
        empty = rss_mb()
        if args.tracemalloc:
            tracemalloc.start()
        t0 = trio.current_time()
        await system.nursery.start(progress, system)
        await add_users(system, args)
        placed = trio.current_time()
        with trio.move_on_after(args.patience) as waiting:
            await wait_all_streaming(system, args.users)
        covered = trio.current_time()
        await trio.sleep(args.settle)
        result = {
            "service_rss_mb_no_users": empty,
            "service_rss_mb": rss_mb(),
            "users_placed_s": round(placed - t0, 1),
            "all_streaming_s": None if waiting.cancelled_caught else round(covered - t0, 1),
            "users_streaming": streaming(system),
            "hub": None if system.service.hub is None else hub_figures(system),
            **connection_rules(system),
        }
        if args.tracemalloc:
            result["tracemalloc_top"] = top_lines(args.tracemalloc)
        return result


def hub_figures(system: TestSystem) -> dict[str, Any]:
    assert system.service.hub is not None
    stats = system.service.hub.statistics()
    return {"connections": stats.connections, "keys": stats.keys, "keys_down": stats.keys_down}


def top_lines(k: int) -> list[str]:
    snapshot = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(s.size for s in snapshot.statistics("filename"))
    lines = [f"traced total {total / 2**20:.1f} MB"]
    for stat in snapshot.statistics("lineno")[:k]:
        frame = stat.traceback[0]
        where = f"{os.path.relpath(frame.filename)}:{frame.lineno}"
        lines.append(f"{stat.size / 2**20:7.2f} MB {stat.count:8d} blocks  {where}")
    return lines


# --- the simulator alone ------------------------------------------------------------------


async def measure_simulator(args: argparse.Namespace) -> dict[str, Any]:
    """The same accounts, listenKeys and resting orders, in a started simulator only."""
    sim = Simulator(
        clock=FixedEpochClock(EPOCH_MS),
        seed=args.seed,
        market_fill_latency=2.0,
        limits=Limits(weight_per_minute=args.budget),
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        await trio.sleep(1.0)
        empty = rss_mb()
        spec = sim.specs[SYMBOL]
        for _ in range(args.users):
            account = sim.account(sim.create_account()[0])
            sim.streams.create_key(account)
            for k in range(args.orders_per_user):
                price = Decimal(1000 + k)
                request = OrderRequest(
                    spec, "BUY", "LIMIT", "GTC", Decimal("0.2"), price, None, False, False, 0
                )
                sim.place(account, request)
        await trio.sleep(args.settle)
        nursery.cancel_scope.cancel()
    return {"simulator_rss_mb_empty": empty, "simulator_rss_mb": rss_mb()}


# --- driver -------------------------------------------------------------------------------


def run_part(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    clock = trio.testing.MockClock(autojump_threshold=0)
    if args.part == "simulator":
        result = trio.run(measure_simulator, args, clock=clock)
    else:
        where = "/dev/shm" if os.path.isdir("/dev/shm") else None
        with tempfile.TemporaryDirectory(prefix="tc-memory-", dir=where) as tmp:
            db_url = f"sqlite:///{tmp}/memory.db"
            result = trio.run(measure_service, args, db_url, clock=clock)
    result["peak_rss_mb"] = peak_mb()
    result["wall_s"] = round(time.perf_counter() - started, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    import logging

    logging.basicConfig(level=logging.ERROR)
    args = parse_args(argv)
    if args.part != "both":
        print(json.dumps(run_part(args)), flush=True)
        return
    base = [
        f"--users={args.users}",
        f"--orders-per-user={args.orders_per_user}",
        f"--settle={args.settle}",
        f"--patience={args.patience}",
        f"--budget={args.budget}",
        f"--seed={args.seed}",
    ]
    sim = run_child([*base, "--part=simulator"])
    modes = ("per-user", "hub") if args.stream_mode == "both" else (args.stream_mode,)
    for mode in modes:
        service = run_child([*base, "--part=service", f"--stream-mode={mode}"])
        print(json.dumps(summary(args, mode, service, sim)), flush=True)


def run_child(arguments: list[str]) -> dict[str, Any]:
    """One part in a process of its own (so its RSS is its own); its JSON line."""
    command = [sys.executable, __file__, *arguments]
    output = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    result: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
    return result


def summary(
    args: argparse.Namespace, mode: str, svc: dict[str, Any], sim: dict[str, Any]
) -> dict[str, Any]:
    sim_share = sim["simulator_rss_mb"] - sim["simulator_rss_mb_empty"]
    growth = svc["service_rss_mb"] - svc["service_rss_mb_no_users"]
    return {
        "users": args.users,
        "orders_per_user": args.orders_per_user,
        "stream_mode": mode,
        "rss_mb_with_simulator": svc["service_rss_mb"],
        "peak_rss_mb_with_simulator": svc["peak_rss_mb"],
        "simulator_share_mb": round(sim_share, 1),
        "rss_mb_service_alone": round(svc["service_rss_mb"] - sim_share, 1),
        "rss_mb_no_users": svc["service_rss_mb_no_users"],
        "kb_per_user_service": round((growth - sim_share) * 1024 / args.users, 1),
        "kb_per_user_simulator": round(sim_share * 1024 / args.users, 1),
        "all_streaming_s": svc["all_streaming_s"],
        "users_streaming": svc["users_streaming"],
        "hub": svc["hub"],
        **{k: v for k, v in svc.items() if k.startswith("ws_")},
        "wall_s": round(svc["wall_s"] + sim["wall_s"], 1),
        "python": f"{sys.executable} {sys.version.split()[0]}",
    }


if __name__ == "__main__":
    main()
