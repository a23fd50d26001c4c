"""Store benchmark: seeded reads measured inside the worker thread, and the write batcher.

Seeds USERS x ORDERS orders (default 10,000 x 100 = 1M) with bulk inserts (executemany on
SQLite, COPY on PostgreSQL), then prints for each database:
- p50/p99 of "a user's newest 20 orders" (the list_orders thread body: page + total) and of
  "a user's pending orders", timed inside the worker thread;
- the same through the Store API (thread hop included), for reference;
- the write batcher's throughput (changes/s) with WRITERS concurrent writers, next to the same
  writers with one change per transaction (batch_jobs=1).

    .venv/bin/python -m bench.store                   # both databases, full size
    .venv/bin/python -m bench.store --db sqlite --users 1000 --orders 50

PostgreSQL: TRADERCOIN_TEST_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test);
the bench works in its own schema ``bench_store``, dropped first.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import trio
from sqlalchemy.engine import make_url

from tradercoin.clock import system_clock
from tradercoin.orders import OrderType, Side, TimeInForce, new_order
from tradercoin.store import SecretBox, Store, open_store
from tradercoin.store import orders as order_sql
from tradercoin.store.db import Database
from tradercoin.store.migrate import upgrade
from tradercoin.store.schema import orders, users

PG_URL = os.environ.get(
    "TRADERCOIN_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SCHEMA = "bench_store"
EPOCH_MS = 1_750_000_000_000
COLUMNS = [c.name for c in orders.columns if c.name != "id"]
STATUSES = ["filled"] * 6 + ["canceled"] * 2 + ["new", "partially_filled"]  # ~20 % pending


def order_rows(n_users: int, per_user: int) -> Iterator[tuple[Any, ...]]:
    """Every user's orders, interleaved in time as they would arrive."""
    rng = random.Random(42)
    for k in range(per_user):
        for user_id in range(1, n_users + 1):
            status = rng.choice(STATUSES)
            filled = "0.010" if status == "filled" else "0"
            yield (
                user_id, rng.choice(("BTCUSDT", "ETHUSDT", "SOLUSDT")), "BUY", "LIMIT", status,
                "0.010", "30000.5", filled, None, "GTC", f"c{user_id}-{k}",
                1_000_000 * user_id + k, EPOCH_MS + k * 1000 + user_id % 1000,
                EPOCH_MS + k * 1000, 0, None,
            )  # fmt: skip


def seed(db: Database, n_users: int, per_user: int) -> float:
    """Migrate and bulk-load; returns the seconds it took."""
    start = time.perf_counter()
    db.run_write_sync(upgrade)
    with db.engine.begin() as conn:
        conn.execute(
            users.insert(),
            [{"username": f"user{i}", "role": "user", "password_hash": "x", "created_at": 0}
             for i in range(1, n_users + 1)],
        )  # fmt: skip
    if db.dialect == "postgresql":
        _copy_orders(db, n_users, per_user)
    else:
        _insert_orders(db, n_users, per_user)
    settle(db)
    return time.perf_counter() - start


def settle(db: Database) -> None:
    """What a database that has been running a while has done: statistics gathered, and (on
    SQLite) the seed checkpointed out of the WAL, so the write figures do not pay for it."""
    raw = db.engine.raw_connection()  # outside any transaction: VACUUM and checkpoints
    try:
        if db.dialect == "postgresql":
            raw.driver_connection.autocommit = True  # type: ignore[union-attr]
            raw.cursor().execute("VACUUM ANALYZE")
            raw.driver_connection.autocommit = False  # type: ignore[union-attr]
        else:
            raw.cursor().execute("ANALYZE")
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()


def _insert_orders(db: Database, n_users: int, per_user: int) -> None:
    sql = f"INSERT INTO orders ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    rows = order_rows(n_users, per_user)
    with db.engine.begin() as conn:
        while chunk := [row for _, row in zip(range(100_000), rows, strict=False)]:
            conn.exec_driver_sql(sql, chunk)


def _copy_orders(db: Database, n_users: int, per_user: int) -> None:
    raw = db.engine.raw_connection()
    try:
        with raw.cursor() as cursor:  # type: ignore[attr-defined]
            statement = f"COPY orders ({', '.join(COLUMNS)}) FROM STDIN"
            with cursor.copy(statement) as copy:
                for row in order_rows(n_users, per_user):
                    copy.write_row(row)
        raw.commit()
    finally:
        raw.close()


def timed(
    db: Database, n_users: int, samples: int, query: Callable[..., Any]
) -> tuple[list[float], list[float]]:
    """Run ``query(conn, user_id)`` for random users in ONE worker-thread call, after a
    warm-up pass; returns per-call wall and thread-CPU milliseconds measured in that thread
    (on a shared 2-core machine the wall p99 includes time the thread was not scheduled)."""

    def body(conn: sa.Connection) -> tuple[list[float], list[float]]:
        rng = random.Random(7)
        for _ in range(min(samples, 500)):
            query(conn, rng.randint(1, n_users))
        wall, cpu = [], []
        for _ in range(samples):
            user_id = rng.randint(1, n_users)
            t0, c0 = time.perf_counter(), time.thread_time()
            query(conn, user_id)
            cpu.append((time.thread_time() - c0) * 1000)
            wall.append((time.perf_counter() - t0) * 1000)
        return wall, cpu

    return db._run_read(body, ())


