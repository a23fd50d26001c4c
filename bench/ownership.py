"""Ownership benchmark (tradercoin.cluster.ownership) on the local PostgreSQL, in one process.

Prints:
- the write fence's cost: the store's order writes (WRITERS concurrent writers, one change per
  write, group-committed) with and without the ownership check in each transaction;
- takeover: two instances (default lease 5 s, rounds of 1 s) share USERS users; one's lock
  connection is terminated (pg_terminate_backend, as when its process dies) and it stays
  out: seconds until the other holds every user (RUNS runs: p50, max);
- handover: the same after a graceful stop (the instance marks itself as left).

    .venv/bin/python -m bench.ownership
    .venv/bin/python -m bench.ownership --users 2000 --runs 3

PostgreSQL: TRADERCOIN_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test);
the bench works in its own schema ``bench_ownership``, dropped first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from decimal import Decimal
from typing import Any

import psycopg
import trio
from sqlalchemy.engine import make_url

from tradercoin.clock import system_clock
from tradercoin.cluster.locksql import conninfo
from tradercoin.cluster.ownership import Ownership
from tradercoin.exchange.protocol import Credentials
from tradercoin.orders import OrderType, Side, TimeInForce, new_order
from tradercoin.store import SecretBox, Store, generate_key, open_store

PG_URL = os.environ.get(
    "TRADERCOIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SCHEMA = "bench_ownership"


class Holder:
    """Ownership's holder without actors: the users it runs."""

    def __init__(self) -> None:
        self.users: set[int] = set()

    def adopt(self, user_id: int) -> None:
        self.users.add(user_id)

    async def release(self, user_id: int) -> None:
        self.users.discard(user_id)

    def release_all(self) -> None:
        self.users.clear()


def admin(sql: str) -> None:
    with psycopg.connect(conninfo(PG_URL), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


async def add_users(store: Store, count: int) -> list[int]:
    ids = []
    for n in range(count):
        user = await store.create_user(f"bench{n}", "hash")
        await store.set_credentials(user.id, Credentials(api_key=f"k{n}", api_secret="s"))
        ids.append(user.id)
    return ids


async def writes_per_second(store: Store, users: list[int], writers: int, each: int) -> float:
    async def writer(w: int) -> None:
        for k in range(each):
            user = users[(w * each + k) % len(users)]
            change = new_order(
                user_id=user,
                symbol="BTCUSDT",
                side=Side.BUY,
                type=OrderType.LIMIT,
                quantity=Decimal("0.010"),
                price=Decimal("30000"),
                time_in_force=TimeInForce.GTC,
                client_order_id=f"tc{w}x{k}x{time.monotonic_ns()}",
                now=1_750_000_000_000,
            )
            await store.apply([change])

    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for w in range(writers):
            nursery.start_soon(writer, w)
    return writers * each / (time.perf_counter() - began)


async def until(check: Any) -> float:
    began = trio.current_time()
    while not check():  # noqa: ASYNC110  (ownership rounds have no event)
        await trio.sleep(0.02)
    return trio.current_time() - began


async def takeover(url: str, users: set[int], graceful: bool) -> float:
    """Seconds from losing instance "a" until "b" holds every user."""
    a = Ownership(url, instance_id="a", address="http://a")
    b = Ownership(url, instance_id="b", address="http://b")
    scope = trio.CancelScope()

    async def run_a() -> None:
        with scope:
            await a.run(Holder())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(run_a)
        nursery.start_soon(b.run, Holder())
        await until(lambda: len(a.held) + len(b.held) == len(users) and a.held and b.held)
        if graceful:
            scope.cancel()
        else:
            a._join = trio.sleep_forever  # type: ignore[method-assign]  # a stays out
            assert a.pid is not None
            admin(f"SELECT pg_terminate_backend({int(a.pid)})")
        took = await until(lambda: b.held == users)
        nursery.cancel_scope.cancel()
    return took


async def bench(args: argparse.Namespace) -> None:
    admin(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    admin(f"CREATE SCHEMA {SCHEMA}")
    url = (
        make_url(PG_URL)
        .update_query_dict({"options": f"-csearch_path={SCHEMA}"})
        .render_as_string(hide_password=False)
    )
    box = SecretBox.parse(generate_key())
    async with open_store(url, secrets=box, clock=system_clock()) as store:
        users = await add_users(store, args.users)
        owner = Ownership(url, instance_id="writer", address="http://writer")
        rates: dict[bool, list[float]] = {False: [], True: []}
        async with trio.open_nursery() as nursery:
            await nursery.start(owner.run, Holder())
            while len(owner.held) < len(users):  # noqa: ASYNC110
                await trio.sleep(0.05)
            for fenced in (False, True) * 3:  # alternated: the table grows as it runs
                store.ownership_check = owner.write_fence if fenced else None
                rates[fenced].append(await writes_per_second(store, users, args.writers, args.each))
            nursery.cancel_scope.cancel()
        store.ownership_check = None
        plain, fenced = statistics.median(rates[False]), statistics.median(rates[True])
        print(f"write fence, {args.writers} writers, {args.users} users owned (median of 3):")
        print(f"  without the fence {plain:9,.0f} changes/s")
        print(f"  with the fence    {fenced:9,.0f} changes/s ({fenced / plain:.0%})")
        for graceful in (False, True):
            runs = [await takeover(url, set(users), graceful) for _ in range(args.runs)]
            what = "graceful stop" if graceful else "lock connection terminated"
            print(
                f"takeover of {args.users} users after {what}: p50 "
                f"{statistics.median(runs):.2f} s, max {max(runs):.2f} s ({args.runs} runs)"
            )
    admin(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--writers", type=int, default=50)
    parser.add_argument("--each", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    trio.run(bench, parser.parse_args())


if __name__ == "__main__":
    main()
