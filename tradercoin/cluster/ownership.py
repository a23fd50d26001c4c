"""Ownership: which instance runs each user's actor, held in PostgreSQL advisory locks.

Why session advisory locks on one dedicated connection per instance (and not leases in a
table): PostgreSQL itself guarantees that at most one session holds ``(ns, user)``, and it frees
every lock of a session the moment the session ends. The failure cases then reduce to "when
does the server end the session of an instance that stopped being able to act?":

- dead process or closed socket: at once (or when TCP keepalives, set short both ways, notice);
- paused (SIGSTOP) or partitioned instance: the connection is set ``idle_session_timeout`` =
  one lease (5 s by default); it is never idle that long while the instance lives, because a
  heartbeat runs on it every second.

The instance's side of that bargain is a local lease: a heartbeat that started at trio time
``t`` and succeeded proves the session alive at ``t``, so the server cannot end it (for
idleness) before ``t + lease``; :meth:`Ownership.fence` refuses after ``t + lease - margin``.
A heartbeat that fails or hangs past the lease loses everything at once
(``holder.release_all()``) and the instance joins again on a new connection.

A lock freed by a lost connection may still be covered by its old owner's local lease for a
moment (a killed backend, a half-open socket), so no instance claims anything while an instance
that did not leave on purpose (its row still names a pid the server no longer has) renewed its
heartbeat less than a lease ago; a graceful shutdown marks the row as left, and its users are
claimed at once.

A lease alone cannot stop a write already on its way (a process paused mid-request resumes with
its check done), so the store has a real fence too: each write transaction takes the user's
shared *write* lock and checks in ``pg_locks`` that this instance's lock connection holds the
user (:func:`~tradercoin.cluster.locksql.refused_writes`); a new owner takes that write lock
exclusively once after claiming (the handshake), so every write of the old owner has either
committed before, or is refused. Orders are written before they are sent to the exchange, so an
old owner can never place an order the new one does not know about.

Spreading: every round (about a second) an instance claims users nobody holds (those with
pending orders first) up to its fair share ``ceil(users / live instances)``; one above its
share hands a few over per round (actor stopped first, then the lock released), so a
joining instance takes its share over a bounded time. No instance claims beyond its share, so
the shares settle (no user moves back and forth) with every instance within one user of the
others. A graceful shutdown
stops the actors, then closes the connection: every user is free for the others at once.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
import trio

from tradercoin.cluster import locksql
from tradercoin.cluster.directory import InstanceInfo, NotOwner

__all__ = ["ClusterStatistics", "Holder", "Ownership"]

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ClusterStatistics:
    """This instance's part in the cluster (``/metrics``: ``tradercoin_cluster_*``)."""

    owned_users: int
    instances_healthy: int
    claims: int
    handovers: int
    lease_losses: int
    fenced_writes: int


class Holder(Protocol):
    """What ownership drives (the :class:`~tradercoin.actors.supervisor.Supervisor`)."""

    def adopt(self, user_id: int) -> Any:
        """Run the user's actor (idempotent: nothing happens when it runs already)."""
        ...

    async def release(self, user_id: int) -> None:
        """Stop the user's actor and return once it is gone."""
        ...

    def release_all(self) -> None:
        """Stop every actor now (ownership is lost: no waiting on anything)."""
        ...


