"""One actor's user stream through the process's :class:`~tradercoin.actors.hub.StreamHub`.

:func:`run_hub_stream` has the contract of :func:`tradercoin.actors.stream.run_user_stream`
(the actor's stream runner: ``await runner(client, user_id=..., sink=...)`` in the actor's
nursery, until cancelled), so wiring it is one line in the supervisor:
``functools.partial(run_hub_stream, hub=hub, governor=governor)``. It tells the actor, through
its mailbox:

* :class:`StreamChanged` ``healthy`` on the hub's StreamUp (the actor reconciles on the
  change), ``down`` with the reason on StreamDown;
* :class:`StreamUpdates` per StreamEvents;
* :class:`Wake` on StreamGap: one reconcile poll of this user only.

The actor keeps owning its listenKey: created with its own client (weight 1, through the
governor), PUT every ``keepalive_interval`` at a phase of its own (so 10,000 users spread
their keepalives evenly), recreated on -1125 or ``listenKeyExpired`` and swapped on the hub
with :meth:`StreamHub.replace` (nothing reconnects). It leaves the hub when cancelled.

Zombie keys: when the actor finds its key suspect (``renew``, see
:class:`~tradercoin.actors.parts.KeyRenewal`), the runner reports it to the hub
(:meth:`StreamHub.suspect`: counted), tells the actor ``down`` (it polls meanwhile), closes
the key (``DELETE``: a ``POST`` alone returns the same live key) and creates a new one, and
swaps it on the hub; the new key's StreamUp makes the actor reconcile what the swap hid.

Keepalive cost: one PUT (weight 1) per user per ``keepalive_interval`` (30 min), at the
phase ``(user_id * 0.618...) mod 1`` of it, so the PUTs of N users fall evenly, N/1800 a
second: 0.033 weight per user-minute, at 10,000 users 333 weight a minute (14 % of the
2,400 budget), about 5.6 PUTs a second.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import trio

from tradercoin.actors.governor import RateGovernor
from tradercoin.actors.hub import (
    LISTEN_KEY_EXPIRED,
    HubMessage,
    StreamAccount,
    StreamDown,
    StreamEvents,
    StreamGap,
    StreamHub,
    StreamUp,
)
from tradercoin.actors.messages import AccountChanged, Message, StreamChanged, StreamUpdates, Wake
from tradercoin.actors.parts import KeyRenewal
from tradercoin.actors.stream import INVALID_LISTEN_KEY, LISTEN_KEY_WEIGHT
from tradercoin.exchange.errors import ExchangeError
from tradercoin.exchange.protocol import ExchangeClient

__all__ = ["LISTEN_KEY_SUSPECT", "HubStreamOptions", "run_hub_stream"]

log = logging.getLogger(__name__)

_GOLDEN = (math.sqrt(5) - 1) / 2

#: the reason of the ``down`` the actor gets while its suspect key is being replaced
LISTEN_KEY_SUSPECT = "listenKey suspect: replacing it"


@dataclass(frozen=True, slots=True)
class HubStreamOptions:
    """Seconds, and the size of the channel from the hub."""

    keepalive_interval: float = 1800.0
    retry_min: float = 1.0
    retry_max: float = 60.0
    channel_size: int = 64


class _Key:
    """The actor's current listenKey and the upkeep of it."""

    def __init__(
        self,
        client: ExchangeClient,
        user_id: int,
        hub: StreamHub,
        governor: RateGovernor,
        options: HubStreamOptions,
    ) -> None:
        self.client, self.user_id, self.hub = client, user_id, hub
        self.governor, self.options = governor, options
        self.key = ""
        self.renew = trio.Event()
        self._swapping = trio.Lock()

    async def create(self) -> str:
        """A listenKey from the exchange, retried with back-off until it comes."""
        failures = 0
        while True:
            await self.governor.spend(LISTEN_KEY_WEIGHT)
            try:
                return await self.client.create_listen_key()
            except ExchangeError as exc:
                failures += 1
                delay = min(self.options.retry_max, self.options.retry_min * 2.0**failures)
                log.warning("user %d: cannot create a listenKey (%s)", self.user_id, exc)
                await trio.sleep(delay)

    async def keep_alive(self) -> None:
        """PUT the key every interval from a phase of this user's; recreate it when the
        exchange no longer knows it (-1125, or ``renew`` set on listenKeyExpired)."""
        interval = self.options.keepalive_interval
        phase = (self.user_id * _GOLDEN) % 1.0 * interval
        with trio.move_on_after(phase):
            await self.renew.wait()
        while True:
            if self.renew.is_set() or not await self._put():
                await self._replace()
            with trio.move_on_after(interval):
                await self.renew.wait()

    async def _put(self) -> bool:
        """``False`` when the exchange says the key does not exist."""
        await self.governor.spend(LISTEN_KEY_WEIGHT)
        try:
            await self.client.keepalive_listen_key(self.key)
        except ExchangeError as exc:
            if exc.code == INVALID_LISTEN_KEY:
                return False
            log.warning("user %d: listenKey keepalive failed (%s)", self.user_id, exc)
        return True

    async def replace_when_suspect(
        self, renew: KeyRenewal, sink: trio.MemorySendChannel[Message]
    ) -> None:
        """On each request of the actor: a new key for the suspect one (module doc)."""
        while True:
            await renew.wait()
            self.hub.suspect(self.key)
            await sink.send(StreamChanged("down", LISTEN_KEY_SUSPECT))
            if not await self._replace(close=True):
                log.warning("user %d: the suspect listenKey outlived DELETE", self.user_id)
                await trio.sleep(self.options.retry_max)
                renew.request()

    async def _replace(self, *, close: bool = False) -> bool:
        """A new key in place of the current one (closed first with ``close``); ``False``
        when the exchange gave the same key back."""
        async with self._swapping:
            self.renew = trio.Event()
            if close:
                await self.governor.spend(LISTEN_KEY_WEIGHT)
                try:
                    await self.client.close_listen_key(self.key)
                except ExchangeError as exc:  # unknown already: the POST makes a new one
                    log.info("user %d: closing the listenKey: %s", self.user_id, exc)
            new = await self.create()
            if new == self.key:
                return False
            self.hub.replace(self.key, new)
            self.key = new
            return True


