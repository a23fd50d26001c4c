"""Database faults under a real write load: SQLite held locked by another process, and the
test's own throwaway PostgreSQL cluster restarted (``pg_ctl restart``) while the batcher writes.

Under each: the batcher retries, every caller gets success or a clear one-line StoreError,
nothing is committed twice (order rows and seqs are exactly what the callers were told), and
the same store keeps working afterwards. Real databases and threads: no autojump.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
import sqlalchemy as sa
import trio

from tests.conftest import missing
from tests.pgcluster import Cluster, find_bindir, throwaway_cluster
from tradercoin.clock import system_clock
from tradercoin.orders import (
    OrderChange,
    OrderEvent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    new_order,
)
from tradercoin.store import (
    CommitUnknown,
    SecretBox,
    Store,
    StoreError,
    User,
    generate_key,
    open_store,
)
from tradercoin.store.schema import orders

WRITERS_PER_USER = 4
LOCK_SECONDS = 7.0  # longer than SQLite's busy timeout (5 s): the store's own retries run


@dataclasses.dataclass(eq=False)
class Load:
    """Writers that each create orders and update them, recording what they were told."""

    store: Store
    users: list[User]
    acknowledged: Counter[int] = dataclasses.field(default_factory=Counter)  # events per user
    created: dict[int, set[str]] = dataclasses.field(default_factory=dict)  # told committed
    errors: list[str] = dataclasses.field(default_factory=list)
    unknown: Counter[int] = dataclasses.field(default_factory=Counter)  # CommitUnknown changes
    maybe: set[str] = dataclasses.field(default_factory=set)  # inserts whose COMMIT was lost
    ops: int = 0

    async def run(self, stop: trio.Event) -> None:
        async with trio.open_nursery() as nursery:
            for user in self.users:
                self.created[user.id] = set()
                for writer in range(WRITERS_PER_USER):
                    nursery.start_soon(self._writer, user, writer, stop)

    async def _writer(self, user: User, writer: int, stop: trio.Event) -> None:
        n = 0
        while not stop.is_set():
            n += 1
            cid = f"r-{user.id}-{writer}-{n}"
            change = new_order(
                user_id=user.id,
                symbol="BTCUSDT",
                side=Side.BUY,
                type=OrderType.LIMIT,
                quantity=Decimal("0.010"),
                price=Decimal(40_000 + n),
                time_in_force=TimeInForce.GTC,
                client_order_id=cid,
                now=1_700_000_000_000 + n,
            )
            events = await self._apply(user, [change])
            if events is None:
                self.maybe.add(cid)
                continue
            self.created[user.id].add(cid)
            stored = events[0].order
            update = dataclasses.replace(stored, status=OrderStatus.NEW, exchange_order_id=n)
            await self._apply(user, [OrderChange(before=stored, after=update)])

    async def _apply(self, user: User, changes: list[OrderChange]) -> list[OrderEvent] | None:
        self.ops += 1
        try:
            events = await self.store.apply(changes)
        except CommitUnknown:
            self.unknown[user.id] += len(changes)  # stored or not: the checks allow both
            return None
        except StoreError as error:
            message = str(error)
            assert "\n" not in message and "SELECT" not in message and "INSERT" not in message
            self.errors.append(message)
            await trio.sleep(0.05)
            return None
        self.acknowledged[user.id] += len(events)
        return events


async def _check_exact(load: Load) -> None:
    """Rows and events are exactly what callers were told: no loss, nothing twice."""
    for user in load.users:
        cids = await load.store.db.read(_client_ids, user.id)
        assert load.created[user.id] <= set(cids) <= load.created[user.id] | load.maybe
        assert len(cids) == len(set(cids))
        seq = await load.store.latest_seq(user.id)
        told = load.acknowledged[user.id]
        assert told <= seq <= told + load.unknown[user.id]
        events = await load.store.events_since(user.id, 0, limit=100_000)
        assert [e.seq for e in events] == list(range(1, seq + 1))


def _client_ids(conn: sa.Connection, user_id: int) -> list[str]:
    query = sa.select(orders.c.client_order_id).where(orders.c.user_id == user_id)
    return list(conn.execute(query).scalars())


async def _users(store: Store, count: int) -> list[User]:
    return [await store.create_user(f"fault{i}", "hash") for i in range(count)]


def _hold_sqlite_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    """Another process takes SQLite's write lock and keeps it ``seconds``."""
    code = (
        "import sqlite3, sys, time\n"
        "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True)\n"
        "time.sleep(float(sys.argv[2])); c.execute('COMMIT')\n"
    )
    command = [sys.executable, "-c", code, str(path), str(seconds)]
    holder = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


async def _under_fault(store: Store, fault: Callable[[], Awaitable[None]]) -> Load:
    """Run the load, inject ``fault`` (returns when it is over), let writes go on for a
    second; returns the load."""
    load = Load(store, await _users(store, 3))
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(load.run, stop)
        await trio.sleep(0.5)
        before = load.ops
        await fault()
        after = load.ops
        await trio.sleep(1.5)
        stop.set()
    assert after > before  # writes were in flight during the fault
    assert load.ops > after + len(load.users) * WRITERS_PER_USER  # and resumed after it
    return load


async def test_sqlite_locked_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    box = SecretBox.parse(generate_key())

    async def lock() -> None:
        holder = await trio.to_thread.run_sync(_hold_sqlite_lock, path, LOCK_SECONDS)
        assert await trio.to_thread.run_sync(holder.wait) == 0

    async with open_store(f"sqlite:///{path}", secrets=box, clock=system_clock()) as store:
        load = await _under_fault(store, lock)
        assert store.db.retries > 0  # the lock outlived the busy timeout: the store retried
        assert load.errors == []  # a lock is waited out, never reported
        await _check_exact(load)


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster of this test's own (never the machine's): restarting it harms
    nobody. Skips without PostgreSQL's binaries (fails under CI=true)."""
    bindir = find_bindir()
    if bindir is None:
        missing("no PostgreSQL binaries (initdb, pg_ctl) for a throwaway cluster")
    with throwaway_cluster(bindir) as cluster:
        yield cluster


@pytest.mark.postgres
@pytest.mark.slow
async def test_postgresql_restarted_mid_run(own_cluster: Cluster) -> None:
    box = SecretBox.parse(generate_key())
    async with open_store(own_cluster.url, secrets=box, clock=system_clock()) as store:
        load = await _under_fault(store, partial(trio.to_thread.run_sync, own_cluster.restart))
        assert store.db.retries > 0  # the restart was ridden out by retrying
        assert load.errors == []  # every write succeeded or met a lost COMMIT
        await _check_exact(load)
