"""The engine and the thread hop: every SQL call runs in a worker thread.

:class:`Database` owns the engine and a :class:`trio.CapacityLimiter`. A connection is taken
inside the thread function, used, and returned to the pool before the thread function returns;
only plain data crosses back to trio. SQLite gets WAL with ``synchronous=FULL`` (every commit
is durable; the write batcher makes that cheap by committing many changes at once), a busy
timeout, foreign keys and
explicit ``BEGIN`` (``BEGIN IMMEDIATE`` for writes, so DDL is transactional and a writer never
fails on a lock upgrade). ``sqlite:///:memory:`` uses one shared connection (StaticPool) behind
a limiter of one, so the in-memory database works from any worker thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
import trio
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.pool import StaticPool

from tradercoin.store.errors import BadDatabaseURL, CommitUnknown, StoreError

__all__ = ["Database", "create_engine", "is_transient", "one_line"]

log = logging.getLogger(__name__)
T = TypeVar("T")


#: the thread hop: ``trio.to_thread.run_sync`` unless a test harness runs SQL in-thread
#: (:func:`tradercoin.testing.run_inline`, so the whole system runs under MockClock autojump)
class RunSync(Protocol):
    def __call__(
        self, fn: Callable[..., T], /, *args: Any, limiter: trio.CapacityLimiter | None = None
    ) -> Awaitable[T]: ...


SQLITE_BUSY_TIMEOUT_MS = 5000
SQLITE_CACHE_KIB = 16384  # per connection: the hot index pages of 1M orders stay in memory
MAX_CONNECTION_RETRIES = 22  # with backoff(): about 15 s, long enough for a server restart
FIX_URL = "use sqlite:///path/to.db, sqlite:///:memory: or postgresql+psycopg://user@host:5432/db"


def one_line(error: BaseException) -> str:
    """The first line of a driver error, without SQLAlchemy's statement and parameters."""
    inner = error.orig if isinstance(error, exc.DBAPIError) else error
    text = str(inner).strip().splitlines()
    return text[0] if text else type(inner).__name__


def _redact(url: str) -> str:
    """The URL without its user info (which may hold a password)."""
    return re.sub(r"//[^/@]*@", "//***@", url)


def _parse_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except (exc.ArgumentError, ValueError):
        raise BadDatabaseURL(f"database URL {_redact(url)!r} cannot be parsed; {FIX_URL}") from None
    if parsed.get_backend_name() == "postgres":  # the Heroku-style alias
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        shown = parsed.render_as_string(hide_password=True)
        raise BadDatabaseURL(f"database URL {shown!r} is not SQLite or PostgreSQL; {FIX_URL}")
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def is_memory(url: URL) -> bool:
    return url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:")


def create_engine(url: str) -> sa.Engine:
    """An engine for ``url`` with tradercoin's connection settings (no connection is made).

    Raises:
        StoreError: the URL is malformed or names another database.
    """
    parsed = _parse_url(url)
    if parsed.get_backend_name() == "postgresql":
        connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 10}
        try:
            return sa.create_engine(
                parsed, pool_size=8, max_overflow=4, pool_recycle=1800, connect_args=connect_args
            )
        except ImportError:
            raise BadDatabaseURL(
                "PostgreSQL needs the psycopg driver, which this installation lacks: install "
                "tradercoin's postgres extra (pip install 'tradercoin[postgres]'; `make setup` "
                "and `make test` install it, `make run` does not)"
            ) from None
    if is_memory(parsed):
        engine = sa.create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = sa.create_engine(
            parsed, pool_size=8, max_overflow=4, connect_args={"check_same_thread": False}
        )
    _configure_sqlite(engine, wal=not is_memory(parsed))
    return engine


