"""One user's attached sessions: bounded send channels written with ``send_nowait``.

The set belongs to the supervisor's slot for the user, not to an actor incarnation, so the
sessions stay attached while a crashed actor restarts; each session remembers the last
``seq`` it was given, which makes every push idempotent: an event is delivered to a session
at most once, in seq order, and a restarted actor catches sessions up from the store.

A session whose channel has only one free slot left gets ``{"type": "resync", "seq": N}`` in
that slot (N: the last seq it was given; reconnecting with ``since=N`` loses nothing), its
channel is closed and it is dropped. A session whose receiver went away is dropped silently.
One slow browser therefore never blocks the actor or another session.

The :class:`SessionRegistry` keeps each user's :class:`Sessions` for the whole process, apart
from any actor: the supervisor's handle of a user owned here takes them from it, and in a
cluster the relay (:mod:`tradercoin.cluster.relay`) feeds those of users owned elsewhere, so a
user's ownership can move between instances while their sessions stay attached.
:func:`attach_session` is the one way a session joins (replaying after ``since`` first), for
the actor and the relay alike.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from tradercoin.actors.parts import EVENTS_PAGE
from tradercoin.orders import OrderEvent, order_to_wire

__all__ = [
    "EventSource",
    "SessionRegistry",
    "SessionStatistics",
    "Sessions",
    "attach_session",
    "catch_up",
]

log = logging.getLogger(__name__)

Wire = dict[str, Any]


class _Session:
    __slots__ = ("last_seq", "send")

    def __init__(self, send: trio.MemorySendChannel[Wire], last_seq: int) -> None:
        self.send = send
        self.last_seq = last_seq


@dataclass(frozen=True, slots=True)
class SessionStatistics:
    sessions: int
    delivered: int
    dropped_slow: int
    dropped_gone: int


def update_message(event: OrderEvent) -> Wire:
    """The seed's ``order_update`` message, carrying the whole order."""
    return {"type": "order_update", "seq": event.seq, "data": order_to_wire(event.order)}


class Sessions:
    """The attached sessions of user ``user_id``.

    Resource handling: owns every send channel given to :meth:`add` and closes it when the
    session is removed or dropped, or in :meth:`close_all`.
    """

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id
        self._sessions: dict[int, _Session] = {}
        self._ids = itertools.count(1)
        self._delivered = 0
        self._dropped_slow = 0
        self._dropped_gone = 0

    def __len__(self) -> int:
        return len(self._sessions)

    def add(self, send: trio.MemorySendChannel[Wire], last_seq: int) -> int:
        """Register ``send`` as having seen everything up to ``last_seq``; returns its id.
        Sessions whose receiver went away since the last push are forgotten first (a tab
        that reconnects often would otherwise pile them up until the next event)."""
        for gone in [i for i, s in self._sessions.items() if _receiver_gone(s.send)]:
            self._dropped_gone += 1
            self.remove(gone)
        session_id = next(self._ids)
        self._sessions[session_id] = _Session(send, last_seq)
        return session_id

    def remove(self, session_id: int) -> bool:
        """Forget a session and close its channel; ``False`` if it was already gone."""
        session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.send.close()
        return True

    def oldest_seq(self) -> int | None:
        """The smallest ``last_seq`` among the sessions (where a catch-up must start)."""
        return min((s.last_seq for s in self._sessions.values()), default=None)

    def push(self, events: Iterable[OrderEvent]) -> int:
        """Offer ``events`` (seq order) to every session; returns the deliveries made."""
        events = list(events)
        before = self._delivered
        for session_id in list(self._sessions):
            self.deliver(session_id, events)
        return self._delivered - before

    def deliver(self, session_id: int, events: Iterable[OrderEvent]) -> None:
        """Offer ``events`` to one session, skipping those it already has. A session that
        would see a gap (it is further behind than ``events`` reach) is told to resync
        first: it re-fetches, and never takes a later change for the next one."""
        session = self._sessions.get(session_id)
        for event in events:
            if session is None:
                return
            if event.seq > session.last_seq + 1:
                self.resync(session_id, event.seq - 1)
                session = self._sessions.get(session_id)
                if session is None:
                    return
            if event.seq > session.last_seq:
                if not self._offer(session_id, session, update_message(event)):
                    return
                session.last_seq = event.seq

    def send_all(self, message: Wire) -> None:
        """Offer a message that has no seq (an alert) to every session."""
        for session_id, session in list(self._sessions.items()):
            self._offer(session_id, session, message)

    def resync(self, session_id: int, seq: int) -> None:
        """Tell one session it missed something (without dropping it) and move it to ``seq``."""
        session = self._sessions.get(session_id)
        if session is not None and self._offer(session_id, session, {"type": "resync", "seq": seq}):
            session.last_seq = seq

    def close_all(self) -> None:
        """Close every session's channel (shutdown, or the user's keys were removed)."""
        for session in self._sessions.values():
            session.send.close()
        self._sessions.clear()

    def statistics(self) -> SessionStatistics:
        return SessionStatistics(
            sessions=len(self._sessions),
            delivered=self._delivered,
            dropped_slow=self._dropped_slow,
            dropped_gone=self._dropped_gone,
        )

    def _offer(self, session_id: int, session: _Session, message: Wire) -> bool:
        """``send_nowait`` keeping one slot for a resync; drop the session when it lags."""
        try:
            if _room(session.send) > 1:
                session.send.send_nowait(message)
                self._delivered += 1
                return True
            session.send.send_nowait({"type": "resync", "seq": session.last_seq})
        except trio.WouldBlock:
            pass
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._dropped_gone += 1
            self._sessions.pop(session_id, None)
            session.send.close()
            return False
        self._dropped_slow += 1
        log.warning(
            "user %d session %d lags: dropped with resync at seq %d",
            self.user_id,
            session_id,
            session.last_seq,
        )
        self.remove(session_id)
        return False


