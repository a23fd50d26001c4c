"""The stream hub's connections (see :mod:`tradercoin.actors.hub`, which is the public part).

A :class:`Slot` is one shared connection as the hub sees it: a set of up to
``keys_per_connection`` listenKeys that stays up across reconnects and rotations. A
:class:`Link` is one physical connection of a slot (the exchange reader,
:class:`~tradercoin.exchange.stream.UserStream` in multiplex mode, plus a control task).

* **Opening.** Every handshake first waits in the process's
  :class:`~tradercoin.actors.connbudget.ConnectionBudget`. The URL carries the first
  ``url_keys`` keys (short URLs: the handshake request stays a few KB); the rest, and any key
  added later, go in ``SUBSCRIBE`` requests of at most ``subscribe_batch`` keys, removed keys
  in ``UNSUBSCRIBE``. A link sends at most ``messages_per_second`` requests (the exchange
  closes a connection over 10 a second).
* **Confirmation.** A key is *confirmed* on a link when the handshake that named it succeeded
  or its ``SUBSCRIBE`` was answered without error; health (up, down, expired) follows the
  link that confirmed a key last (``Router.confirm``).
* **Rotation** (make before break): ``rotate_after`` plus a per-slot offset in
  ``[0, rotate_spread)`` after a link opened, the slot opens a new link for the same keys,
  waits until it confirmed them all (at most ``subscribe_timeout``) and ``overlap`` seconds
  more (what only the old one carried may still be on its way), then retires the old one:
  it routes what it had already read, then closes. While both are open, events come from
  both and each is routed once (:attr:`Slot.seen`), so the switch neither loses nor repeats
  an event, and no owner sees a drop.
* **Dead connections.** After ``silence_after`` seconds without a frame the link pings; no
  pong within ``pong_timeout`` closes it. A link that ends unplanned makes its keys down
  (``Router.link_ended``) and the slot reconnects at once (the budget paces it), backing off
  ``retry_min`` doubling to ``retry_max`` after failed handshakes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import trio

from tradercoin.actors.connbudget import ConnectionBudget
from tradercoin.exchange.account_data import AccountUpdate
from tradercoin.exchange.errors import ExchangeError, RateLimited
from tradercoin.exchange.stream import (
    AccountUpdateEvent,
    Connect,
    Connected,
    ControlReply,
    Disconnected,
    ListenKeyExpired,
    Malformed,
    OrderUpdateEvent,
    Silence,
    StreamEvent,
    UserStream,
)

__all__ = ["HubOptions", "Link", "Router", "Slot"]

log = logging.getLogger(__name__)

_GOLDEN = 0.6180339887498949


@dataclass(frozen=True, slots=True)
class HubOptions:
    """Sizes and timings of the hub's connections (seconds)."""

    keys_per_connection: int = 200
    url_keys: int = 50
    subscribe_batch: int = 100
    messages_per_second: float = 4.0
    rotate_after: float = 22 * 3600.0
    rotate_spread: float = 3600.0
    subscribe_timeout: float = 30.0
    overlap: float = 5.0
    silence_after: float = 60.0
    pong_timeout: float = 30.0
    retry_min: float = 1.0
    retry_max: float = 60.0
    events_buffer: int = 1024

    def __post_init__(self) -> None:
        if self.keys_per_connection < 1 or self.url_keys < 1 or self.subscribe_batch < 1:
            raise ValueError("keys_per_connection, url_keys and subscribe_batch must be >= 1")
        if not 0 < self.messages_per_second <= 10:
            raise ValueError("messages_per_second must be in (0, 10]: the exchange closes above")


class Router(Protocol):
    """What a link asks of the hub."""

    options: HubOptions
    budget: ConnectionBudget
    ws_base: str
    connect: Connect

    def confirm(self, link: Link, keys: Iterable[str]) -> None: ...
    def route(self, link: Link, updates: dict[str, list[OrderUpdateEvent]]) -> None: ...
    def account(self, link: Link, key: str, update: AccountUpdate) -> None: ...
    def expired(self, link: Link, key: str) -> None: ...
    def gap(self, link: Link, key: str | None, reason: str) -> None: ...
    def link_ended(self, link: Link, reason: str) -> None: ...


