"""Monitor benchmark: how much exchange weight keeping orders current costs, and how fast a fill
reaches the user's session, per strategy.

Runs the real supervisor, actors, store (in-memory SQLite) and governor against the in-process
simulator, in simulated time (``trio.testing.MockClock(autojump_threshold=0)``), through
``tradercoin.testing.open_test_system``:

* ``per-order``: the seed's worker, ``GET order`` for every pending order every interval;
* ``batched``: one ``GET openOrders`` per symbol with pending orders, ``GET order`` only for
  orders that left the open set (+ ``userTrades`` for their fills);
* ``stream``: ``batched`` while the user-data stream is down, the stream plus a reconcile poll
  (60 s) while it is up, with one exchange connection per user (the design before the hub,
  kept for the comparison: ``stream_mode="per-user"``);
* ``hub``: ``stream`` as the service runs it: every user's listenKey carried by the process's
  stream hub on a few shared connections (``tradercoin/actors/hub.py``). The warm-up starts
  once every user is on the stream (``coverage_s``: from the first user added; 10,000
  listenKeys take over four minutes of the budget).

Each user has one session and ``--orders-per-user`` LIMIT orders far from the market (normal
notional, so the 5 s interval applies). After a warm-up, one of each user's orders is filled
by the simulator at a random time in the first half of the measured window (and replaced by a
new one, so M stay pending); the detection latency is from that fill to the session's receipt
of ``filled``. ``demand_weight_per_user_min`` is what the strategy asks of the governor at
the nominal interval; ``weight_per_user_min`` what it really spent, after the governor
stretched intervals to fit the budget. Prints one JSON line per strategy::

    .venv/bin/python bench/monitor.py --users 200 --orders-per-user 5 --duration 600
    .venv/bin/python bench/monitor.py --users 2000 --strategy per-order

``--strategy all`` (the default) runs each strategy in its own process (so ``peak_rss_mb`` is
that strategy's own).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

# bench/http.py would shadow the standard library's http package (httpx imports it)
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # for bench.*

import trio  # noqa: E402
import trio.testing  # noqa: E402

from bench.baseline import PerOrderActor  # noqa: E402
from tradercoin.config import PollPolicy  # noqa: E402
from tradercoin.exchange.sim import Limits  # noqa: E402
from tradercoin.testing import TestSystem, TestUser, open_test_system  # noqa: E402

STRATEGIES = ("per-order", "batched", "stream", "hub")
SYMBOL = "BTCUSDT"
WARMUP = 150.0  # start-up bursts (listenKeys, first polls) have passed by then
COVERAGE_PATIENCE = 3600.0


@dataclass(frozen=True, slots=True)
class Planned:
    user: TestUser
    order_id: int
    exchange_order_id: int
    at: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--orders-per-user", type=int, default=5)
    parser.add_argument("--duration", type=float, default=600.0, help="simulated seconds")
    parser.add_argument("--strategy", choices=(*STRATEGIES, "all"), default="all")
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--budget", type=int, default=2400, help="weight per minute")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


async def setup(system: TestSystem, args: argparse.Namespace) -> list[Any]:
    """Users, their sessions and their orders; returns [(user, session, orders)]."""
    population = []
    for _ in range(args.users):
        user = await system.add_user()
        session = await user.open_session(capacity=1024)
        orders = [
            await user.place(SYMBOL, "BUY", "LIMIT", "0.2", price=str(1000 + k))
            for k in range(args.orders_per_user)
        ]
        population.append((user, session, orders))
    return population


def plan_fills(population: list[Any], t0: float, window: float, seed: int) -> list[Planned]:
    rng = random.Random(seed)
    plans = []
    for user, _session, orders in population:
        order = rng.choice(orders)
        plans.append(Planned(user, order.id, order.exchange_order_id, t0 + rng.uniform(0, window)))
    return sorted(plans, key=lambda p: p.at)


async def drive_fills(system: TestSystem, plans: list[Planned], nursery: trio.Nursery) -> None:
    """Fill each planned order at its time and place a replacement (M stay pending)."""
    for plan in plans:
        await trio.sleep_until(plan.at)
        system.sim.fill(SYMBOL, plan.exchange_order_id)
        nursery.start_soon(replace, plan.user)


async def replace(user: TestUser) -> None:
    await user.place(SYMBOL, "BUY", "LIMIT", "0.2", price="999")


async def drain(population: list[Any], plans: list[Planned], patience: float) -> None:
    """After the window, wait (at most ``patience`` s) until every fill reached its session:
    a fill missed only because the run ended is late, not lost."""
    sessions = {user.user_id: session for user, session, _ in population}
    with trio.move_on_after(patience):
        for plan in plans:
            await sessions[plan.user.user_id].wait_for_status(plan.order_id, "filled")


def detection(population: list[Any], plans: list[Planned]) -> dict[str, Any]:
    sessions = {user.user_id: session for user, session, _ in population}
    latencies, lost, duplicates = [], 0, 0
    for plan in plans:
        received = [
            r.time
            for r in sessions[plan.user.user_id].received
            if r.message["type"] == "order_update"
            and r.message["data"]["id"] == plan.order_id
            and r.message["data"]["status"] == "filled"
        ]
        if not received:
            lost += 1
            continue
        duplicates += len(received) - 1
        latencies.append(received[0] - plan.at)
    latencies.sort()

    def pick(q: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    return {
        "detect_p50_s": _round(pick(0.50)),
        "detect_p99_s": _round(pick(0.99)),
        "detect_max_s": _round(latencies[-1] if latencies else None),
        "lost": lost,
        "duplicates": duplicates,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


async def run_strategy(args: argparse.Namespace, strategy: str) -> dict[str, Any]:
    policy = PollPolicy(interval=args.interval)
    per_order = strategy == "per-order"
    async with open_test_system(
        stream=strategy in ("stream", "hub"),
        supervisor_options={"actor_class": PerOrderActor} if per_order else None,
        settings={"stream_mode": "per-user" if strategy == "stream" else "hub"},
        poll=policy,
        budget_per_minute=args.budget,
        seed=args.seed,
        sim_options={"limits": Limits(weight_per_minute=args.budget)},  # one IP's budget
    ) as system:
        began = trio.current_time()
        population = await setup(system, args)
        coverage = await wait_for_coverage(system, began) if strategy == "hub" else None
        await trio.sleep(WARMUP)
        t0 = trio.current_time()
        first = len(system.requests)
        weight0 = system.sim.statistics().weight_used
        plans = plan_fills(population, t0, args.duration / 2, args.seed)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drive_fills, system, plans, nursery)
            await trio.sleep(args.duration)
        requests = [r for r in system.requests[first:] if r.time <= t0 + args.duration]
        weight = system.sim.statistics().weight_used - weight0
        gov = system.governor.statistics()
        intervals = sorted(s.effective_interval or 0.0 for s in system.supervisor.statuses())
        await drain(population, plans, patience=3 * max(intervals, default=0.0) + 60)
        user_minutes = args.users * args.duration / 60
        return {
            "strategy": strategy,
            "users": args.users,
            "orders_per_user": args.orders_per_user,
            "interval_s": args.interval,
            "demand_weight_per_user_min": round(gov.demand_per_minute / args.users, 3),
            "requests_per_user_min": round(len(requests) / user_minutes, 3),
            "weight_per_user_min": round(weight / user_minutes, 3),
            **detection(population, plans),
            "governor_stretch": round(gov.stretch_normal, 2),
            "effective_interval_p50_s": round(statistics.median(intervals), 2)
            if intervals
            else None,
            "rate_limited": sum(1 for r in requests if r.status in (418, 429)),
            "weight_pct_of_budget": round(100 * weight / (args.duration / 60) / args.budget, 1),
            **connection_rules(system),
            **hub_figures(system, coverage),
        }


async def wait_for_coverage(system: TestSystem, began: float) -> float | None:
    """Seconds from ``began`` (the first user added) until every actor's stream is healthy
    (checked each second; ``None`` after an hour): the measured window starts after it, so
    the detection figures are those of fills made while the user's stream is healthy."""
    with trio.move_on_after(COVERAGE_PATIENCE):
        while any(s.stream_state != "healthy" for s in system.supervisor.statuses()):  # noqa: ASYNC110
            await trio.sleep(1.0)
        return round(trio.current_time() - began, 1)
    return None


