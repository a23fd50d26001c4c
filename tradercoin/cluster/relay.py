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
newest seq announced meanwhile); the users waiting are read together, up to
:data:`BATCH_USERS` in one query, by ``readers`` readers, and a user is in at most one read at a
time. A user attaching a session holds the same per-user lock as a read of that user, so a
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
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import trio

from tradercoin.actors.parts import EVENTS_PAGE
from tradercoin.actors.sessions import EventSource, SessionRegistry, Wire, attach_session
from tradercoin.cluster.directory import Directory
from tradercoin.orders import OrderEvent
from tradercoin.store.errors import StoreError
from tradercoin.store.events import EVENTS_CHANNEL, parse_notification

__all__ = ["EventRelay", "conninfo"]

log = logging.getLogger(__name__)

BATCH = 512  # payloads handed to trio at once
BATCH_USERS = 256  # users read in one query
LISTEN_WAIT = 1.0  # seconds the thread waits for a notification before checking for a stop
RETRY_READ = 1.0
_KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5}


class RelayStore(EventSource, Protocol):
    """What the relay reads of :class:`tradercoin.store.Store`."""

    async def events_since_many(
        self, since: dict[int, int], limit: int = ...
    ) -> dict[int, list[OrderEvent]]: ...


class EventRelay:
    """Pushes other instances' committed events to this instance's sessions.

    Args:
        conninfo: a libpq connection string of the store's database (the LISTEN connection).
        store: where events are read.
        registry: this instance's sessions, by user.
        directory: who owns which user (users owned here are skipped).
        readers: reads (of up to :data:`BATCH_USERS` users each) at once.
        reconnect_min, reconnect_max: the back-off bounds of re-opening the connection.
    """

    def __init__(
        self,
        *,
        conninfo: str,
        store: RelayStore,
        registry: SessionRegistry,
        directory: Directory,
        readers: int = 2,
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
        self.users_read = 0
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
        import psycopg

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
        import psycopg

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
        users = [u for u in self._registry.users() if not self._directory.owns(u)]
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
        may be missing here. Sync-coloured; a user without sessions here, or owned here (the
        actor pushes what it commits), is ignored."""
        if user_id not in self._registry or self._directory.owns(user_id):
            return
        if user_id in self._serving:
            self._serving[user_id] = _newest(self._serving[user_id], seq)
            return
        self._due[user_id] = _newest(self._due.get(user_id, seq), seq)
        self._wakeup.set()

    async def _next_due(self) -> dict[int, int | None]:
        """The users due now (up to :data:`BATCH_USERS`), each with its newest seq announced;
        they are being served until :meth:`_reader` lets go of them."""
        while not self._due:
            self._wakeup = trio.Event()
            await self._wakeup.wait()
        batch: dict[int, int | None] = {}
        while self._due and len(batch) < BATCH_USERS:
            user_id = next(iter(self._due))
            batch[user_id] = self._due.pop(user_id)
            self._serving[user_id] = 0  # nothing announced during the read yet
        return batch

    async def _reader(self) -> None:
        while True:
            batch = await self._next_due()
            failed = False
            try:
                await self._serve(batch)
            except StoreError as error:
                self.read_failures += 1
                failed = True
                log.warning("event relay: %d users not caught up: %s", len(batch), error)
                await trio.sleep(RETRY_READ)
            for user_id in batch:
                again = None if failed else self._serving[user_id]
                del self._serving[user_id]
                if again != 0:
                    self.announce(user_id, again)

    async def _serve(self, batch: dict[int, int | None]) -> None:
        """Read the batch's users' missing events in one query and push them."""
        async with AsyncExitStack() as stack:
            for user_id in sorted(batch):
                await stack.enter_async_context(self._user_lock(user_id))
            since = {u: s for u, seq in batch.items() if (s := self._read_from(u, seq)) is not None}
            if not since:
                return
            self.reads += 1
            self.users_read += len(since)
            found = await self._store.events_since_many(since, EVENTS_PAGE)
            for user_id, events in found.items():
                sessions = self._registry.peek(user_id)
                if sessions is not None:
                    self.delivered += sessions.push(events)
                if len(events) == EVENTS_PAGE:
                    self._serving[user_id] = None  # maybe more: read again after this
                self._registry.prune(user_id)

    def _read_from(self, user_id: int, seq: int | None) -> int | None:
        """The seq after which ``user_id``'s events are to be read, or ``None`` when there is
        nothing to read for them here (no session, owned here, or nothing new)."""
        sessions = self._registry.peek(user_id)
        oldest = None if sessions is None else sessions.oldest_seq()
        if oldest is None or self._directory.owns(user_id):
            self._registry.prune(user_id)
            return None
        if seq is None:
            return oldest
        if seq <= oldest:
            return None
        return max(oldest, seq - EVENTS_PAGE)  # a session further behind gets a resync

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
            "users_read": self.users_read,
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
