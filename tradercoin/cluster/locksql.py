"""The SQL of ownership: what :class:`~tradercoin.cluster.ownership.Ownership` runs on its lock
connection (in a worker thread, never on the trio thread), and the store's write fence.

Keys: a user's ownership is the session advisory lock ``(ns, user_id)`` (two-int form, so
``pg_locks`` shows it as ``classid = ns, objid = user_id, objsubid = 2``); writes for a user take
the transaction lock ``(ns + 1, user_id)``, shared by writers, exclusive once by a new owner.
``ns`` is derived from the database and schema, so separate tradercoin databases (or test
schemas) in one PostgreSQL never see each other's locks.
"""

from __future__ import annotations

import functools
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from tradercoin.store.errors import StoreError

if TYPE_CHECKING:  # psycopg is the postgres extra: imported where a cluster uses it
    import psycopg

__all__ = ["DuplicateInstance", "LockConnection", "Round", "connect", "refused_writes"]

MAX_KEY = 2**31 - 1  # advisory lock keys of the two-int form are int4
HANDSHAKE_TIMEOUT_MS = 1000  # a write of the old owner still running after this is stuck
# the statements (NOW_MS: the server's clock in epoch ms; the pg_locks filter: granted advisory
# locks of the two-int form in this database)
_REGISTER = """INSERT INTO cluster_instances (id, address, pg_pid, started_at, heartbeat_at)
    VALUES (%(id)s, %(address)s, %(pid)s, (extract(epoch from clock_timestamp()) * 1000)::bigint,
        (extract(epoch from clock_timestamp()) * 1000)::bigint)
    ON CONFLICT (id) DO UPDATE SET address = EXCLUDED.address, pg_pid = EXCLUDED.pg_pid,
        heartbeat_at = EXCLUDED.heartbeat_at"""
_FORGET_GONE = """DELETE FROM cluster_instances
    WHERE heartbeat_at < (extract(epoch from clock_timestamp()) * 1000)::bigint - 600000
    AND (pg_pid IS NULL OR pg_pid NOT IN (SELECT pid FROM pg_stat_activity))"""
_HEARTBEAT = """UPDATE cluster_instances
    SET heartbeat_at = (extract(epoch from clock_timestamp()) * 1000)::bigint, address = %s
    WHERE id = %s AND pg_pid = %s"""
_HOLDERS = """SELECT objid::bigint, pid FROM pg_locks WHERE locktype = 'advisory'
    AND objsubid = 2 AND granted AND classid = %s::oid
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
# an instance is connected while the server has its lock connection (a pid, named by it)
_INSTANCES = """SELECT i.id, i.address, i.pg_pid,
        (extract(epoch from clock_timestamp()) * 1000)::bigint - i.heartbeat_at,
        a.pid IS NOT NULL
    FROM cluster_instances i LEFT JOIN pg_stat_activity a ON a.pid = i.pg_pid
        AND a.application_name = left('tradercoin ' || i.id, 63)
    ORDER BY i.id"""
_RUNNING_AS = """SELECT i.pg_pid FROM cluster_instances i JOIN pg_stat_activity a
    ON a.pid = i.pg_pid AND a.application_name = left('tradercoin ' || i.id, 63)
    WHERE i.id = %s"""
_TERMINATE_WRITERS = """SELECT pg_terminate_backend(pid) FROM pg_locks
    WHERE locktype = 'advisory' AND objsubid = 2 AND granted AND classid = %s::oid
    AND objid = ANY(%s::int[]::oid[]) AND pid <> pg_backend_pid()
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
_OWNED_BY = sa.text(
    """SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2
    AND granted AND classid = CAST(:ns AS oid) AND pid = :pid
    AND objid = ANY(CAST(CAST(:users AS int[]) AS oid[]))
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"""
)
_SHARE_WRITES = sa.text(
    "SELECT pg_advisory_xact_lock_shared(:ns, u) FROM unnest(CAST(:users AS int[])) u"
)


class DuplicateInstance(StoreError):
    """Another running instance already uses this instance's id."""


def check_key(user_id: int) -> None:
    if not 0 < user_id <= MAX_KEY:
        raise ValueError(
            f"user id {user_id} does not fit the cluster's advisory lock keys (1..{MAX_KEY})"
        )


@dataclass(frozen=True, slots=True)
class Row:
    """One row of ``cluster_instances`` as a round reads it."""

    id: str
    address: str
    pid: int | None
    age_ms: int
    connected: bool


@dataclass(frozen=True)
class Round:
    """What one round learnt: who holds which user, the instances, and the users to own
    (with credentials; those with pending orders first)."""

    holders: dict[int, int]  # user -> pid of the connection holding it
    instances: list[Row]
    wanted: list[int]

    @functools.cached_property
    def users_by_pid(self) -> dict[int, list[int]]:
        """Each lock connection's users, in ascending order (worked out once per round)."""
        found: dict[int, list[int]] = {}
        for user_id, pid in sorted(self.holders.items()):
            found.setdefault(pid, []).append(user_id)
        return found


def conninfo(database_url: str) -> str:
    """A libpq connection string from tradercoin's SQLAlchemy URL (its options kept)."""
    return sa.engine.make_url(database_url).set(drivername="postgresql").render_as_string(False)