def _configure_sqlite(engine: sa.Engine, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        if wal:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        immediate = conn.get_execution_options().get("tradercoin_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def is_transient(error: exc.DBAPIError) -> bool:
    """A lock, a serialization failure or a lost connection: worth trying again."""
    if isinstance(error, exc.OperationalError) and "locked" in str(error.orig).lower():
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    return (
        sqlstate in ("40001", "40P01") or bool(error.connection_invalidated) or _server_gone(error)
    )


def _server_gone(error: exc.DBAPIError) -> bool:
    """PostgreSQL is unreachable for now (restarting, shutting down, refusing connections):
    a connection failure without SQLSTATE, a connection exception (08xxx) or an operator
    intervention (57P01-57P03). SQLite's errors carry no ``sqlstate`` at all."""
    if not isinstance(error, exc.OperationalError) or not hasattr(error.orig, "sqlstate"):
        return False
    sqlstate: str | None = getattr(error.orig, "sqlstate", None)
    return sqlstate is None or sqlstate.startswith("08") or sqlstate in _OPERATOR_INTERVENTION


_OPERATOR_INTERVENTION = ("57P01", "57P02", "57P03")


def _is_lock(error: exc.DBAPIError) -> bool:
    return "locked" in str(error.orig).lower() or getattr(error.orig, "sqlstate", None) in (
        "40001",
        "40P01",
    )


class Database:
    """The engine, its limiter and the thread hop with retries.

    Resource handling: owns the engine; :meth:`dispose` closes its pool.
    """

    def __init__(
        self,
        url: str,
        *,
        limiter: trio.CapacityLimiter | None = None,
        run_sync: RunSync | None = None,
    ) -> None:
        self.engine = create_engine(url)
        self._run_sync: RunSync = run_sync or trio.to_thread.run_sync
        self._threads = run_sync is None  # real worker threads: a probe may abandon one
        self._probe_limiter = trio.CapacityLimiter(1)  # at most one probe hangs at a time
        self.dialect = self.engine.dialect.name
        self.url = self.engine.url.render_as_string(hide_password=True)
        size = 1 if is_memory(self.engine.url) else 6
        self.limiter = limiter or trio.CapacityLimiter(size)
        self.retries = 0

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in a worker thread on a pooled connection.

        Raises:
            StoreError: the database failed (one line, no SQL).
        """
        return await self._hop(self._run_read, fn, args)

    async def write(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(conn, *args)`` in its own transaction in a worker thread, retrying with
        back-off while the database is locked (never reported to the caller).

        Raises:
            sqlalchemy.exc.IntegrityError: a constraint refused the data (callers map it).
            StoreError: the database failed otherwise.
        """
        return await self._hop(self._run_write, fn, args)

    async def _hop(self, runner: Callable[..., T], fn: Callable[..., T], args: Any) -> T:
        attempt = 0
        while True:
            try:
                return await self._run_sync(runner, fn, args, limiter=self.limiter)
            except exc.IntegrityError:
                raise
            except exc.DBAPIError as error:
                attempt += 1
                if not self.should_retry(error, attempt):
                    raise StoreError(f"database {self.url} failed: {one_line(error)}") from None
            await trio.sleep(backoff(attempt))

    def should_retry(self, error: exc.DBAPIError, attempt: int) -> bool:
        """Locks are retried forever (callers bound it with a timeout), lost connections a
        few times."""
        if not is_transient(error):
            return False
        if not _is_lock(error) and attempt > MAX_CONNECTION_RETRIES:
            return False
        self.retries += 1
        log.debug("database busy (attempt %d): %s", attempt, one_line(error))
        return True

    def _run_read(self, fn: Callable[..., T], args: Any) -> T:
        with self.engine.connect() as conn:
            return fn(conn, *args)

    def _run_write(self, fn: Callable[..., T], args: Any) -> T:
        """One transaction. A failure before COMMIT rolls back (safe to retry); a failure of
        the COMMIT itself may or may not have committed, so it is never retried."""
        with self.engine.connect() as conn:
            conn.execution_options(tradercoin_write=True)
            transaction = conn.begin()
            result = fn(conn, *args)  # on failure, closing the connection rolls back
            try:
                transaction.commit()
            except exc.DBAPIError as error:
                raise CommitUnknown(
                    f"database {self.url}: the connection failed during COMMIT "
                    f"({one_line(error)}); the write may or may not be stored"
                ) from None
            return result

    def run_write_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """The thread body of :meth:`write`, for callers already in a worker thread."""
        return self._run_write(fn, args)

    async def check(self) -> None:
        """Connect once, so a bad host or path fails now with a clear line.

        Raises:
            StoreError: how to fix the URL or start the server.
        """
        try:
            await self._run_sync(self._ping, limiter=self.limiter)
        except exc.DBAPIError as error:
            raise StoreError(
                f"cannot connect to database {self.url}: {one_line(error)}; check that the "
                "server is running (or the directory exists) and TRADERCOIN_DATABASE_URL"
            ) from None

    async def probe(self) -> None:
        """One ``SELECT 1``, for readiness: unlike every other call, a caller's cancel
        returns at once, leaving the thread behind (a database that stopped answering holds
        it until its socket fails; the next probe waits for it, and is cancelled in turn).

        Raises:
            sqlalchemy.exc.DBAPIError: the database refused or failed.
        """
        if self._threads:
            await trio.to_thread.run_sync(
                self._ping, limiter=self._probe_limiter, abandon_on_cancel=True
            )
        else:
            await self._run_sync(self._ping, limiter=self.limiter)

    def _ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    async def dispose(self) -> None:
        await self._run_sync(self.engine.dispose, limiter=self.limiter)


def backoff(attempt: int) -> float:
    """5 ms doubling to at most 1 s."""
    return float(min(0.005 * 2 ** min(attempt - 1, 10), 1.0))
