"""StreamHub: one per process; carries every user's listenKey on a few shared connections.

Binance allows 300 WebSocket handshakes per 5 minutes per IP and up to 1024 streams on one
connection (reference §5, §6), so one connection per user cannot scale past a few hundred
users. The hub puts up to ``keys_per_connection`` (200) listenKeys on each
``/private/stream`` connection, opens connections paced under the process-wide
:class:`~tradercoin.actors.connbudget.ConnectionBudget`, routes each event to the owner of
its key, and tells each owner when its stream is up or down. Connections, rotation and dead
connection detection are in :mod:`tradercoin.actors.hublink`.

Messages, hub -> owner (on the bounded channel the owner registered; never blocking):

* :class:`StreamUp` ``(key)``: events of ``key`` flow from now on. Anything before may have
  been missed: **reconcile** (one poll of the user's pending orders) on every StreamUp.
* :class:`StreamDown` ``(key, reason)``: the connection carrying ``key`` ended unplanned, or
  the exchange said the key expired (``listenKeyExpired``). Poll at the user's interval until
  the next StreamUp. After an expiry the hub waits for the owner's new key (:meth:`replace`).
* :class:`StreamEvents` ``(key, updates)``: ``ORDER_TRADE_UPDATE`` events in exchange order,
  as :class:`~tradercoin.orders.ExchangeUpdate` (what ``StreamUpdates`` carries today);
  during a rotation's few seconds of overlap, events read by the old and the new connection
  may interleave (each is delivered once; the merge orders them).
* :class:`StreamGap` ``(key, reason)``: events of ``key`` were lost while the stream stays up
  (a malformed frame, or the owner's channel was full): **reconcile**.

An owner whose channel is full is never waited for: its events are dropped and counted, and
once its channel has room it gets the latest health message and a StreamGap. An owner whose
channel is closed is taken off the hub.

Joining and leaving: :meth:`StreamHub.join` puts a key on a connection with room (the
fullest, so connections stay few) with one ``SUBSCRIBE``, and :meth:`StreamHub.leave` takes it
off with one ``UNSUBSCRIBE``: neither reconnects anything, so **the window for other users is
zero**. The only key whose events a join can hide is the joining key itself (between its
creation and the ``SUBSCRIBE`` answer), returned as :attr:`Subscription.hidden`; its owner
reconciles it on StreamUp. A connection that loses all its keys is closed; nothing that
others use is.

How an actor uses it. :func:`tradercoin.actors.hubstream.run_hub_stream` does all of the
following and has the contract of today's stream runner (``await runner(client, user_id=...,
sink=...)`` in the actor's nursery), so the wiring, after the actor's reshape, is:

1. ``service.py`` builds one ``ConnectionBudget`` and one ``StreamHub(ws_base, budget=...,
   connect=...)`` beside the ``RateGovernor`` and starts ``await nursery.start(hub.run)``
   before the supervisor; the supervisor's stream runner becomes
   ``functools.partial(run_hub_stream, hub=hub, governor=governor)`` instead of
   ``run_user_stream`` (the per-user connection, kept for the benchmark's comparison).
2. The actor keeps owning its key: it creates it (``POST /fapi/v1/listenKey``, weight 1,
   through the governor) with its own credentials, PUTs it every 30 min at a phase of its own
   (keepalives spread evenly), and on -1125 or a :class:`StreamDown` whose reason is
   :data:`LISTEN_KEY_EXPIRED` creates a new one and calls ``hub.replace(old, new)``.
3. It opens a channel ``send, receive = trio.open_memory_channel[HubMessage](64)``, calls
   ``await hub.join(key, send)``, and forwards what ``receive`` brings into the mailbox:
   StreamEvents -> ``StreamUpdates(updates)``; StreamUp -> ``StreamChanged("healthy")`` (the
   actor reconciles on the change); StreamDown -> ``StreamChanged("down", reason)``;
   StreamGap -> ``Wake()`` (a reconcile poll of that user only).
4. When cancelled it calls ``await hub.leave(key)`` (shielded) and closes ``send``. A
   restarted actor joins with its key again (POST returns the same live key): the hub moves
   the key to the new channel and, if the stream is up, says StreamUp at once.
5. The per-user silence watchdog goes: the hub pings a silent shared connection, and a dead
   key is found by evidence (a reconcile that finds a change the stream never delivered: the
   actor asks its runner to recreate the key, which calls :meth:`StreamHub.suspect`, then
   ``DELETE`` + ``POST`` and ``replace``).

Coverage: an owner calls :meth:`StreamHub.announce` before it asks the exchange for a key
and joins with ``announced=True``; the first time no announced owner is left and every
joined key is confirmed, the hub records the time since its start
(:attr:`HubStatistics.coverage_seconds`, the time to full stream coverage at start-up).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

import trio
from trio_websocket import open_websocket_url

from tradercoin.actors.connbudget import ConnectionBudget
from tradercoin.actors.hublink import HubOptions, Link, Slot
from tradercoin.exchange.account_data import AccountUpdate
from tradercoin.exchange.stream import Connect, OrderUpdateEvent
from tradercoin.orders import ExchangeUpdate

__all__ = [
    "LISTEN_KEY_EXPIRED",
    "HubMessage",
    "HubOptions",
    "HubStatistics",
    "StreamAccount",
    "StreamDown",
    "StreamEvents",
    "StreamGap",
    "StreamHub",
    "StreamUp",
    "Subscription",
]

log = logging.getLogger(__name__)

#: the reason of the StreamDown that says the exchange expired the key (recreate it)
LISTEN_KEY_EXPIRED = "listenKey expired"

# --- hub -> owner ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreamUp:
    key: str


@dataclass(frozen=True, slots=True)
class StreamDown:
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class StreamGap:
    key: str
    reason: str


@dataclass(frozen=True, slots=True)
class StreamEvents:
    key: str
    updates: tuple[ExchangeUpdate, ...]


@dataclass(frozen=True, slots=True)
class StreamAccount:
    """An ``ACCOUNT_UPDATE`` of the key's account (balances and positions after a fill)."""

    key: str
    update: AccountUpdate