def busy_loop(conn: sa.Connection, user_id: int) -> Any:
    """The control: ~0.2 ms of pure Python and no SQL, to show the machine's scheduling noise."""
    return sum(range(30_000))


def newest_20(conn: sa.Connection, user_id: int) -> Any:
    return order_sql.page_orders(conn, user_id, None, None, None, 1, 20)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


def report(name: str, ms: list[float]) -> None:
    print(f"  {name:<50} p50 {pct(ms, 50):7.3f} ms   p99 {pct(ms, 99):7.3f} ms")


async def via_api(store: Store, n_users: int, samples: int) -> list[float]:
    rng = random.Random(9)
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        await store.list_orders(rng.randint(1, n_users))
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def write_throughput(
    url: str, n_users: int, writers: int, per_writer: int, batch_jobs: int, tag: str
) -> tuple[float, float]:
    """``writers`` tasks each apply ``per_writer`` single-change calls; (changes/s, mean batch)."""
    async with open_store(
        url, secrets=SecretBox.ephemeral(), clock=system_clock(), batch_jobs=batch_jobs
    ) as store:

        async def writer(w: int) -> None:
            rng = random.Random(w)
            for k in range(per_writer):
                change = new_order(
                    user_id=rng.randint(1, n_users), symbol="BTCUSDT", side=Side.BUY,
                    type=OrderType.LIMIT, quantity=Decimal("0.010"), price=Decimal("30000.5"),
                    time_in_force=TimeInForce.GTC, client_order_id=f"{tag}-{w}-{k}",
                    now=store.clock.now_ms(),
                )  # fmt: skip
                await store.apply([change])

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for w in range(writers):
                nursery.start_soon(writer, w)
        elapsed = time.perf_counter() - t0
        return writers * per_writer / elapsed, store.statistics().mean_batch_size


def existing_url(kind: str, path: Path) -> str:
    if kind == "sqlite":
        return f"sqlite:///{path}"
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={SCHEMA}"})
    return url.render_as_string(hide_password=False)


def prepare(kind: str, path: Path) -> str:
    if kind == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.exec_driver_sql(f"CREATE SCHEMA {SCHEMA}")
    admin.dispose()
    return existing_url(kind, path)


async def bench(kind: str, args: argparse.Namespace) -> None:
    total = args.users * args.orders
    if args.keep:
        url = existing_url(kind, Path(args.sqlite_path))
        db = Database(url)
        print(f"{kind}: reusing the seeded database ({total:,} orders expected)")
    else:
        url = prepare(kind, Path(args.sqlite_path))
        db = Database(url)
        seconds = await trio.to_thread.run_sync(seed, db, args.users, args.orders)
        print(f"{kind}: seeded {args.users:,} users x {args.orders} orders = {total:,} "
              f"in {seconds:.1f} s")  # fmt: skip
    for name, query in (("newest 20 (page + total), in thread", newest_20),
                        ("pending orders, in thread", order_sql.pending_orders),
                        ("control: no SQL, a pure-Python loop", busy_loop)):  # fmt: skip
        wall, cpu = await trio.to_thread.run_sync(timed, db, args.users, args.samples, query)
        report(name + " (wall)", wall)
        report(name + " (thread CPU)", cpu)
    await db.dispose()
    async with open_store(url, secrets=SecretBox.ephemeral(), clock=system_clock()) as store:
        report("newest 20 via Store.list_orders (hop incl.)", await via_api(store, args.users, 500))
    for label, jobs in (("group commit", 512), ("one change per transaction", 1)):
        rate, mean = await write_throughput(
            url, args.users, args.writers, args.per_writer, jobs, f"{uuid.uuid4().hex[:8]}{jobs}"
        )
        print(f"  writes, {args.writers} writers, {label:<27} {rate:9,.0f} changes/s"
              f"   (mean batch {mean:.1f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=100, help="orders per user")
    parser.add_argument("--samples", type=int, default=5000, help="timed reads per query")
    parser.add_argument("--writers", type=int, default=200)
    parser.add_argument("--per-writer", type=int, default=25, help="changes per writer")
    parser.add_argument(
        "--keep", action="store_true", help="reuse the database seeded by the last run"
    )
    parser.add_argument(
        "--sqlite-path", default=str(Path(tempfile.gettempdir()) / "tradercoin-bench.db")
    )
    args = parser.parse_args()
    print(f"python {platform.python_version()} ({sys.executable}), "
          f"SQLAlchemy {sa.__version__}, {os.cpu_count()} CPUs")  # fmt: skip
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    for kind in kinds:
        trio.run(bench, kind, args)


if __name__ == "__main__":
    main()
