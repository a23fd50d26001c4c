"""The user-data stream of one actor: listenKey upkeep, connection upkeep, events to the actor.

:func:`run_user_stream` runs inside the actor's nursery for as long as the actor has usable
keys. It creates the listenKey, keeps it alive every 30 min, opens a connection with the
exchange reader (:class:`tradercoin.exchange.stream.UserStream`), and sends the actor:

* :class:`StreamChanged` ``healthy`` once connected, ``down`` (with the reason) after any drop,
  listenKey expiry or -1125, silence past the watchdog, or the rotation before 24 h;
* :class:`StreamUpdates` with every ``ORDER_TRADE_UPDATE`` (queued ones batched together).

It reconnects by itself with back-off. It never touches orders: merging is the actor's.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
from trio_websocket import open_websocket_url

from tradercoin.actors.governor import RateGovernor
from tradercoin.actors.messages import Message, StreamChanged, StreamUpdates
from tradercoin.exchange.errors import ExchangeError
from tradercoin.exchange.stream import (
    Connect,
    Connected,
    Disconnected,
    ListenKeyExpired,
    OrderUpdateEvent,
    Silence,
    StreamEvent,
    UserStream,
)

__all__ = ["run_user_stream"]

log = logging.getLogger(__name__)

LISTEN_KEY_WEIGHT = 1
INVALID_LISTEN_KEY = -1125


class _Connection:
    """One listenKey on one connection, until it ends; :attr:`reason` says why."""

    def __init__(self, client: Any, key: str, sink: trio.MemorySendChannel[Message]) -> None:
        self.client = client
        self.key = key
        self.sink = sink
        self.reason = "stream ended"

    async def keepalive(
        self, governor: RateGovernor, every: float, scope: trio.CancelScope
    ) -> None:
        """PUT the key every ``every`` seconds; on -1125 end the connection (recreate)."""
        while True:
            await trio.sleep(every)
            await governor.spend(LISTEN_KEY_WEIGHT)
            try:
                await self.client.keepalive_listen_key(self.key)
            except ExchangeError as exc:
                if exc.code == INVALID_LISTEN_KEY:
                    self.reason = "listenKey invalid (-1125)"
                    scope.cancel()
                    return
                log.warning("listenKey keepalive failed (next try in %.0fs): %s", every, exc)

    async def consume(
        self, events: trio.MemoryReceiveChannel[StreamEvent], watchdog: float
    ) -> None:
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
            elif await self._control(event, watchdog):
                return

    async def _control(self, event: StreamEvent, watchdog: float) -> bool:
        """Act on a non-update event; ``True`` when the connection is done for."""
        match event:
            case Connected():
                await self.sink.send(StreamChanged("healthy", "connected"))
            case ListenKeyExpired():
                self.reason = "listenKey expired"
                return True
            case Silence(seconds) if seconds >= watchdog:
                self.reason = f"silent for {seconds:.0f}s"
                return True
            case Disconnected(reason, code):
                self.reason = f"disconnected ({code} {reason})"
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


async def _connect_once(
    client: Any,
    sink: trio.MemorySendChannel[Message],
    ws_url: str,
    governor: RateGovernor,
    connect: Connect,
    options: dict[str, float],
) -> str:
    """Create the listenKey, run one connection until it ends; returns why it ended.

    Raises:
        ExchangeError: the key could not be created, or the connection not opened.
    """
    await governor.spend(LISTEN_KEY_WEIGHT)
    key = await client.create_listen_key()
    connection = _Connection(client, key, sink)
    send, receive = trio.open_memory_channel[StreamEvent](64)
    reader = UserStream(
        ws_url, [key], send, connect=connect, silence_after=options["silence_after"]
    )
    async with trio.open_nursery() as nursery:
        try:
            await nursery.start(reader.run)
        except ExchangeError as exc:  # caught here: the nursery would wrap it in a group
            return f"cannot connect: {exc}"
        nursery.start_soon(
            connection.keepalive, governor, options["keepalive_interval"], nursery.cancel_scope
        )
        with trio.move_on_after(options["rotate_after"]) as rotation, receive:
            await connection.consume(receive, options["watchdog"])
        if rotation.cancelled_caught:
            connection.reason = "rotated before the 24 h limit"
        nursery.cancel_scope.cancel()
    return connection.reason


async def run_user_stream(
    client: Any,
    *,
    user_id: int,
    sink: trio.MemorySendChannel[Message],
    ws_url: str,
    governor: RateGovernor,
    connect: Connect = open_websocket_url,
    keepalive_interval: float = 1800.0,
    rotate_after: float = 23.5 * 3600,
    silence_after: float = 60.0,
    watchdog: float = 600.0,
    retry_min: float = 1.0,
    retry_max: float = 60.0,
) -> None:
    """Keep ``user_id``'s stream up until cancelled (see the module doc).

    Returns: runs until cancelled. Error handling: connect failures and exchange errors on
    the listenKey are retried with back-off (``retry_min`` doubling to ``retry_max``).
    """
    options = {
        "keepalive_interval": keepalive_interval,
        "rotate_after": rotate_after,
        "silence_after": silence_after,
        "watchdog": watchdog,
    }
    failures = 0
    while True:
        began = trio.current_time()
        try:
            reason = await _connect_once(client, sink, ws_url, governor, connect, options)
        except ExchangeError as exc:
            reason = f"cannot connect: {exc}"
        log.info("user %d stream down: %s", user_id, reason)
        await sink.send(StreamChanged("down", reason))
        failures = 0 if trio.current_time() - began > retry_max else failures + 1
        if failures > 1:
            await trio.sleep(min(retry_max, retry_min * 2.0 ** (failures - 2)))
