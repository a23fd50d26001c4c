"""A per-user cache of ``GET /api/orders`` answers, kept current by the user's actor.

Orders change only through a user's actor, and the actor pushes every change to the sessions
attached to it. So the cache attaches itself to the actor as one more session, *before* it
reads the store, and drops the user's cached pages whenever anything arrives on that channel
(or the channel ends: the actor lagged us out or restarted). No task is needed: the channel is
drained with ``receive_nowait`` on the next read.

A user without an actor (no exchange keys) has nobody to change their orders, so their pages
are cached with no channel, until an actor appears for them (the entry is then replaced by an
attached one) or :meth:`forget` is called when their keys change.

In a cluster the same holds for a user owned by another instance: ``actor`` is then a
:class:`~tradercoin.cluster.router.RemoteHandle`, whose attach joins this instance's relay,
which pushes the owner's committed events to the cache's channel as to any session.

Memory is bounded: at most ``max_users`` users (least recently read first out), each with at
most ``pages_per_user`` distinct queries, and a small channel each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from tradercoin.store import Store

__all__ = ["OrdersCache"]

Key = tuple[Any, ...]


@dataclass(eq=False)
class _UserEntry:
    receive: trio.MemoryReceiveChannel[dict[str, Any]] | None
    pages: dict[Key, bytes] = field(default_factory=dict)


class OrdersCache:
    """Rendered answers by ``(user_id, query)``; see the module docstring for validity."""

    def __init__(
        self,
        store: Store,
        *,
        max_users: int = 20_000,
        pages_per_user: int = 4,
        channel_size: int = 64,
    ) -> None:
        self._store = store
        self._users: dict[int, _UserEntry] = {}
        self._attaching: set[int] = set()
        self.max_users = max_users
        self.pages_per_user = pages_per_user
        self.channel_size = channel_size
        self.hits = 0
        self.misses = 0
        self.invalidations = 0

    async def get(
        self, user_id: int, key: Key, actor: Any, render: Callable[[], Awaitable[bytes]]
    ) -> bytes:
        """The cached answer for ``key``, or ``render()``'s (cached when still valid).

        ``actor`` is the user's actor handle (``None``: the user has none). Errors of
        ``render`` propagate; an actor that cannot attach just means no caching this time.
        """
        cached = self.peek(user_id, key, actor)
        if cached is not None:
            return cached
        entry = self._users.get(user_id)
        self.misses += 1
        if entry is None and actor is None:
            entry = self._static(user_id)
        elif entry is None and user_id not in self._attaching:
            # one attach per user at a time: the page asks for several lists at once, and
            # each stray attach would be one more session of the actor
            self._attaching.add(user_id)
            try:
                entry = await self._attach(user_id, actor)
            finally:
                self._attaching.discard(user_id)
        body = await render()
        if (
            entry is not None
            and self._users.get(user_id) is entry
            and self._drain(entry) == "quiet"
        ):
            if len(entry.pages) >= self.pages_per_user:
                del entry.pages[next(iter(entry.pages))]
            entry.pages[key] = body
        return body

    def peek(self, user_id: int, key: Key, actor: Any) -> bytes | None:
        """The cached answer if there is a valid one (counted as a hit), else ``None``.

        Sync-coloured. Leaves the user's entry ready for :meth:`get`: dropped if its channel
        ended, or if an actor started since it was cached without one.
        """
        entry = self._current(user_id)
        if entry is not None and entry.receive is None and actor is not None:
            self.forget(user_id)  # an actor started since: follow it from now on
            return None
        if entry is None or key not in entry.pages:
            return None
        self.hits += 1
        self._users[user_id] = self._users.pop(user_id)  # most recently used
        return entry.pages[key]

    def _current(self, user_id: int) -> _UserEntry | None:
        """The user's entry, its pages dropped if anything changed; ``None`` if it ended."""
        entry = self._users.get(user_id)
        if entry is None:
            return None
        state = self._drain(entry)
        if state == "ended":
            self.forget(user_id)
            return None
        if state == "changed":
            entry.pages.clear()
        return entry

    def _drain(self, entry: _UserEntry) -> str:
        """Empty the channel: ``"quiet"``, ``"changed"`` (messages came) or ``"ended"``."""
        state = "quiet"
        while entry.receive is not None:
            try:
                entry.receive.receive_nowait()
            except trio.WouldBlock:
                break
            except (trio.EndOfChannel, trio.ClosedResourceError):
                state = "ended"
                break
            state = "changed"
        if state != "quiet":
            self.invalidations += 1
        return state

    async def _attach(self, user_id: int, actor: Any) -> _UserEntry | None:
        send, receive = trio.open_memory_channel[dict[str, Any]](self.channel_size)
        try:
            await actor.attach(send, None)
        except Exception:  # the actor is parked or restarting: read uncached this time
            receive.close()
            return None
        return self._add(user_id, _UserEntry(receive))

    def _static(self, user_id: int) -> _UserEntry:
        return self._add(user_id, _UserEntry(None))

    def _add(self, user_id: int, entry: _UserEntry) -> _UserEntry:
        while len(self._users) >= self.max_users:
            self.forget(next(iter(self._users)))
        self._users[user_id] = entry
        return entry

    def forget(self, user_id: int) -> None:
        """Drop the user's pages (and leave their actor). Sync-coloured."""
        entry = self._users.pop(user_id, None)
        if entry is not None and entry.receive is not None:
            entry.receive.close()  # the actor sees BrokenResourceError and drops the session

    def forget_all(self) -> None:
        for user_id in list(self._users):
            self.forget(user_id)

    def statistics(self) -> dict[str, int]:
        return {
            "users": len(self._users),
            "hits": self.hits,
            "misses": self.misses,
            "invalidations": self.invalidations,
        }