HubMessage: TypeAlias = StreamUp | StreamDown | StreamGap | StreamEvents | StreamAccount

# --- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscription:
    """Where a key went: its connection, and the keys whose events the change could have
    hidden (reconcile them on their StreamUp)."""

    key: str
    connection: int
    hidden: frozenset[str]


@dataclass(frozen=True, slots=True)
class HubStatistics:
    connections: int  # open exchange connections
    keys: int
    keys_down: int  # joined keys not confirmed on any open connection
    keys_per_connection: tuple[int, ...]  # per shared connection, largest first
    attempts_in_window: int
    attempts_total: int
    refusals: int
    bans: int
    events_routed: int
    events_dropped: int  # owner's channel full (each followed by a StreamGap)
    gaps: int
    rotations: int
    drops: int  # connections that ended unplanned
    suspect_keys: int  # found suspect by their owners, replacement not confirmed yet
    suspect_keys_total: int
    coverage_seconds: float | None  # from the hub's start to full coverage; None: not yet


@dataclass(eq=False, slots=True)
class _Sub:
    key: str
    owner: trio.MemorySendChannel[HubMessage]
    slot: Slot
    link: Link | None = None  # the link its events are routed from; None: down
    pending: HubMessage | None = None  # the latest health message the owner had no room for
    lost: int = 0  # events dropped for a full channel since the last StreamGap
    suspect: bool = False  # its owner found it deaf; cleared when its successor is confirmed


