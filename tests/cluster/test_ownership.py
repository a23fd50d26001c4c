"""Ownership on a real PostgreSQL: instances in one process, each with its own lock connection.

The oracle is PostgreSQL itself: ``pg_locks`` (which backend holds which user's lock),
``pg_stat_activity`` (which lock connections the server still has) and the orders table; and a
shared registry of the "actors" the holders run, which checks at every adoption that no other
instance may still act for that user (its fence refuses).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import psycopg
import pytest
import trio
import trio.lowlevel

from tests.conftest import pg_conninfo
from tests.store.conftest import EPOCH_MS, placed
from tradercoin.clock import FixedEpochClock
from tradercoin.cluster import locksql
from tradercoin.cluster.directory import NotOwner
from tradercoin.cluster.locksql import conninfo
from tradercoin.cluster.ownership import Ownership
from tradercoin.exchange.protocol import Credentials
from tradercoin.store import SecretBox, Store, generate_key, open_store

LEASE = 2.0
ROUND = 0.2


class Registry:
    """Every instance's running actors; an adoption while another instance may still act
    for the user is a violation."""

    def __init__(self) -> None:
        self.running: dict[str, set[int]] = {}
        self.directories: dict[str, Ownership] = {}
        self.violations: list[str] = []
        self.adoptions = 0
        self.samples = 0


class Holder:
    def __init__(self, name: str, registry: Registry) -> None:
        self.name = name
        self.registry = registry
        self.mine: set[int] = registry.running.setdefault(name, set())

    def adopt(self, user_id: int) -> None:
        if user_id in self.mine:
            return
        for other, users in self.registry.running.items():
            if other != self.name and user_id in users:
                try:
                    self.registry.directories[other].fence(user_id)
                except NotOwner:
                    continue
                self.registry.violations.append(f"{self.name} adopted {user_id} held by {other}")
        self.mine.add(user_id)
        self.registry.adoptions += 1

    async def release(self, user_id: int) -> None:
        await trio.lowlevel.checkpoint()
        self.mine.discard(user_id)

    def release_all(self) -> None:
        self.mine.clear()


def pg(sql: str, *args: object, url: str | None = None) -> list[tuple[object, ...]]:
    """One statement on a connection of its own (on the test's schema with ``url``)."""
    with psycopg.connect(conninfo(url) if url else pg_conninfo(), autocommit=True) as conn:
        return conn.execute(sql, args or None).fetchall()  # type: ignore[arg-type]


def holders_in_pg(ownership: Ownership) -> dict[int, list[int]]:
    """user -> the pids holding its ownership lock, straight from pg_locks."""
    ns = ownership._conn.ns if ownership._conn else None
    found: dict[int, list[int]] = {}
    for user, pid in pg(
        "SELECT objid::bigint, pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND objsubid = 2 AND classid = %s::oid",
        ns,
    ):
        found.setdefault(int(user), []).append(int(pid))  # type: ignore[call-overload]
    return found


@pytest.fixture
async def store(pg_schema_url: str) -> AsyncIterator[Store]:
    box = SecretBox.parse(generate_key("k1"))
    async with open_store(pg_schema_url, secrets=box, clock=FixedEpochClock(EPOCH_MS)) as s:
        yield s


async def add_users(store: Store, count: int) -> list[int]:
    ids = []
    for n in range(count):
        user = await store.create_user(f"u{n}", "hash")
        await store.set_credentials(user.id, Credentials(api_key=f"k{n}", api_secret="s"))
        ids.append(user.id)
    return ids


class Cluster:
    """Ownership instances on one schema, each running in the test's nursery."""

    def __init__(self, url: str, nursery: trio.Nursery) -> None:
        self.url = url
        self.nursery = nursery
        self.registry = Registry()
        self.scopes: dict[str, trio.CancelScope] = {}

    async def start(self, name: str, **options: float) -> Ownership:
        ownership = Ownership(
            self.url,
            instance_id=name,
            address=f"http://{name}",
            lease=LEASE,
            interval=ROUND,
            **options,  # type: ignore[arg-type]
        )
        self.registry.directories[name] = ownership
        scope = self.scopes[name] = trio.CancelScope()

        async def run(task_status: trio.TaskStatus[None]) -> None:
            with scope:
                await ownership.run(Holder(name, self.registry), task_status=task_status)

        await self.nursery.start(run)
        return ownership

    def stop(self, name: str) -> None:
        self.scopes[name].cancel()

    async def watch(self) -> None:
        """Across the run: never two instances that may act for one user (their fences
        pass), never two sessions holding one user's ownership lock in pg_locks."""
        registry = self.registry
        while True:
            acting: dict[int, list[str]] = {}
            for name, directory in list(registry.directories.items()):
                for user in directory.held:
                    if directory.owns(user):
                        acting.setdefault(user, []).append(name)
            registry.violations += [f"{u} on {n}" for u, n in acting.items() if len(n) > 1]
            doubles = await trio.to_thread.run_sync(pg, DOUBLE_HOLDERS)
            registry.violations += [f"pg_locks: {row}" for row in doubles]
            registry.samples += 1
            await trio.sleep(ROUND / 4)


DOUBLE_HOLDERS = """SELECT classid, objid, count(*) FROM pg_locks WHERE locktype = 'advisory'
    AND objsubid = 2 AND granted AND mode = 'ExclusiveLock' GROUP BY 1, 2 HAVING count(*) > 1"""


@asynccontextmanager
async def cluster(url: str) -> AsyncIterator[Cluster]:
    async with trio.open_nursery() as nursery:
        c = Cluster(url, nursery)
        nursery.start_soon(c.watch)
        yield c
        nursery.cancel_scope.cancel()
    assert c.registry.samples > 0


async def until(check: Callable[[], bool], *, within: float = 20.0) -> None:
    """Wait until ``check()`` holds (ownership rounds have no event to wait on)."""
    with trio.fail_after(within):
        while not check():  # noqa: ASYNC110
            await trio.sleep(ROUND / 2)


async def test_two_instances_split_the_users_evenly(store: Store, pg_schema_url: str) -> None:
    users = await add_users(store, 20)
    async with cluster(pg_schema_url) as c:
        a = await c.start("a")
        b = await c.start("b")
        await until(lambda: len(a.held) == 10 and len(b.held) == 10)
        assert a.held.isdisjoint(b.held) and a.held | b.held == set(users)
        in_pg = holders_in_pg(a)
        assert {u: pids for u, pids in in_pg.items()} == {
            u: [a.pid if u in a.held else b.pid] for u in users
        }
        expected = [("a", 10, True), ("b", 10, True)]  # as of a's next round
        await until(lambda: [(i.id, i.users, i.healthy) for i in a.instances()] == expected)
        other = next(iter(b.held))
        assert a.owner_of(other) is not None and a.owner_of(other).id == "b"  # type: ignore[union-attr]
    assert c.registry.violations == []


async def test_a_joining_instance_takes_its_share_a_few_at_a_time(
    store: Store, pg_schema_url: str
) -> None:
    users = await add_users(store, 21)
    async with cluster(pg_schema_url) as c:
        a = await c.start("a", handovers_per_round=2)
        b = await c.start("b", handovers_per_round=2)
        await until(lambda: len(a.held) + len(b.held) == 21 and max(len(a.held), len(b.held)) <= 11)
        third = await c.start("c", claims_per_round=2)
        seen: list[int] = []
        while len(third.held) < 7:
            await until(functools.partial(lambda done: third.rounds > done, third.rounds))
            seen.append(len(third.held))
        steps = [later - earlier for earlier, later in zip([0, *seen], seen, strict=False)]
        assert max(steps) <= 2, seen  # a few per round, never all at once
        assert len([s for s in steps if s > 0]) >= 4, seen  # the share came over several rounds
        await until(lambda: sorted(len(o.held) for o in (a, b, third)) == [7, 7, 7])
        assert set().union(a.held, b.held, third.held) == set(users)
    assert c.registry.violations == []


async def test_a_dead_lock_connection_frees_its_users_for_the_others(
    store: Store, pg_schema_url: str
) -> None:
    users = await add_users(store, 12)
    async with cluster(pg_schema_url) as c:
        a = await c.start("a")
        b = await c.start("b")
        await until(lambda: len(a.held) == 6 and len(b.held) == 6)
        gate = trio.Event()
        join = a._join

        async def join_later() -> None:  # a stays out until the test lets it in
            await gate.wait()
            await join()

        a._join = join_later  # type: ignore[method-assign]
        victim = a.pid
        [(killed,)] = pg("SELECT pg_terminate_backend(%s)", victim)
        assert killed is True
        began = trio.current_time()
        await until(lambda: b.held == set(users), within=LEASE + 10 * ROUND)
        took = trio.current_time() - began
        assert holders_in_pg(b) == {u: [b.pid] for u in users}
        assert a.lease_losses == 1 and a.held == frozenset()
        # b waited for the lease a may still have believed in (a's row said it died)
        assert took >= LEASE - 2 * ROUND, took
        print(f"takeover after pg_terminate_backend: {took:.2f}s")
        gate.set()  # a joins again: it takes back its share by handover, a few per round
        await until(lambda: len(a.held) == 6 and len(b.held) == 6)
    assert c.registry.violations == []


async def test_a_paused_owner_is_fenced_by_its_lease_and_by_the_store(
    store: Store, pg_schema_url: str
) -> None:
    [mine, other] = await add_users(store, 2)
    async with cluster(pg_schema_url) as c:
        a = await c.start("a")
        await until(lambda: a.held == {mine, other})
        store.ownership_check = a.write_fence
        # while a owns both, its writes go through, one batch or not
        await store.apply([placed(mine, "tc-before")])
        a.fence(mine)
        gate = trio.Event()
        paused: Callable[..., Awaitable[None]] = gate.wait
        a._one_round = lambda holder: paused()  # type: ignore[method-assign]
        pid = a.pid
        await until(lambda: trio.current_time() >= a._lease_until)
        with pytest.raises(NotOwner, match="lost its lease"):
            a.fence(mine)
        b = await c.start("b")
        await until(lambda: b.held == {mine, other}, within=LEASE + 10 * ROUND)
        # the server ended a's idle lock connection: the fault fired
        assert pg("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", pid) == [(0,)]
        assert holders_in_pg(b) == {mine: [b.pid], other: [b.pid]}
        # a, paused, still believes it holds the users: the store refuses its write
        assert mine in a.held
        with pytest.raises(NotOwner, match="write refused"):
            await store.apply([placed(mine, "tc-after")])
        # b's write for the same user commits in the same store with b's fence
        store.ownership_check = b.write_fence
        await store.apply([placed(mine, "tc-by-b")])
        rows = pg(
            "SELECT client_order_id FROM orders WHERE user_id = %s ORDER BY id",
            mine,
            url=pg_schema_url,
        )
        assert rows == [("tc-before",), ("tc-by-b",)]
        gate.set()
    assert c.registry.violations == []
    assert c.registry.adoptions >= 4


async def test_the_write_fence_refuses_one_user_and_commits_the_other(
    store: Store, pg_schema_url: str
) -> None:
    [owned] = await add_users(store, 1)
    unowned = (await store.create_user("no-keys", "hash")).id  # nobody claims it
    async with cluster(pg_schema_url) as c:
        a = await c.start("a")
        await until(lambda: a.held == {owned})
        store.ownership_check = a.write_fence
        results: dict[int, object] = {}

        async def write(user: int) -> None:
            try:
                await store.apply([placed(user, f"tc-{user}")])
                results[user] = "stored"
            except NotOwner as error:
                results[user] = error

        async with trio.open_nursery() as nursery:  # both in one group commit, likely
            nursery.start_soon(write, owned)
            nursery.start_soon(write, unowned)
        assert results[owned] == "stored" and isinstance(results[unowned], NotOwner)
        assert pg("SELECT user_id, client_order_id FROM orders", url=pg_schema_url) == [
            (owned, f"tc-{owned}")
        ]
        assert a.fenced_writes == 1


async def test_a_new_owner_ends_a_write_the_old_one_left_hanging(
    store: Store, pg_schema_url: str
) -> None:
    """The handshake: an old owner's write transaction stuck holding the user's write lock
    (its process paused mid-write) is terminated, so the new owner starts within a round."""
    [user] = await add_users(store, 1)
    probe = await trio.to_thread.run_sync(locksql.connect, pg_schema_url, "probe", LEASE)
    ns = probe.ns
    probe.close()
    stuck = await trio.to_thread.run_sync(
        functools.partial(psycopg.connect, conninfo(pg_schema_url))
    )
    stuck.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", (ns + 1, user))
    stuck.execute(
        "UPDATE credentials SET key_id = 'written by the old owner' WHERE user_id = %s", (user,)
    )
    stuck_pid = stuck.info.backend_pid
    async with cluster(pg_schema_url) as c:
        b = await c.start("b")
        await until(lambda: b.held == {user})
        assert pg("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", stuck_pid) == [(0,)]
    stuck.close()
    # the hanging write was rolled back, never committed
    assert ("written by the old owner",) not in pg(
        "SELECT key_id FROM credentials", url=pg_schema_url
    )


async def test_a_second_instance_with_a_running_instance_id_is_refused(
    store: Store, pg_schema_url: str
) -> None:
    await add_users(store, 1)
    async with cluster(pg_schema_url) as c:
        await c.start("twin")
        again = Ownership(pg_schema_url, instance_id="twin", address="http://again")
        with pytest.raises(locksql.DuplicateInstance, match="already has the id 'twin'"):
            await again.run(Holder("again", c.registry))