async def run_hub_stream(
    client: ExchangeClient,
    *,
    user_id: int,
    sink: trio.MemorySendChannel[Message],
    hub: StreamHub,
    governor: RateGovernor,
    renew: KeyRenewal | None = None,
    options: HubStreamOptions | None = None,
) -> None:
    """Keep ``user_id``'s key on the hub and its news in the actor's mailbox (module doc).

    ``renew``: the actor's requests to replace a suspect key.

    Returns: runs until cancelled, then leaves the hub. Error handling: listenKey calls
    are retried (see :class:`HubStreamOptions`); nothing the exchange says ends it.
    """
    options = options or HubStreamOptions()
    key = _Key(client, user_id, hub, governor, options)
    send, receive = trio.open_memory_channel[HubMessage](options.channel_size)
    hub.announce()
    try:
        key.key = await key.create()
    except BaseException:
        hub.announce(-1)
        raise
    await hub.join(key.key, send, announced=True)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(key.keep_alive)
            if renew is not None:
                nursery.start_soon(key.replace_when_suspect, renew, sink)
            await _forward(receive, sink, key)
    finally:
        with trio.CancelScope(shield=True):
            await hub.leave(key.key)
        send.close()


async def _forward(
    receive: trio.MemoryReceiveChannel[HubMessage],
    sink: trio.MemorySendChannel[Message],
    key: _Key,
) -> None:
    """The hub's messages for the current key, as the actor's."""
    async for message in receive:
        if message.key != key.key:
            continue  # about a key already replaced
        match message:
            case StreamEvents(_, updates):
                await sink.send(StreamUpdates(updates))
            case StreamAccount(_, update):
                await sink.send(AccountChanged(update))
            case StreamUp():
                await sink.send(StreamChanged("healthy", "connected"))
            case StreamDown(_, reason):
                await sink.send(StreamChanged("down", reason))
                if reason == LISTEN_KEY_EXPIRED:
                    key.renew.set()
            case StreamGap(_, reason):
                log.info("user %d stream: %s; reconciling", key.user_id, reason)
                await sink.send(Wake())