class Slot:
    """One shared connection's keys, kept connected by :meth:`run` (see the module doc)."""

    def __init__(self, router: Router, ident: int) -> None:
        self.router = router
        self.ident = ident
        self.keys: set[str] = set()
        self.links: set[Link] = set()
        self.seen: set[OrderUpdateEvent] = set()  # routed while two links overlap
        self.scope = trio.CancelScope()
        self.rotations = 0
        self._link_ids = itertools.count(1)
        self._nursery: trio.Nursery | None = None
        offset = (ident * _GOLDEN) % 1.0 * router.options.rotate_spread
        self.rotate_every = router.options.rotate_after + offset

    def __repr__(self) -> str:
        return f"Slot({self.ident}, keys={len(self.keys)})"

    def add(self, key: str) -> None:
        self.keys.add(key)
        for link in self.links:
            link.want(key)

    def remove(self, key: str) -> None:
        self.keys.discard(key)
        for link in self.links:
            link.unwant(key)

    def close(self) -> None:
        """End the slot and its links (nobody is left on it)."""
        self.scope.cancel()

    async def run(self) -> None:
        """Keep a link up for the slot's keys until :meth:`close`.

        Returns: when closed. Error handling: refused handshakes pause the budget, other
        failures back off; nothing here raises but bugs.
        """
        with self.scope:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await self._keep_connected()

    async def _keep_connected(self) -> None:
        """Reconnect at once after a connection that lived, with back-off after one that
        failed or ended within ``retry_max`` (so a connection the exchange keeps closing
        does not spend the process's handshake budget)."""
        options = self.router.options
        failures = 0
        while True:
            began = trio.current_time()
            link = await self._connect()
            while link is not None:
                link = await self._serve(link)
            if trio.current_time() - began > options.retry_max:
                failures = 0
                continue
            failures += 1
            await trio.sleep(min(options.retry_max, options.retry_min * 2.0 ** (failures - 1)))

    async def _serve(self, link: Link) -> Link | None:
        """Wait until ``link`` ends (``None``) or is due for rotation (its successor)."""
        with trio.move_on_at(link.opened_at + self.rotate_every):
            await link.ended.wait()
            return None
        new = await self._connect()
        if new is None:
            link.opened_at = trio.current_time() - self.rotate_every + 60.0  # again in a minute
            return link
        with trio.move_on_after(self.router.options.subscribe_timeout):
            await new.settled.wait()
        with trio.move_on_after(self.router.options.overlap):
            await link.ended.wait()  # what the old one read before the switch still arrives
        self.rotations += 1
        link.retire()
        return new

    async def _connect(self) -> Link | None:
        """One handshake under the budget; the started link, or ``None`` when it failed."""
        assert self._nursery is not None
        await self.router.budget.acquire()
        link = Link(self, next(self._link_ids))
        error: ExchangeError | None = await self._nursery.start(link.run)
        if error is None:
            return link
        if isinstance(error, RateLimited) and error.status == 418:
            self.router.budget.banned(error.retry_after)
        elif isinstance(error, RateLimited):
            self.router.budget.refused(error.retry_after)
        log.warning("stream hub: connection %d cannot connect: %s", self.ident, error)
        return None


