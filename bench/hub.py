"""Stream hub benchmark: N listenKeys on shared connections against the in-process simulator
enforcing Binance's connection rules, in simulated time (MockClock, autojump).

Each user gets a listenKey (kept alive every 30 min, phases spread), joins the hub, and gets
one order placed at a random time of the run (its NEW event must reach that user once). At
``--drop-at`` hours the exchange drops every connection at once (``--no-drop``: never); the
connections opened then rotate 22-23 h later, inside a 24 h run. Prints one JSON line: time to
full coverage at start, connections and keys per connection, handshakes in the busiest 5
minutes, refusals, time for everyone to be back after the drop, events lost or duplicated
(the oracle: the orders the simulator made), detection p99 of the events made while the
user's stream was up, the keepalives' weight a minute (over the last hour; the only REST
weight of a user at rest besides its reconcile polls, which this benchmark has no actors
for), rotations, the hub's own time to full coverage, wall time and peak RSS (the
simulator's share measured before the hub starts)::

    .venv/bin/python bench/hub.py --users 10000 --hours 24
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from collections import Counter
from decimal import Decimal
from typing import Any

# bench/http.py would shadow the standard library's http package
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(__file__)]

import trio  # noqa: E402
import trio.testing  # noqa: E402

from tradercoin.actors.connbudget import ConnectionBudget  # noqa: E402
from tradercoin.actors.hub import (  # noqa: E402
    HubMessage,
    StreamDown,
    StreamEvents,
    StreamHub,
    StreamUp,
)
from tradercoin.clock import FixedEpochClock  # noqa: E402
from tradercoin.exchange.sim import Fault, FaultKind, Simulator  # noqa: E402
from tradercoin.exchange.sim.engine import Account  # noqa: E402
from tradercoin.exchange.sim.validate import OrderRequest  # noqa: E402


def _rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


class Tally:
    """What the owners received: health per key, order ids per key."""

    def __init__(self) -> None:
        self.up: set[str] = set()
        self.orders: Counter[tuple[str, int]] = Counter()
        self.arrived: dict[tuple[str, int], float] = {}  # trio time of the first delivery
        self.all_up = trio.Event()
        self.keys = 0

    async def consume(self, receive: trio.MemoryReceiveChannel[HubMessage]) -> None:
        async for message in receive:
            if isinstance(message, StreamUp):
                self.up.add(message.key)
                if len(self.up) == self.keys:
                    self.all_up.set()
            elif isinstance(message, StreamDown):
                self.up.discard(message.key)
                self.all_up = trio.Event()
            elif isinstance(message, StreamEvents):
                for update in message.updates:
                    order = (message.key, update.exchange_order_id)
                    self.orders[order] += 1
                    self.arrived.setdefault(order, trio.current_time())


async def keepalive(sim: Simulator, users: list[tuple[Account, str]], puts: list[float]) -> None:
    """Each key PUT every 30 min, phases spread evenly (as actors would); ``puts``: when."""
    step = 1800.0 / len(users)
    while True:
        for account, key in users:
            sim.streams.keepalive(account, key)
            puts.append(trio.current_time())
            await trio.sleep(step)


async def place_orders(
    sim: Simulator, users: list[tuple[Account, str]], span: float, rng: random.Random, tally: Tally
) -> dict[tuple[str, int], tuple[bool, float]]:
    """Place one order per user at random times; the value: was its stream up then, when."""
    spec = sim.specs["BTCUSDT"]
    request = OrderRequest(
        spec, "BUY", "LIMIT", "GTC", Decimal("0.010"), Decimal("49000"), None, False, False, 0
    )
    start = trio.current_time()
    schedule = sorted((rng.uniform(0, span), i) for i in range(len(users)))
    placed = {}
    for at, index in schedule:
        await trio.sleep_until(start + at)
        account, key = users[index]
        placed[(key, sim.place(account, request).order_id)] = (key in tally.up, start + at)
    return placed


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 3) if ordered else 0.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    sim = Simulator(clock=FixedEpochClock(1_790_000_000_000), seed=args.seed, volatility_scale=0)
    users = []
    for _ in range(args.users):
        api_key, _secret = sim.create_account()
        account = sim.account(api_key)
        users.append((account, sim.streams.create_key(account)))
    rss_sim = _rss_mb()
    tally = Tally()
    tally.keys = args.users
    send, receive = trio.open_memory_channel[HubMessage](4 * args.users)
    hub = StreamHub("ws://sim", budget=ConnectionBudget(), connect=sim.open_websocket)
    result: dict[str, Any] = {"users": args.users, "hours": args.hours}
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        nursery.start_soon(tally.consume, receive)
        puts: list[float] = []
        nursery.start_soon(keepalive, sim, users, puts)
        await nursery.start(hub.run)
        t0 = trio.current_time()
        hub.announce(len(users))
        async with send:
            for _, key in users:
                await hub.join(key, send.clone(), announced=True)
        await tally.all_up.wait()
        result["start_to_full_coverage_s"] = round(trio.current_time() - t0, 2)
        result["rss_mb_simulator_and_accounts"] = rss_sim
        result["rss_mb_with_hub"] = _rss_mb()
        span = args.hours * 3600
        outcome: dict[str, Any] = {}

        async def orders() -> None:
            outcome["placed"] = await place_orders(sim, users, span, rng, tally)

        async with trio.open_nursery() as inner:
            inner.start_soon(orders)
            if args.drop:
                await trio.sleep(args.drop_at * 3600)
                dropped = trio.current_time()
                sim.inject(Fault(FaultKind.DISCONNECT))
                await trio.sleep(0.01)
                await tally.all_up.wait()
                result["drop_to_all_back_s"] = round(trio.current_time() - dropped, 2)
        await trio.sleep(5)
        placed = outcome["placed"]
        result["events_expected"] = len(placed)
        result["events_lost_while_up"] = sum(
            1 for k, (up, _) in placed.items() if up and not tally.orders[k]
        )
        result["events_while_down"] = sum(1 for up, _ in placed.values() if not up)
        result["detection_p99_s_while_up"] = _p99(
            [tally.arrived[k] - at for k, (up, at) in placed.items() if up and k in tally.arrived]
        )
        last_hour = [t for t in puts if t >= trio.current_time() - 3600]
        result["keepalive_weight_per_minute"] = round(len(last_hour) / 60, 1)
        result["keepalive_share_of_2400_budget_pct"] = round(len(last_hour) / 60 / 24, 1)
        result["events_duplicated"] = sum(1 for k in placed if tally.orders[k] > 1)
        result["events_misrouted"] = sum(1 for k in tally.orders if k not in placed)
        stats = hub.statistics()
        rules = sim.statistics().connection_rules
        result.update(
            connections=stats.connections,
            keys_per_connection_max=max(stats.keys_per_connection),
            exchange_streams_per_connection_max=max(rules.streams_per_connection),
            attempts_max_5min=rules.max_attempts_in_window,
            attempts_total=rules.attempts_total,
            refused_429=rules.refusals,
            refused_418=rules.banned_refusals,
            closed_10_messages=rules.closed_for_messages,
            rotations=stats.rotations,
            drops=stats.drops,
            hub_coverage_s=stats.coverage_seconds,
        )
        nursery.cancel_scope.cancel()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours")
    parser.add_argument("--drop", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--drop-at", type=float, default=1.0, help="simulated hours")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    result = trio.run(run, args, clock=trio.testing.MockClock(autojump_threshold=0))
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["peak_rss_mb"] = _rss_mb()
    result["python"] = f"{sys.executable} {sys.version.split()[0]}"
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
