"""Relay: how the events of users owned elsewhere reach thousands of sessions on this instance.

One store on a fresh PostgreSQL database announces its commits (``Store.notify_events``, as a
cluster's owner does); one :class:`~tradercoin.cluster.relay.EventRelay` (as on another
instance, which owns none of the users) feeds ``--sessions`` sessions of each of ``--users``
users. Each round commits one order change per user (concurrently: the batcher groups them);
rounds are ``--gap`` seconds apart. Prints the delivery latency (from the ``apply`` call to a
session's receipt: p50, p99, max) beside the commit latency (the ``apply`` call to its return:
what the relay cannot help), the deliveries against the expected count (each event
exactly once to each session), notifications heard, store reads (coalescing: reads per
notification) and the wall time.

    .venv/bin/python -m bench.relay                          # 500 users x 4 sessions
    .venv/bin/python -m bench.relay --users 1000 --sessions 5 --rounds 20
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from decimal import Decimal
from typing import Any

import psycopg
import trio
from sqlalchemy.engine import make_url

from tradercoin.actors.sessions import SessionRegistry
from tradercoin.clock import system_clock
from tradercoin.cluster.directory import InstanceInfo, StaticDirectory
from tradercoin.cluster.relay import EventRelay, conninfo
from tradercoin.orders import OrderType, Side, TimeInForce, new_order
from tradercoin.store import SecretBox, Store, generate_key, open_store

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _session(receive: trio.MemoryReceiveChannel[dict[str, Any]], got: list[Any]) -> None:
    async with receive:
        async for message in receive:
            got.append((trio.current_time(), message))


async def _round(
    store: Store, users: list[int], n: int, sent: dict[Any, float], committed: list[float]
) -> None:
    async def one(user_id: int) -> None:
        change = new_order(
            user_id=user_id,
            symbol="BTCUSDT",
            side=Side.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal("0.01"),
            price=Decimal("20000"),
            time_in_force=TimeInForce.GTC,
            client_order_id=f"b{n}u{user_id}",
            now=store.clock.now_ms(),
        )
        started = trio.current_time()
        [event] = await store.apply([change])
        sent[(user_id, event.seq)] = started
        committed.append(trio.current_time() - started)

    async with trio.open_nursery() as nursery:
        for user_id in users:
            nursery.start_soon(one, user_id)


async def run(args: argparse.Namespace, url: str) -> None:
    box = SecretBox.parse(generate_key("k1"))
    async with open_store(url, secrets=box, clock=system_clock()) as store:
        users = [(await store.create_user(f"u{i}", "h")).id for i in range(args.users)]
        owner = InstanceInfo("a", "http://a", True, len(users), 0.0)
        registry = SessionRegistry()
        relay = EventRelay(
            conninfo=conninfo(store),
            store=store,
            registry=registry,
            directory=StaticDirectory("b", dict.fromkeys(users, owner)),
        )
        got: list[tuple[int, list[Any]]] = []
        async with trio.open_nursery() as nursery:
            await nursery.start(relay.run)
            for user_id in users:
                for _ in range(args.sessions):
                    send, receive = trio.open_memory_channel[dict[str, Any]](256)
                    await relay.attach(user_id, send, None)
                    got.append((user_id, []))
                    nursery.start_soon(_session, receive, got[-1][1])
            store.notify_events = True
            sent: dict[Any, float] = {}
            committed: list[float] = []
            began = time.perf_counter()
            expected = args.users * args.sessions * args.rounds
            for n in range(args.rounds):
                await _round(store, users, n, sent, committed)
                await trio.sleep(args.gap)
            with trio.move_on_after(60):  # a loss shows as fewer deliveries, not a hang
                while sum(len(g) for _, g in got) < expected:  # noqa: ASYNC110 (polled count)
                    await trio.sleep(0.05)
            await trio.sleep(1.0)  # late or duplicate deliveries would show up by now
            wall = time.perf_counter() - began
            _report(args, relay, got, sent, expected, wall)
            print(
                f"commit latency ms: p50 {statistics.median(committed) * 1000:.1f} "
                f"p99 {_percentile(committed, 0.99) * 1000:.1f}"
            )
            nursery.cancel_scope.cancel()


def _report(
    args: argparse.Namespace,
    relay: EventRelay,
    got: list[tuple[int, list[Any]]],
    sent: dict[Any, float],
    expected: int,
    wall: float,
) -> None:
    latencies = []
    for user_id, messages in got:
        latencies += [at - sent[(user_id, m["seq"])] for at, m in messages]
    delivered = sum(len(g) for _, g in got)
    in_order = all([m["seq"] for _, m in g] == sorted({m["seq"] for _, m in g}) for _, g in got)
    stats = relay.statistics()
    print(
        f"users {args.users} x sessions {args.sessions} = {args.users * args.sessions} "
        f"sessions, {args.rounds} rounds {args.gap}s apart"
    )
    print(f"deliveries {delivered} (expected {expected}); each session in seq order: {in_order}")
    if latencies:
        print(
            f"delivery latency ms: p50 {statistics.median(latencies) * 1000:.1f} "
            f"p99 {_percentile(latencies, 0.99) * 1000:.1f} max {max(latencies) * 1000:.1f}"
        )
    reads, users, heard = stats["reads"], stats["users_read"], stats["notifications"]
    print(
        f"notifications {heard}, store reads {reads} of {users} users "
        f"({users / max(heard, 1):.2f} users read per notification)"
    )
    print(f"wall {wall:.1f}s; python {sys.version.split()[0]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--gap", type=float, default=0.5)
    parser.add_argument("--pg", default=PG, help="a server where a database may be created")
    args = parser.parse_args()
    name = f"bench_relay_{uuid.uuid4().hex[:8]}"
    admin = make_url(args.pg).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        trio.run(run, args, make_url(args.pg).set(database=name).render_as_string(False))
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


if __name__ == "__main__":
    main()