class StreamHub:
    """Shared user-stream connections for every actor of the process (see the module doc).

    Args:
        ws_base: the exchange's stream base (``wss://fstream.binance.com``; the simulator's).
        budget: the process's handshake budget.
        connect: opens a WebSocket (the simulator's ``open_websocket`` in-process).
        options: sizes and timings (:class:`HubOptions`).
    """

    def __init__(
        self,
        ws_base: str,
        *,
        budget: ConnectionBudget,
        connect: Connect = open_websocket_url,
        options: HubOptions | None = None,
    ) -> None:
        self.ws_base = ws_base
        self.budget = budget
        self.connect = connect
        self.options = options or HubOptions()
        self._subs: dict[str, _Sub] = {}
        self._slots: dict[int, Slot] = {}
        self._slot_ids = itertools.count(1)
        self._behind: set[_Sub] = set()
        self._behind_event = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._routed = self._dropped = self._gaps = self._drops = self._rotations = 0
        self._suspects_total = 0
        self._announced = 0  # owners getting a key to join with (see announce)
        self._started_at: float | None = None
        self._coverage: float | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve joins until cancelled; owns every connection task.

        Returns: runs until cancelled; connections close with it.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            self._started_at = trio.current_time()
            nursery.start_soon(self._catch_up_owners)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                self._nursery = None

    # --- owners' calls -------------------------------------------------------------------

    def announce(self, count: int = 1) -> None:
        """``count`` owners are getting a key and will :meth:`join` (or withdraw with a
        negative ``count``): until they have, the hub is not at full coverage."""
        self._announced = max(0, self._announced + count)

    async def join(
        self, key: str, owner: trio.MemorySendChannel[HubMessage], *, announced: bool = False
    ) -> Subscription:
        """Carry ``key`` and send what concerns it to ``owner``; returns at once.

        A key already joined moves to ``owner`` (a restarted actor); if its stream is up the
        owner gets StreamUp at once. ``announced``: the owner called :meth:`announce` before
        getting its key (this join ends that). Raises RuntimeError when the hub is not
        running.
        """
        if self._nursery is None:
            raise RuntimeError("the stream hub is not running")
        await trio.lowlevel.checkpoint()
        if announced:
            self.announce(-1)
        sub = self._subs.get(key)
        if sub is not None:
            sub.owner, sub.pending, sub.lost = owner, None, 0
            self._behind.discard(sub)
            if sub.link is not None:
                self._send(sub, StreamUp(key))
            return Subscription(key, sub.slot.ident, frozenset({key}))
        slot = self._slot_with_room()
        self._subs[key] = _Sub(key, owner, slot)
        slot.add(key)
        return Subscription(key, slot.ident, frozenset({key}))

    async def leave(self, key: str) -> None:
        """Stop carrying ``key`` (unknown keys are ignored); no message follows for it."""
        await trio.lowlevel.checkpoint()
        self._forget(key)

    def replace(self, old_key: str, new_key: str) -> Subscription:
        """Carry ``new_key`` for the owner of ``old_key`` on the same connection, and drop
        ``old_key``. Raises KeyError when ``old_key`` is not joined."""
        old = self._subs[old_key]
        if new_key == old_key:
            return Subscription(new_key, old.slot.ident, frozenset({new_key}))
        self._forget(new_key)  # a key joined elsewhere moves here
        self._subs[new_key] = _Sub(new_key, old.owner, old.slot, suspect=old.suspect)
        old.slot.add(new_key)
        self._forget(old_key)
        return Subscription(new_key, old.slot.ident, frozenset({new_key}))

    def suspect(self, key: str) -> None:
        """The owner of ``key`` found it deaf (a poll found a change its stream never
        delivered) and is replacing it: counted, and suspect until the replacement is
        confirmed on a connection. Unknown keys are ignored."""
        sub = self._subs.get(key)
        if sub is not None and not sub.suspect:
            sub.suspect = True
            self._suspects_total += 1

    def _slot_with_room(self) -> Slot:
        limit = self.options.keys_per_connection
        open_slots = [s for s in self._slots.values() if len(s.keys) < limit]
        if open_slots:
            return max(open_slots, key=lambda s: (len(s.keys), -s.ident))
        assert self._nursery is not None
        slot = Slot(self, next(self._slot_ids))
        self._slots[slot.ident] = slot
        self._nursery.start_soon(slot.run, name=f"stream hub connection {slot.ident}")
        return slot

    def _forget(self, key: str) -> None:
        sub = self._subs.pop(key, None)
        if sub is None:
            return
        self._behind.discard(sub)
        sub.slot.remove(key)
        if not sub.slot.keys:
            self._rotations += sub.slot.rotations
            del self._slots[sub.slot.ident]
            sub.slot.close()

    # --- what links report (the Router protocol) -----------------------------------------

    def confirm(self, link: Link, keys: Iterable[str]) -> None:
        for key in keys:
            sub = self._subs.get(key)
            if sub is None or sub.slot is not link.slot:
                continue
            was, sub.link = sub.link, link
            if was is None:
                sub.suspect = False
                self._send(sub, StreamUp(key))
        self._note_coverage()

    def _note_coverage(self) -> None:
        """Record, once, the time from the hub's start to full coverage: every owner that
        announced itself has joined and every joined key is confirmed on a connection."""
        if self._coverage is not None or self._announced or self._started_at is None:
            return
        if self._subs and all(sub.link is not None for sub in self._subs.values()):
            self._coverage = trio.current_time() - self._started_at
            log.info("stream hub: every key on a stream %.1fs after start", self._coverage)

    def route(self, link: Link, updates: dict[str, list[OrderUpdateEvent]]) -> None:
        """Events of up keys of ``link``'s connection; while two links overlap (a
        rotation), each event once, from whichever link read it first."""
        seen = link.slot.seen if len(link.slot.links) > 1 else None
        for key, events in updates.items():
            sub = self._subs.get(key)
            if sub is None or sub.link is None or sub.slot is not link.slot:
                continue
            if seen is not None:
                events = _first_sightings(events, seen)
            if events:
                self._routed += len(events)
                self._send(sub, StreamEvents(key, tuple(e.update for e in events)))

    def account(self, link: Link, key: str, update: AccountUpdate) -> None:
        """An account update of an up key of ``link``'s connection (a snapshot: during a
        rotation's overlap it may come twice, which changes nothing)."""
        sub = self._subs.get(key)
        if sub is not None and sub.link is not None and sub.slot is link.slot:
            self._send(sub, StreamAccount(key, update))

    def expired(self, link: Link, key: str) -> None:
        sub = self._subs.get(key)
        if sub is not None and sub.link is link:
            sub.link = None
            self._send(sub, StreamDown(key, LISTEN_KEY_EXPIRED))

    def gap(self, link: Link, key: str | None, reason: str) -> None:
        """Events were lost on ``link``: for ``key``, or for every key it carries."""
        keys = [key] if key is not None else [k for k, s in self._subs.items() if s.link is link]
        for each in keys:
            sub = self._subs.get(each)
            if sub is not None and sub.link is link:
                self._gaps += 1
                self._send(sub, StreamGap(each, reason))

    def link_ended(self, link: Link, reason: str) -> None:
        down = [sub for sub in self._subs.values() if sub.link is link]
        if down:
            self._drops += 1
        for sub in down:
            sub.link = None
            self._send(sub, StreamDown(sub.key, reason))

    # --- delivery ------------------------------------------------------------------------

    def _send(self, sub: _Sub, message: HubMessage) -> None:
        """Give ``message`` to the owner without waiting (see the module doc)."""
        if sub.pending is not None or sub.lost:
            self._hold(sub, message)
            return
        try:
            sub.owner.send_nowait(message)
        except trio.WouldBlock:
            self._hold(sub, message)
            self._behind.add(sub)
            self._behind_event.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log.info("stream hub: the owner of a key is gone; key dropped")
            self._forget(sub.key)

    def _hold(self, sub: _Sub, message: HubMessage) -> None:
        if isinstance(message, StreamEvents | StreamAccount):
            lost = len(message.updates) if isinstance(message, StreamEvents) else 1
            sub.lost += lost
            self._dropped += lost
        else:
            sub.pending = message

    async def _catch_up_owners(self) -> None:
        """Once a second, give owners that had no room their latest health message and a
        StreamGap for what they missed."""
        while True:
            await self._behind_event.wait()
            await trio.sleep(1.0)
            for sub in list(self._behind):
                if self._catch_up(sub):
                    self._behind.discard(sub)
            if not self._behind:
                self._behind_event = trio.Event()

    def _catch_up(self, sub: _Sub) -> bool:
        """``True`` once ``sub``'s owner got everything held for it (or is gone)."""
        pending: list[HubMessage] = [] if sub.pending is None else [sub.pending]
        if sub.lost:
            pending.append(StreamGap(sub.key, f"{sub.lost} events dropped: the channel was full"))
        for message in pending:
            try:
                sub.owner.send_nowait(message)
            except trio.WouldBlock:
                return False
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self._forget(sub.key)
                return True
            if message is sub.pending:
                sub.pending = None
            else:
                sub.lost, self._gaps = 0, self._gaps + 1
        return True

    def statistics(self) -> HubStatistics:
        budget = self.budget.statistics()
        slots = self._slots.values()
        return HubStatistics(
            connections=sum(len(s.links) for s in slots),
            keys=len(self._subs),
            keys_down=sum(1 for s in self._subs.values() if s.link is None),
            keys_per_connection=tuple(sorted((len(s.keys) for s in slots), reverse=True)),
            attempts_in_window=budget.attempts_in_window,
            attempts_total=budget.attempts_total,
            refusals=budget.refusals,
            bans=budget.bans,
            events_routed=self._routed,
            events_dropped=self._dropped,
            gaps=self._gaps,
            rotations=self._rotations + sum(s.rotations for s in slots),
            drops=self._drops,
            suspect_keys=sum(1 for s in self._subs.values() if s.suspect),
            suspect_keys_total=self._suspects_total,
            coverage_seconds=None if self._coverage is None else round(self._coverage, 3),
        )


def _first_sightings(
    events: list[OrderUpdateEvent], seen: set[OrderUpdateEvent]
) -> list[OrderUpdateEvent]:
    fresh = [e for e in events if e not in seen]
    seen.update(fresh)
    return fresh