def hub_figures(system: TestSystem, coverage: float | None) -> dict[str, Any]:
    """Zombie keys replaced, and the time from the first user added to full coverage."""
    hub = system.service.hub
    if hub is None:
        return {}
    return {"suspect_keys_total": hub.statistics().suspect_keys_total, "coverage_s": coverage}


def connection_rules(system: TestSystem) -> dict[str, Any]:
    """The simulator's record of Binance's WebSocket connection rules over the whole run."""
    rules = system.sim.statistics().connection_rules
    return {
        "ws_connections_open": rules.connections_open,
        "ws_attempts_max_5min": rules.max_attempts_in_window,
        "ws_attempts_total": rules.attempts_total,
        "ws_refused_429": rules.refusals,
        "ws_refused_418": rules.banned_refusals,
        "ws_closed_10_messages": rules.closed_for_messages,
    }


def run_one(args: argparse.Namespace, strategy: str) -> dict[str, Any]:
    logging.basicConfig(level=logging.ERROR)
    started = time.perf_counter()
    result = trio.run(
        run_strategy, args, strategy, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    result["python"] = f"{sys.executable} {sys.version.split()[0]}"
    return result


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.strategy != "all":
        print(json.dumps(run_one(args, args.strategy)), flush=True)
        return
    base = [
        f"--users={args.users}",
        f"--orders-per-user={args.orders_per_user}",
        f"--duration={args.duration}",
        f"--interval={args.interval}",
        f"--budget={args.budget}",
        f"--seed={args.seed}",
    ]
    for strategy in STRATEGIES:
        subprocess.run([sys.executable, __file__, *base, f"--strategy={strategy}"], check=True)


if __name__ == "__main__":
    main()