class Ownership:
    """The cluster directory of one instance (see the module docstring).

    Args:
        database_url: the service's ``postgresql+psycopg://`` URL.
        instance_id, address: this instance's id and the URL others reach it on (the address
            may be filled in later, before :meth:`run`).
        lease: seconds the server keeps an idle lock connection (the failover bound's core).
        interval: seconds between rounds.
        claims_per_round: at most this many free users claimed per round (a dead instance's
            users are free: taken over within a round or two).
        handovers_per_round: at most this many users handed over per round (a joining
            instance takes its share gradually, without a burst of actor starts).
    """

    def __init__(
        self,
        database_url: str,
        *,
        instance_id: str,
        address: str = "",
        lease: float = 5.0,
        interval: float = 1.0,
        claims_per_round: int = 1000,
        handovers_per_round: int = 10,
    ) -> None:
        self.instance_id = instance_id
        self.address = address
        self._url = database_url
        self.lease = lease
        self.interval = interval
        self._margin = max(interval, lease / 5)
        self._claims = claims_per_round
        self._handovers = handovers_per_round
        self._conn: locksql.LockConnection | None = None
        self._lease_until = -math.inf
        self._held: set[int] = set()
        self._round: locksql.Round = locksql.Round({}, [], [])
        self._limiter = trio.CapacityLimiter(1)
        self.rounds = 0
        self.claims = 0
        self.handovers = 0
        self.lease_losses = 0
        self.fenced_writes = 0

    # ------------------------------------------------------------ Directory

    def owns(self, user_id: int) -> bool:
        return user_id in self._held and trio.current_time() < self._lease_until

    def fence(self, user_id: int) -> None:
        if user_id not in self._held:
            raise NotOwner(f"instance {self.instance_id} does not own user {user_id}")
        if trio.current_time() >= self._lease_until:
            raise NotOwner(f"instance {self.instance_id} lost its lease on the database")

    def owner_of(self, user_id: int) -> InstanceInfo | None:
        if self.owns(user_id):
            return self._info(self.instance_id)
        pid = self._round.holders.get(user_id)
        row = next((r for r in self._round.instances if r.pid == pid and r.connected), None)
        return None if pid is None or row is None else self._info(row.id)

    def instances(self) -> list[InstanceInfo]:
        return [self._info(row.id) for row in self._round.instances]

    def _info(self, instance_id: str) -> InstanceInfo:
        rnd = self._round
        row = next((r for r in rnd.instances if r.id == instance_id), None)
        if row is None:  # this instance, before its first round
            return InstanceInfo(instance_id, self.address, False, len(self._held), 0.0)
        mine = instance_id == self.instance_id  # its own claims are newer than the round
        users = len(self._held) if mine else len(self._users_of(row))
        return InstanceInfo(row.id, row.address, self._healthy(row), users, row.age_ms / 1000)

    def users_by_instance(self) -> dict[str, list[int]]:
        """Each instance's users (sorted), as PostgreSQL's locks showed them at the last
        round; this instance's own are current."""
        found = {row.id: self._users_of(row) for row in self._round.instances}
        found[self.instance_id] = sorted(self._held)
        return found

    def _users_of(self, row: locksql.Row) -> list[int]:
        return [] if row.pid is None else self._round.users_by_pid.get(row.pid, [])

    def _healthy(self, row: locksql.Row) -> bool:
        return row.connected and row.age_ms <= self.lease * 1000

    def statistics(self) -> ClusterStatistics:
        return ClusterStatistics(
            owned_users=len(self._held),
            instances_healthy=sum(1 for row in self._round.instances if self._healthy(row)),
            claims=self.claims,
            handovers=self.handovers,
            lease_losses=self.lease_losses,
            fenced_writes=self.fenced_writes,
        )

    @property
    def held(self) -> frozenset[int]:
        """The users this instance holds the lock of (its lease aside)."""
        return frozenset(self._held)

    @property
    def pid(self) -> int | None:
        """The backend pid of the lock connection (None while disconnected)."""
        return None if self._conn is None else self._conn.pid

    # ------------------------------------------------------------ the store's fence

    def write_fence(self, conn: sa.Connection, users: list[int]) -> dict[int, Exception]:
        """The store's write fence (``store.ownership_check``; see :mod:`.locksql`)."""
        lock = self._conn
        if lock is None:
            refused = set(users)
        else:
            refused = locksql.refused_writes(conn, users, lock.ns, lock.pid)
        self.fenced_writes += len(refused)  # an int's += is atomic enough for a counter
        return {
            u: NotOwner(f"instance {self.instance_id} does not own user {u}: write refused")
            for u in refused
        }

    # ------------------------------------------------------------ the loop

    async def run(
        self, holder: Holder, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Join, then claim, keep and hand over users until cancelled; ``started()`` after
        the first round (or the first failure to reach the database). On cancel, the actors
        are stopped, then the connection is closed (every lock freed for the others)."""
        import psycopg

        started = False
        try:
            while True:
                try:
                    await self._join()
                    while True:
                        await self._one_round(holder)
                        if not started:
                            started = True
                            task_status.started()
                        await trio.sleep(self.interval)
                except (psycopg.Error, LeaseLost) as error:
                    await self._lose(holder, error)
                if not started:
                    started = True
                    task_status.started()
                await trio.sleep(self.interval)
        finally:
            with trio.CancelScope(shield=True):
                await self._hand_over_all(holder)

    async def _join(self) -> None:
        self._conn = await self._thread(locksql.connect, self._url, self.instance_id, self.lease)
        first = self.rounds == 0 and self.lease_losses == 0
        await self._thread(
            functools.partial(self._conn.register, first=first), self.instance_id, self.address
        )
        log.info(
            "instance %s joined the cluster (lock connection pid %d)", self.instance_id, self.pid
        )

    async def _one_round(self, holder: Holder) -> None:
        started = trio.current_time()
        if self._held and started >= self._lease_until:
            raise LeaseLost("a round came too late to renew the lease")
        assert self._conn is not None
        with trio.move_on_at(max(self._lease_until, started + self.lease - self._margin)):
            self._round = await self._thread(self._conn.round, self.instance_id, self.address)
            self._lease_until = started + self.lease - self._margin
            self.rounds += 1
            await self._settle(holder)
            await self._claim(holder)
            await self._hand_over(holder)
            return
        raise LeaseLost("the database did not answer within the lease")

    async def _settle(self, holder: Holder) -> None:
        """Align with what PostgreSQL says: locks this connection holds run their actors;
        users no longer wanted (keys removed) are let go."""
        assert self._conn is not None
        mine = {u for u, pid in self._round.holders.items() if pid == self._conn.pid}
        if self._held - mine:
            raise LeaseLost(f"the database shows {len(self._held - mine)} of our users free")
        wanted = set(self._round.wanted)
        for user_id in sorted(mine - wanted):
            await self._release(holder, user_id)
        self._held = mine & wanted
        for user_id in sorted(self._held):
            holder.adopt(user_id)

    def _share(self) -> int:
        live = sum(1 for row in self._round.instances if self._healthy(row))
        return math.ceil(len(self._round.wanted) / max(live, 1))

    def _mourning(self) -> bool:
        """An instance died less than a lease ago: its own lease may still be running."""
        return any(
            row.pid is not None and not row.connected and row.age_ms < self.lease * 1000
            for row in self._round.instances
        )

    async def _claim(self, holder: Holder) -> None:
        room = min(self._share() - len(self._held), self._claims)
        if room <= 0 or self._mourning() or not self.address:
            return  # (no address yet: the others could not reach this instance's users)
        free = [u for u in self._round.wanted if u not in self._round.holders]
        candidates: list[int] = []
        for user_id in free:
            if len(candidates) == room:
                break
            try:
                locksql.check_key(user_id)
            except ValueError as error:
                log.error("cannot own user %d: %s", user_id, error)
                continue
            candidates.append(user_id)
        if not candidates:
            return
        assert self._conn is not None
        taken = await self._thread(self._conn.claim, candidates)
        for user_id in taken:
            self._held.add(user_id)
            holder.adopt(user_id)
        if taken:
            self.claims += len(taken)
            log.info("instance %s claimed %d users", self.instance_id, len(taken))

    async def _hand_over(self, holder: Holder) -> None:
        """Above its share: release a few, users without pending orders first (the wanted
        list has those last)."""
        excess = len(self._held) - self._share()
        if excess <= 0:
            return
        order = {u: i for i, u in enumerate(self._round.wanted)}
        chosen = sorted(self._held, key=lambda u: order.get(u, -1), reverse=True)
        for user_id in chosen[: min(excess, self._handovers)]:
            await self._release(holder, user_id)
            self.handovers += 1

    async def _release(self, holder: Holder, user_id: int) -> None:
        """Hand one user over: its actor stops first, then its lock is released."""
        await holder.release(user_id)
        self._held.discard(user_id)
        assert self._conn is not None
        await self._thread(self._conn.unlock, user_id)

    async def _lose(self, holder: Holder, error: BaseException) -> None:
        """Stop every actor at once, then drop the connection: closed (its locks freed for
        the others now, when it still lives), or left behind when closing hangs on a dead
        socket (the server ends it within a lease)."""
        if self._held:
            self.lease_losses += 1
            log.warning(
                "instance %s lost ownership of %d users (%s); joining again",
                self.instance_id,
                len(self._held),
                error,
            )
        else:
            log.warning("instance %s: database unreachable (%s)", self.instance_id, error)
        holder.release_all()
        self._held.clear()
        self._lease_until = -math.inf
        conn, self._conn = self._conn, None
        self._limiter = trio.CapacityLimiter(1)  # a hung call keeps the old one's token
        if conn is not None:
            with trio.move_on_after(1):
                await trio.to_thread.run_sync(conn.close, abandon_on_cancel=True)

    async def _hand_over_all(self, holder: Holder) -> None:
        """Leaving: stop every actor (each waited for, a few seconds at most), mark this
        instance as left, then close the connection (every lock freed at once)."""
        with trio.move_on_after(self.lease / 2):
            for user_id in sorted(self._held):
                await holder.release(user_id)
        holder.release_all()
        self._held.clear()
        self._lease_until = -math.inf
        conn, self._conn = self._conn, None
        if conn is not None:
            with trio.move_on_after(2):
                await self._thread(_leave_and_close, conn, self.instance_id)

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` in a worker thread; abandoned (not awaited) when cancelled, since a
        call on a dead socket may hang until keepalives give up."""
        return await trio.to_thread.run_sync(
            fn, *args, limiter=self._limiter, abandon_on_cancel=True
        )


def _leave_and_close(conn: locksql.LockConnection, instance_id: str) -> None:
    """(A connection the server already ended has nothing to leave: its row says dead.)"""
    import psycopg

    with contextlib.suppress(psycopg.Error):
        conn.leave(instance_id)
    conn.close()


class LeaseLost(Exception):
    """This instance can no longer be sure it owns its users."""