class Link:
    """One physical connection of a slot (see the module doc)."""

    def __init__(self, slot: Slot, ident: int) -> None:
        self.slot = slot
        self.router = slot.router
        self.ident = ident
        self.confirmed: set[str] = set()
        self.opened_at = trio.current_time()
        self.ended = trio.Event()
        self.settled = trio.Event()
        self.scope = trio.CancelScope()
        self._to_add: set[str] = set()
        self._to_remove: set[str] = set()
        self._requests: dict[int, tuple[str, frozenset[str]]] = {}
        self._request_ids = itertools.count(1)
        self._dirty = trio.Event()
        self._reason = "closed"
        self._planned = False
        self._retiring = False
        self._pinging = False
        self._stream: UserStream | None = None
        self._receive: trio.MemoryReceiveChannel[StreamEvent] | None = None

    def __repr__(self) -> str:
        return f"Link({self.slot.ident}.{self.ident}, confirmed={len(self.confirmed)})"

    def want(self, key: str) -> None:
        self._to_remove.discard(key)
        if key not in self.confirmed:
            self._to_add.add(key)
            self._dirty.set()

    def unwant(self, key: str) -> None:
        self._to_add.discard(key)
        asked = any(key in keys for _, keys in self._requests.values())
        if key in self.confirmed or asked:
            self.confirmed.discard(key)
            self._to_remove.add(key)
            self._dirty.set()

    def close(self, reason: str, *, planned: bool) -> None:
        self._reason, self._planned = reason, planned
        self.scope.cancel()

    def retire(self) -> None:
        """Close after routing what was already read (its successor carries the keys)."""
        self._reason, self._planned, self._retiring = "rotated before the 24 h limit", True, True
        if self._receive is None or self._receive.statistics().current_buffer_used == 0:
            self.scope.cancel()

    async def run(
        self, *, task_status: trio.TaskStatus[ExchangeError | None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Open the connection and report ``None`` through ``task_status`` (or the error,
        then return); then read and route until it ends, and tell the router why."""
        keys = sorted(self.slot.keys)[: self.router.options.url_keys]
        send, receive = trio.open_memory_channel[StreamEvent](self.router.options.events_buffer)
        self._receive = receive
        self._stream = stream = UserStream(
            self.router.ws_base, keys, send, connect=self.router.connect,
            silence_after=self.router.options.silence_after, multiplex=True,
        )  # fmt: skip
        try:
            with self.scope, receive:
                async with trio.open_nursery() as nursery:
                    try:
                        await nursery.start(stream.run)
                    except ExchangeError as exc:  # caught here: the nursery would wrap it
                        task_status.started(exc)
                        return
                    self.slot.links.add(self)
                    task_status.started(None)
                    nursery.start_soon(self._control)
                    await self._consume(receive, nursery)
                    nursery.cancel_scope.cancel()
        finally:
            self.slot.links.discard(self)
            if len(self.slot.links) <= 1:
                self.slot.seen.clear()
            self.ended.set()
        self._report_end()

    def _report_end(self) -> None:
        if not self._planned:
            log.info("stream hub: connection %r ended: %s", self, self._reason)
        self.router.link_ended(self, self._reason)

    async def _consume(
        self, receive: trio.MemoryReceiveChannel[StreamEvent], nursery: trio.Nursery
    ) -> None:
        """Route what the reader reports, queued events in one batch, until it ends."""
        async for event in receive:
            updates: dict[str, list[OrderUpdateEvent]] = {}
            for item in _drain(event, receive):
                if isinstance(item, OrderUpdateEvent):
                    updates.setdefault(item.listen_key, []).append(item)
                    continue
                if updates:
                    self.router.route(self, updates)
                    updates = {}
                if self._control_event(item, nursery):
                    return
            if updates:
                self.router.route(self, updates)
            if self._retiring:
                return

    def _control_event(self, event: StreamEvent, nursery: trio.Nursery) -> bool:
        """Act on a non-update event; ``True`` when the connection is done for."""
        match event:
            case Connected(keys):
                self._confirm(keys)
                for key in self.slot.keys - self.confirmed:
                    self.want(key)
            case ControlReply(request_id, error):
                self._answered(request_id, error)
            case AccountUpdateEvent(key, update):
                self.router.account(self, key, update)
            case ListenKeyExpired(key):
                self.router.expired(self, key)
            case Malformed(key, reason):
                self.router.gap(self, key, f"a malformed event was dropped ({reason})")
            case Silence():
                if not self._pinging:
                    self._pinging = True
                    nursery.start_soon(self._check_alive)
            case Disconnected(reason, code):
                self._reason = f"disconnected by the exchange ({code} {reason})"
                return True
        return False

    def _confirm(self, keys: Iterable[str]) -> None:
        wanted = [k for k in keys if k in self.slot.keys]
        self.confirmed.update(wanted)
        self.router.confirm(self, wanted)
        if self.slot.keys <= self.confirmed:
            self.settled.set()

    def _answered(self, request_id: int | str | None, error: str | None) -> None:
        request = self._requests.pop(request_id, None) if isinstance(request_id, int) else None
        if request is None:
            return
        method, keys = request
        if error is not None:
            log.warning("stream hub: %s refused on %r: %s", method, self, error)
            self.close(f"{method} refused: {error}", planned=False)
        elif method == "SUBSCRIBE":
            self._confirm(keys)

    async def _check_alive(self) -> None:
        """Ping a silent connection; no pong within ``pong_timeout`` closes it."""
        assert self._stream is not None
        with trio.move_on_after(self.router.options.pong_timeout) as waited:
            with contextlib.suppress(ExchangeError):
                await self._stream.ping()
        self._pinging = False
        if waited.cancelled_caught:
            self.close("no pong: the connection is dead", planned=False)

    async def _control(self) -> None:
        """Send pending (UN)SUBSCRIBE requests, paced under the exchange's message limit."""
        assert self._stream is not None
        spacing = 1.0 / self.router.options.messages_per_second
        while True:
            await self._dirty.wait()
            self._dirty = trio.Event()
            while request := self._next_request():
                try:
                    await self._stream.send_message(request)
                except ExchangeError:
                    return  # closing: the reader reports why
                await trio.sleep(spacing)

    def _next_request(self) -> str | None:
        batch_size = self.router.options.subscribe_batch
        for method, pending in (("UNSUBSCRIBE", self._to_remove), ("SUBSCRIBE", self._to_add)):
            if pending:
                batch = frozenset(itertools.islice(sorted(pending), batch_size))
                pending.difference_update(batch)
                request_id = next(self._request_ids)
                self._requests[request_id] = (method, batch)
                return json.dumps({"method": method, "params": sorted(batch), "id": request_id})
        return None


def _drain(
    first: StreamEvent, receive: trio.MemoryReceiveChannel[StreamEvent]
) -> Iterable[StreamEvent]:
    """``first`` and whatever is already queued behind it."""
    yield first
    while True:
        try:
            yield receive.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return