def connect(database_url: str, instance_id: str, lease: float) -> LockConnection:
    """Open the lock connection: autocommit, short keepalives both ways, and an idle timeout
    of one lease, so that the server ends the session (and frees its locks) when this
    instance stops talking (paused, partitioned, dead)."""
    import psycopg

    conn = psycopg.connect(
        conninfo(database_url),
        autocommit=True,
        application_name=f"tradercoin {instance_id}"[:63],
        connect_timeout=max(2, int(lease)),
        keepalives=1,
        keepalives_idle=2,
        keepalives_interval=1,
        keepalives_count=2,
    )
    try:
        lease_ms = int(lease * 1000)
        for name, value in (
            ("idle_session_timeout", lease_ms),
            ("tcp_keepalives_idle", 2),
            ("tcp_keepalives_interval", 1),
            ("tcp_keepalives_count", 2),
            ("tcp_user_timeout", lease_ms),
        ):
            conn.execute(f"SET {name} = {int(value)}")
        return LockConnection(conn)
    except BaseException:
        conn.close()
        raise


class LockConnection:
    """The instance's one lock connection (used by one worker thread at a time)."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        db, schema, pid = conn.execute(
            "SELECT current_database(), current_schema(), pg_backend_pid()"
        ).fetchone() or ("", "", 0)
        self.pid: int = pid
        self.ns = zlib.crc32(f"tradercoin {db}.{schema}".encode()) & 0x7FFF_FFFE

    def close(self) -> None:
        self.conn.close()

    def register(self, instance_id: str, address: str, *, first: bool) -> None:
        """Join: this instance's row, with this connection's pid (a pid the server gave to
        an earlier, dead instance's connection is cleared there). Rows of instances gone
        for ten minutes are deleted.

        Raises:
            DuplicateInstance: (``first`` join only) a running instance has this id.
        """
        c = self.conn
        if first and (running := c.execute(_RUNNING_AS, (instance_id,)).fetchone()):
            raise DuplicateInstance(
                f"another running instance already has the id {instance_id!r} (its lock "
                f"connection is pid {running[0]}); give each instance its own instance id"
            )
        with c.transaction():
            c.execute(
                "UPDATE cluster_instances SET pg_pid = NULL WHERE pg_pid = %s AND id <> %s",
                (self.pid, instance_id),
            )
            c.execute(_REGISTER, {"id": instance_id, "address": address, "pid": self.pid})
            c.execute(_FORGET_GONE)

    def leave(self, instance_id: str) -> None:
        """Say this instance left on purpose (its users were handed over, none is held by
        a lease still running), so the others claim them at once."""
        self.conn.execute(
            "UPDATE cluster_instances SET pg_pid = NULL WHERE id = %s AND pg_pid = %s",
            (instance_id, self.pid),
        )

    def round(self, instance_id: str, address: str) -> Round:
        """Heartbeat (proves the connection), then read the holders, instances and users."""
        import psycopg

        c = self.conn
        beat = c.execute(_HEARTBEAT, (address, instance_id, self.pid))
        if beat.rowcount != 1:
            raise psycopg.OperationalError(f"instance {instance_id}'s row was taken over")
        holders = {user: pid for user, pid in c.execute(_HOLDERS, (self.ns,))}
        rows = c.execute(_INSTANCES).fetchall()
        wanted = c.execute(
            """SELECT c.user_id FROM credentials c ORDER BY EXISTS (SELECT 1 FROM orders o
            WHERE o.user_id = c.user_id AND o.status IN ('pending', 'new', 'partially_filled'))
            DESC, c.user_id"""
        ).fetchall()
        return Round(holders, [Row(*r) for r in rows], [u for (u,) in wanted])

    def claim(self, users: list[int]) -> list[int]:
        """Try the ownership locks of ``users``; returns those taken, after the handshake:
        the write lock of each, exclusive for a moment, so that every write the previous
        owner began has finished (and none it begins later passes the fence)."""
        rows = self.conn.execute(
            "SELECT u, pg_try_advisory_lock(%s, u) FROM unnest(%s::int[]) AS u",
            (self.ns, users),
        ).fetchall()
        taken = sorted(u for u, ok in rows if ok)
        if taken:
            self.handshake(taken)
        return taken

    def handshake(self, users: list[int]) -> None:
        """Take and drop the exclusive write lock of ``users``. A write still holding it
        after :data:`HANDSHAKE_TIMEOUT_MS` belongs to an instance that lost them and is
        stuck (paused, partitioned): its backend is terminated (its write rolls back) and
        the handshake tried again."""
        import psycopg

        for attempt in (1, 2):
            try:
                with self.conn.transaction():
                    self.conn.execute(f"SET LOCAL lock_timeout = {HANDSHAKE_TIMEOUT_MS}")
                    self.conn.execute(
                        "SELECT pg_advisory_xact_lock(%s, u) FROM unnest(%s::int[]) AS u",
                        (self.ns + 1, users),
                    )
                return
            except psycopg.errors.LockNotAvailable:
                if attempt == 2:
                    raise
                self.conn.execute(_TERMINATE_WRITERS, (self.ns + 1, users))

    def unlock(self, user_id: int) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(%s, %s)", (self.ns, user_id))


def refused_writes(conn: sa.Connection, users: list[int], ns: int, pid: int | None) -> set[int]:
    """The write fence, inside a store write transaction: take the shared write lock of each
    of ``users`` (sorted), then return those whose ownership lock the lock connection ``pid``
    does not hold now. Held until commit, the shared lock keeps a new owner's handshake
    waiting until this write is done."""
    valid = [u for u in users if 0 < u <= MAX_KEY]
    if pid is None or not valid:
        return set(users)
    conn.execute(_SHARE_WRITES, {"ns": ns + 1, "users": valid})
    held = conn.execute(_OWNED_BY, {"ns": ns, "pid": pid, "users": valid})
    return set(users) - {u for (u,) in held}
