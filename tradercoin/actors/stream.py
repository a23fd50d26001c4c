"""The user-data stream of one actor: listenKey upkeep, connection upkeep, events to the actor.

:func:`run_user_stream` runs inside the actor's nursery for as long as the actor has usable
keys. Two loops share the current listenKey:

* the **key loop** PUTs it every 30 min; a -1125 answer drops the key and ends the current
  connection, so the connection loop recreates it with POST;
* the **connection loop** creates the key when there is none, opens a connection with the
  exchange reader (:class:`tradercoin.exchange.stream.UserStream`) and forwards its events.

The actor is told :class:`StreamChanged` ``healthy`` once connected and ``down`` (with the
reason) after a disconnect, a listenKey expiry or -1125, or a failed connect; it then polls
at once and at the user's interval until the stream is back. Two endings are planned and
not reported as drops: the rotation before the exchange's 24 h limit, and the watchdog,
which rotates a connection silent for ``watchdog`` seconds (an idle user stream carries no
frames, only pings; a dead one looks the same, and what it may have lost is caught by the
reconcile poll). Order updates go to the actor as :class:`StreamUpdates`, queued ones
batched. The stream never touches orders: merging is the actor's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import trio
from trio_websocket import open_websocket_url

from tradercoin.actors.governor import RateGovernor
from tradercoin.actors.messages import AccountChanged, Message, StreamChanged, StreamUpdates
from tradercoin.actors.parts import KeyRenewal
from tradercoin.exchange.errors import ExchangeError
from tradercoin.exchange.stream import (
    AccountUpdateEvent,
    Connect,
    Connected,
    Disconnected,
    ListenKeyExpired,
    OrderUpdateEvent,
    Silence,
    StreamEvent,
    UserStream,
)

__all__ = ["StreamOptions", "run_user_stream"]

log = logging.getLogger(__name__)

LISTEN_KEY_WEIGHT = 1
INVALID_LISTEN_KEY = -1125


@dataclass(frozen=True, slots=True)
class StreamOptions:
    """Timings of the stream upkeep (seconds)."""

    keepalive_interval: float = 1800.0
    rotate_after: float = 23.5 * 3600
    silence_after: float = 60.0
    watchdog: float = 1800.0
    retry_min: float = 1.0
    retry_max: float = 60.0


class _UserStreamUpkeep:
    """The state the two loops share: the client, the current key, the current connection."""

    def __init__(
        self,
        client: Any,
        sink: trio.MemorySendChannel[Message],
        ws_url: str,
        governor: RateGovernor,
        connect: Connect,
        options: StreamOptions,
    ) -> None:
        self.client = client
        self.sink = sink
        self.ws_url = ws_url
        self.governor = governor
        self.connect = connect
        self.options = options
        self.key: str | None = None
        self.connection: trio.CancelScope | None = None
        self.reason = ""
        self.planned = False

    async def keep_key_alive(self) -> None:
        """Every ``keepalive_interval``: PUT the key; on -1125 forget it and reconnect."""
        while True:
            await trio.sleep(self.options.keepalive_interval)
            if self.key is None:
                continue
            await self.governor.spend(LISTEN_KEY_WEIGHT)
            try:
                await self.client.keepalive_listen_key(self.key)
            except ExchangeError as exc:
                if exc.code != INVALID_LISTEN_KEY:
                    log.warning("listenKey keepalive failed (retried in 30 min): %s", exc)
                    continue
                self._end(f"listenKey invalid ({INVALID_LISTEN_KEY})", planned=False)
                self.key = None
                if self.connection is not None:
                    self.connection.cancel()

    async def recreate_when_asked(self, renew: KeyRenewal) -> None:
        """The actor found the key suspect: close it (``DELETE``; a ``POST`` alone returns
        the same live key) and end the connection, so the next one ``POST``s a new key."""
        while True:
            await renew.wait()
            key, self.key = self.key, None
            if key is not None:
                await self.governor.spend(LISTEN_KEY_WEIGHT)
                try:
                    await self.client.close_listen_key(key)
                except ExchangeError as exc:
                    log.info("closing a suspect listenKey: %s", exc)
            self._end("listenKey suspect: recreated", planned=False)
            if self.connection is not None:
                self.connection.cancel()

    def _end(self, reason: str, *, planned: bool) -> None:
        self.reason, self.planned = reason, planned

    async def connect_once(self) -> None:
        """Create the key if needed and run one connection until it ends (see ``reason``).

        Raises:
            ExchangeError: the key could not be created.
        """
        if self.key is None:
            await self.governor.spend(LISTEN_KEY_WEIGHT)
            self.key = await self.client.create_listen_key()
        self._end("stream ended", planned=False)
        send, receive = trio.open_memory_channel[StreamEvent](64)
        reader = UserStream(
            self.ws_url, [self.key], send, connect=self.connect,
            silence_after=self.options.silence_after,
        )  # fmt: skip
        async with trio.open_nursery() as nursery:
            self.connection = nursery.cancel_scope
            try:
                await nursery.start(reader.run)
            except ExchangeError as exc:  # caught here: the nursery would wrap it in a group
                self._end(f"cannot connect: {exc}", planned=False)
                return
            with trio.move_on_after(self.options.rotate_after) as rotation, receive:
                await self._consume(receive)
            if rotation.cancelled_caught:
                self._end("rotated before the 24 h limit", planned=True)
            nursery.cancel_scope.cancel()
        self.connection = None

    async def _consume(self, events: trio.MemoryReceiveChannel[StreamEvent]) -> None:
        """Forward events to the actor until the connection ends (or the reader stops)."""
        held: StreamEvent | None = None
        while True:
            if held is None:
                try:
                    held = await events.receive()
                except trio.EndOfChannel:
                    return
            event, held = held, None
            if isinstance(event, OrderUpdateEvent):
                updates, held = _drain_updates(event, events)
                await self.sink.send(StreamUpdates(updates))
            elif await self._control(event):
                return

    async def _control(self, event: StreamEvent) -> bool:
        """Act on a non-update event; ``True`` when the connection is done for."""
        match event:
            case Connected():
                await self.sink.send(StreamChanged("healthy", "connected"))
            case AccountUpdateEvent(_, update):
                await self.sink.send(AccountChanged(update))
            case ListenKeyExpired():
                self._end("listenKey expired", planned=False)
                self.key = None
                return True
            case Silence(seconds) if seconds >= self.options.watchdog:
                self._end(f"silent for {seconds:.0f}s: rotated", planned=True)
                return True
            case Disconnected(reason, code):
                self._end(f"disconnected ({code} {reason})", planned=False)
                return True
        return False


def _drain_updates(
    first: OrderUpdateEvent, events: trio.MemoryReceiveChannel[StreamEvent]
) -> tuple[tuple[Any, ...], StreamEvent | None]:
    """``first`` plus the updates already queued behind it, and the first other event."""
    updates = [first.update]
    while True:
        try:
            event = events.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel):
            return tuple(updates), None
        if not isinstance(event, OrderUpdateEvent):
            return tuple(updates), event
        updates.append(event.update)


async def run_user_stream(
    client: Any,
    *,
    user_id: int,
    sink: trio.MemorySendChannel[Message],
    ws_url: str,
    governor: RateGovernor,
    connect: Connect = open_websocket_url,
    renew: KeyRenewal | None = None,
    options: StreamOptions | None = None,
) -> None:
    """Keep ``user_id``'s stream up until cancelled (see the module doc); ``renew``: the
    actor's requests to replace a suspect key.

    Returns: runs until cancelled. Error handling: failed connects and listenKey creations
    are retried with back-off (``retry_min`` doubling to ``retry_max``).
    """
    upkeep = _UserStreamUpkeep(client, sink, ws_url, governor, connect, options or StreamOptions())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(upkeep.keep_key_alive)
        if renew is not None:
            nursery.start_soon(upkeep.recreate_when_asked, renew)
        await _connection_loop(upkeep, user_id)


async def _connection_loop(upkeep: _UserStreamUpkeep, user_id: int) -> None:
    options = upkeep.options
    failures = 0
    while True:
        began = trio.current_time()
        try:
            await upkeep.connect_once()
        except ExchangeError as exc:
            upkeep._end(f"cannot create the listenKey: {exc}", planned=False)
        if upkeep.planned:
            log.info("user %d stream reconnecting: %s", user_id, upkeep.reason)
            continue
        log.info("user %d stream down: %s", user_id, upkeep.reason)
        await upkeep.sink.send(StreamChanged("down", upkeep.reason))
        failures = 0 if trio.current_time() - began > options.retry_max else failures + 1
        if failures > 1:
            await trio.sleep(min(options.retry_max, options.retry_min * 2.0 ** (failures - 2)))
