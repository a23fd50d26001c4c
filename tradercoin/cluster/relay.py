"""EventRelay: brings the events of users owned by other instances to this instance's sessions.

The owner's store transaction announces ``(user, seq)`` on PostgreSQL's ``tradercoin_events``
channel (:func:`tradercoin.store.events.notify_events`), delivered at commit. The relay
LISTENs on a dedicated psycopg connection driven from a worker thread, which hands the
payloads to trio in batches through a bounded channel. For a user with sessions here (WebSocket
tabs, or the ``GET /api/orders`` cache, which attaches as a session) that this instance does not
own, a reader reads the events after the sessions' oldest seq from the store and pushes them
(:func:`~tradercoin.actors.sessions.catch_up`; pushes are idempotent by seq, so each session
gets each event once, in order, whoever else pushed it). Users owned here are left to their
actor, which pushes what it commits.

Load: notifications are coalesced per user (a user waiting to be read is read once, up to the
newest seq announced meanwhile), at most one reader per user at a time, and ``readers`` users
are read at once. A user attaching a session holds the same per-user lock as its reader, so a
replay and a push never interleave.

Error handling: a lost LISTEN connection is re-opened with back-off (0.5 s doubling to 10 s);
once listening again, every user with sessions here is caught up from the store, since the
notifications of the meantime are lost. A failed store read is logged and retried a second
later.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import trio

from tradercoin.actors.sessions import (
    EventSource,
    SessionRegistry,
    Wire,
    attach_session,
    catch_up,
)
from tradercoin.cluster.directory import Directory
from tradercoin.store.errors import StoreError
from tradercoin.store.events import EVENTS_CHANNEL, parse_notification

__all__ = ["EventRelay", "conninfo"]

log = logging.getLogger(__name__)

BATCH = 512  # payloads handed to trio at once
LISTEN_WAIT = 1.0  # seconds the thread waits for a notification before checking for a stop
RETRY_READ = 1.0
_KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5}


class EventRelay:
    """Pushes other instances' committed events to this instance's sessions.

    Args:
        conninfo: a libpq connection string of the store's database (the LISTEN connection).
        store: where events are read.
        registry: this instance's sessions, by user.
        directory: who owns which user (users owned here are skipped).
        readers: users read at once.
        reconnect_min, reconnect_max: the back-off bounds of re-opening the connection.
    """

    def __init__(
        self,
        *,
        conninfo: str,
        store: EventSource,
        registry: SessionRegistry,
        directory: Directory,
        readers: int = 8,
        reconnect_min: float = 0.5,
        reconnect_max: float = 10.0,
    ) -> None:
        self._conninfo = conninfo
        self._store = store
        self._registry = registry
        self._directory = directory
        self._readers = readers
        self.backoff = (reconnect_min, reconnect_max)  # settable
        self._batches_send, self._batches = trio.open_memory_channel[list[str]](16)
        self._due: dict[int, int | None] = {}  # user -> newest seq announced (None: unknown)
        self._serving: dict[int, int | None] = {}  # users being read -> announced meanwhile
        self._wakeup = trio.Event()
        self._locks: dict[int, trio.Lock] = {}
        self._thread_limiter = trio.CapacityLimiter(1)
        self.listening = False
        self.notifications = 0
        self.reads = 0
        self.delivered = 0
        self.reconnects = 0
        self.caught_up = 0  # users caught up from the store after a reconnect
        self.read_failures = 0

    # ------------------------------------------------------------ running

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """LISTEN and serve until cancelled; ``started()`` once the first LISTEN is in place.

        Raises:
            psycopg.Error: the first connection fails (a bad URL or a server down at start).
        """
        listening = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                for _ in range(self._readers):
                    nursery.start_soon(self._reader)
                nursery.start_soon(self._take_batches)
                nursery.start_soon(self._listen_forever, listening)
                await listening.wait()
                task_status.started()
        finally:
            self._batches.close()  # a thread still handing a batch over gets an error, and ends

    async def _listen_forever(self, listening: trio.Event) -> None:
        failures = 0
        while True:
            try:
                await self._listen_once(listening)
            except psycopg.Error as error:
                if not listening.is_set():
                    raise
                log.warning("event relay: LISTEN connection lost (%s)", _one_line(error))
            failures = 1 if self.listening else failures + 1
            self.listening = False
            low, high = self.backoff
            await trio.sleep(min(high, low * 2 ** (failures - 1)))
            self.reconnects += 1

    async def _listen_once(self, listening: trio.Event) -> None:
        """One LISTEN connection, in a worker thread, until it fails."""
        stop = threading.Event()
        try:
            await trio.to_thread.run_sync(
                self._listen_thread,
                stop,
                trio.lowlevel.current_trio_token(),
                listening,
                limiter=self._thread_limiter,
                abandon_on_cancel=True,
            )
        finally:
            stop.set()  # an abandoned thread closes its connection within LISTEN_WAIT

    def _listen_thread(
        self, stop: threading.Event, token: trio.lowlevel.TrioToken, listening: trio.Event
    ) -> None:
        """Thread body: connect, LISTEN, then hand batches of payloads to trio until ``stop``
        (or the connection fails: the error goes back to trio)."""
        with psycopg.connect(
            self._conninfo, autocommit=True, connect_timeout=10, **_KEEPALIVE
        ) as conn:
            conn.execute(f"LISTEN {EVENTS_CHANNEL}")
            trio.from_thread.run_sync(self._listening, listening, trio_token=token)
            while not stop.is_set():
                batch = [n.payload for n in conn.notifies(timeout=LISTEN_WAIT, stop_after=1)]
                if not batch:
                    continue
                batch += [n.payload for n in conn.notifies(timeout=0, stop_after=BATCH)]
                trio.from_thread.run(self._batches_send.send, batch, trio_token=token)

    def _listening(self, listening: trio.Event) -> None:
        """On the trio thread, once LISTEN is in place: catch up (what was committed before
        it, or while the connection was down, was announced to nobody here)."""
        if listening.is_set():
            log.info("event relay: listening again; catching up %d users", self._catch_up_all())
        listening.set()
        self.listening = True

    def _catch_up_all(self) -> int:
        users = list(self._registry.users())
        self.caught_up += len(users)
        for user_id in users:
            self.announce(user_id, None)
        return len(users)

    async def _take_batches(self) -> None:
        async for batch in self._batches:
            for payload in batch:
                parsed = parse_notification(payload)
                if parsed is not None:
                    self.notifications += 1
                    self.announce(*parsed)

    # ------------------------------------------------------------ coalescing

    def announce(self, user_id: int, seq: int | None) -> None:
        """Note that ``user_id``'s events up to ``seq`` (``None``: up to the newest stored)
        may be missing here. Sync-coloured; a user without sessions here is ignored."""
        if user_id not in self._registry:
            return
        if user_id in self._serving:
            self._serving[user_id] = _newest(self._serving[user_id], seq)
            return
        self._due[user_id] = _newest(self._due.get(user_id, seq), seq)
        self._wakeup.set()

    async def _next_due(self) -> tuple[int, int | None]:
        while not self._due:
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        user_id = next(iter(self._due))
        seq = self._due.pop(user_id)
        self._serving[user_id] = 0  # nothing announced during the read yet
        return user_id, seq

    async def _reader(self) -> None:
        while True:
            user_id, seq = await self._next_due()
            failed = False
            try:
                await self._serve(user_id, seq)
            except StoreError as error:
                self.read_failures += 1
                failed = True
                log.warning("event relay: user %d not caught up: %s", user_id, error)
            again = self._serving.pop(user_id)
            if failed:
                await trio.sleep(RETRY_READ)
                again = None
            if again != 0:
                self.announce(user_id, again)

    async def _serve(self, user_id: int, seq: int | None) -> None:
        async with self._user_lock(user_id):
            sessions = self._registry.peek(user_id)
            if sessions is not None and len(sessions) and not self._directory.owns(user_id):
                self.reads += 1
                self.delivered += await catch_up(self._store, sessions, seq)
            self._registry.prune(user_id)

    @asynccontextmanager
    async def _user_lock(self, user_id: int) -> AsyncIterator[None]:
        lock = self._locks.setdefault(user_id, trio.Lock())
        try:
            async with lock:
                yield
        finally:
            if not lock.locked() and self._locks.get(user_id) is lock:
                del self._locks[user_id]

    # ------------------------------------------------------------ sessions

    async def attach(
        self, user_id: int, send: trio.MemorySendChannel[Wire], since: int | None
    ) -> int:
        """Attach ``send`` as a session of ``user_id`` here (replaying after ``since``, see
        :func:`~tradercoin.actors.sessions.attach_session`); returns its id. The registry owns
        ``send`` from now on."""
        sessions = self._registry.get(user_id)  # before the lock: announcements count now
        try:
            async with self._user_lock(user_id):
                return await attach_session(self._store, sessions, send, since)
        except BaseException:
            send.close()
            self._registry.prune(user_id)
            raise

    def detach(self, user_id: int, session_id: int) -> None:
        """Forget one session of ``user_id`` (no-op for an unknown one). Sync-coloured."""
        sessions = self._registry.peek(user_id)
        if sessions is not None:
            sessions.remove(session_id)
            self._registry.prune(user_id)

    def statistics(self) -> dict[str, Any]:
        return {
            "listening": self.listening,
            "notifications": self.notifications,
            "reads": self.reads,
            "delivered": self.delivered,
            "reconnects": self.reconnects,
            "caught_up": self.caught_up,
            "read_failures": self.read_failures,
            "due": len(self._due),
            **{f"registry_{k}": v for k, v in self._registry.statistics().items()},
        }


def conninfo(store: Any) -> str:
    """The libpq connection string of ``store``'s PostgreSQL database (password included:
    never log it)."""
    url = store.db.engine.url.set(drivername="postgresql")
    return str(url.render_as_string(hide_password=False))


def _newest(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else max(a, b)


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