class EventSource(Protocol):
    """What attaching and catching up read of :class:`tradercoin.store.Store`."""

    async def events_since(self, user_id: int, seq: int, limit: int = ...) -> list[OrderEvent]: ...
    async def latest_seq(self, user_id: int) -> int: ...


async def attach_session(
    store: EventSource, sessions: Sessions, send: trio.MemorySendChannel[Wire], since: int | None
) -> int:
    """Register ``send`` with ``sessions``; with ``since``, replay every event after it first.

    The replay is bounded by the session's channel: a session further behind than its
    channel holds, or behind what is still kept, gets a ``resync`` at the newest seq
    (re-fetch, then live) instead of a history loaded into memory. The caller makes sure
    nothing else pushes to ``sessions`` from a read older than this one meanwhile (the actor:
    one mailbox step; the relay: its per-user lock). Returns the session's id.
    """
    latest = await store.latest_seq(sessions.user_id)
    if since is None or since >= latest:
        return sessions.add(send, latest)
    session_id = sessions.add(send, since)
    room = send.statistics().max_buffer_size - 2  # one slot stays for a resync
    if latest - since > min(room, EVENTS_PAGE):
        sessions.resync(session_id, latest)
        return session_id
    events = await store.events_since(sessions.user_id, since, latest - since)
    if not events or events[0].seq != since + 1:
        sessions.resync(session_id, latest)
        return session_id
    sessions.deliver(session_id, events)
    return session_id


async def catch_up(store: EventSource, sessions: Sessions, latest: int | None = None) -> int:
    """Push what the sessions miss up to ``latest`` (read from the store if not given), one
    bounded page: a session further behind is told to resync. Returns the deliveries."""
    oldest = sessions.oldest_seq()
    if oldest is None:
        return 0
    if latest is None:
        latest = await store.latest_seq(sessions.user_id)
    if latest <= oldest:
        return 0
    start = max(oldest, latest - EVENTS_PAGE)
    return sessions.push(await store.events_since(sessions.user_id, start, EVENTS_PAGE))


class SessionRegistry:
    """Every user's :class:`Sessions` in this process, kept apart from the actors.

    An entry lives while an actor handle holds it (:meth:`hold`/:meth:`let_go`) or while it
    has sessions; an empty entry nobody holds is dropped by :meth:`prune`. Sync-coloured.
    """

    def __init__(self) -> None:
        self._users: dict[int, Sessions] = {}
        self._held: set[int] = set()

    def __contains__(self, user_id: int) -> bool:
        return user_id in self._users

    def get(self, user_id: int) -> Sessions:
        """The user's sessions, created empty if there were none."""
        sessions = self._users.get(user_id)
        if sessions is None:
            sessions = self._users[user_id] = Sessions(user_id)
        return sessions

    def peek(self, user_id: int) -> Sessions | None:
        return self._users.get(user_id)

    def hold(self, user_id: int) -> Sessions:
        """The user's sessions, kept even when empty until :meth:`let_go` (an actor's)."""
        self._held.add(user_id)
        return self.get(user_id)

    def let_go(self, user_id: int) -> None:
        self._held.discard(user_id)
        self.prune(user_id)

    def prune(self, user_id: int) -> None:
        """Forget the user's entry if it has no session and no actor holds it."""
        sessions = self._users.get(user_id)
        if sessions is not None and not len(sessions) and user_id not in self._held:
            del self._users[user_id]

    def users(self) -> Iterator[int]:
        """The users with at least one session (a snapshot: safe to prune meanwhile)."""
        return iter([u for u, s in self._users.items() if len(s)])

    def statistics(self) -> dict[str, int]:
        return {
            "users": len(self._users),
            "sessions": sum(len(s) for s in self._users.values()),
            "held": len(self._held),
        }


def _receiver_gone(send: trio.MemorySendChannel[Wire]) -> bool:
    return send.statistics().open_receive_channels == 0


def _room(send: trio.MemorySendChannel[Wire]) -> float:
    stats = send.statistics()
    return stats.max_buffer_size - stats.current_buffer_used + stats.tasks_waiting_receive
