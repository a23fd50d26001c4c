"""The user-data-stream reader: one WebSocket connection, one or many listenKeys, typed events.

One key connects to ``<ws base>/private/ws?listenKey=K`` (frames are the bare events); several
keys share ``<ws base>/private/stream?listenKey=K1&listenKey=K2...`` (frames are wrapped as
``{"stream": K, "data": {...}}``), so a few connections carry thousands of users.

:class:`UserStream` reads one connection and reports, through a bounded memory channel:

* :class:`Connected` once the handshake is done;
* :class:`OrderUpdateEvent` per ``ORDER_TRADE_UPDATE`` (the trade as a fill when there is one);
* :class:`ListenKeyExpired` (no more events for that key until it is recreated; the
  connection stays up);
* :class:`Silence` each time ``silence_after`` seconds pass with no message at all;
* :class:`Disconnected` when the server closes (e.g. the 24 h forced disconnect), then ``run``
  returns.

Pings are answered by trio-websocket. The reader hides no reconnect: the caller decides. Other
events (``ACCOUNT_UPDATE``, ``TRADE_LITE``, ...) and malformed frames are counted and dropped.

``multiplex=True`` is the shared-connection mode of the stream hub
(:mod:`tradercoin.actors.hub`): the URL is always ``/private/stream`` (wrapped frames), the
answers to ``SUBSCRIBE``/``UNSUBSCRIBE`` requests come as :class:`ControlReply`, a malformed
frame is reported as :class:`Malformed` (with the stream key when its wrapper names one, so
only that user need reconcile), and :meth:`UserStream.send_message` / :meth:`UserStream.ping`
act on the open connection.

Backpressure: a consumer that stops receiving stalls the reader at the full channel, then
trio-websocket stops reading the socket, so pings go unanswered and the server eventually
drops the connection (after 10 min on Binance): :class:`Disconnected`, never unbounded memory.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, TypeAlias
from urllib.parse import quote

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    WebSocketConnection,
    open_websocket_url,
)

from tradercoin.exchange import parsing, wsfix
from tradercoin.exchange.account_data import AccountUpdate, account_update
from tradercoin.exchange.errors import RateLimited, Unavailable
from tradercoin.orders import ExchangeUpdate

wsfix.install()  # a ping crossing a close must not crash a connection

__all__ = [
    "AccountUpdateEvent",
    "Connect",
    "Connected",
    "ControlReply",
    "Disconnected",
    "ListenKeyExpired",
    "Malformed",
    "OrderUpdateEvent",
    "Silence",
    "StreamEvent",
    "StreamStatistics",
    "UserStream",
    "parse_frame",
    "user_stream_url",
]

log = logging.getLogger(__name__)


# --- events, reader -> consumer -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connected:
    listen_keys: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class OrderUpdateEvent:
    listen_key: str
    update: ExchangeUpdate
    event_time: int


@dataclass(frozen=True, slots=True)
class AccountUpdateEvent:
    listen_key: str
    update: AccountUpdate


@dataclass(frozen=True, slots=True)
class ListenKeyExpired:
    listen_key: str
    event_time: int


@dataclass(frozen=True, slots=True)
class Silence:
    """No message for ``seconds`` (trio time) on a connection that is still open."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The server (or the network) closed the connection; ``code`` is the close code."""

    reason: str
    code: int | None


@dataclass(frozen=True, slots=True)
class ControlReply:
    """The answer to a request sent on the connection (multiplex mode); ``error`` is the
    exchange's message when it refused it."""

    request_id: int | str | None
    error: str | None


@dataclass(frozen=True, slots=True)
class Malformed:
    """A frame that could not be read (multiplex mode); ``listen_key`` when its wrapper
    named the stream it belongs to."""

    listen_key: str | None
    reason: str


StreamEvent: TypeAlias = (
    Connected
    | OrderUpdateEvent
    | AccountUpdateEvent
    | ListenKeyExpired
    | Silence
    | Disconnected
    | ControlReply
    | Malformed
)
Connect: TypeAlias = Callable[[str], AbstractAsyncContextManager[WebSocketConnection]]


def user_stream_url(ws_base: str, listen_keys: Sequence[str], *, multiplex: bool = False) -> str:
    """The routed private URL for one key (``/private/ws``) or several, or any number with
    ``multiplex`` (``/private/stream``).

    Raises:
        ValueError: no key given.
    """
    if not listen_keys:
        raise ValueError("at least one listenKey is needed")
    base = ws_base.rstrip("/")
    keys = "&".join(f"listenKey={quote(k, safe='')}" for k in listen_keys)
    route = "ws" if len(listen_keys) == 1 and not multiplex else "stream"
    return f"{base}/private/{route}?{keys}"


def parse_reply(message: str | bytes) -> ControlReply | None:
    """A request's answer (``{"result": ..., "id": n}`` or ``{"error": {...}, "id": n}``),
    else ``None``."""
    try:
        obj: Any = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict) or "id" not in obj or "e" in obj or "stream" in obj:
        return None
    if "error" in obj:
        error = obj["error"]
        return ControlReply(obj["id"], str(error.get("msg") if isinstance(error, dict) else error))
    return ControlReply(obj["id"], None) if "result" in obj else None


def frame_key(message: str | bytes) -> str | None:
    """The stream key a (possibly unreadable) wrapped frame names, if it names one."""
    try:
        obj: Any = json.loads(message)
    except (ValueError, RecursionError):
        return None
    key = obj.get("stream") if isinstance(obj, dict) else None
    return key if isinstance(key, str) else None


def parse_frame(message: str | bytes, default_key: str | None) -> StreamEvent | None:
    """One frame as an event; ``None`` for events we do not use.

    ``default_key`` names the key of unwrapped frames (the single-key route).

    Raises:
        parsing.PayloadError: the frame is not JSON or not of the documented shape.
    """
    try:
        obj: Any = json.loads(message)
    except ValueError:
        raise parsing.PayloadError("frame is not JSON") from None
    key = default_key
    if isinstance(obj, dict) and "stream" in obj and "data" in obj:
        key, obj = parsing.text(obj, "stream"), obj["data"]
    kind = parsing.text(obj, "e")
    if kind == "ORDER_TRADE_UPDATE":
        update = parsing.update_from_stream(obj)
        return OrderUpdateEvent(_key(key), update, parsing.integer(obj, "E"))
    if kind == "ACCOUNT_UPDATE":
        return AccountUpdateEvent(_key(key), account_update(obj))
    if kind == "listenKeyExpired":
        expired = parsing.text(obj, "listenKey") if "listenKey" in obj else _key(key)
        return ListenKeyExpired(expired, parsing.integer(obj, "E"))
    return None


def _key(key: str | None) -> str:
    if key is None:
        raise parsing.PayloadError("unwrapped frame on a multi-key connection")
    return key


@dataclass(frozen=True, slots=True)
class StreamStatistics:
    connected: bool
    messages: int
    order_updates: int
    ignored: int
    malformed: int
    silences: int


class UserStream:
    """Reads one user-data-stream connection into ``events`` (see the module doc).

    ``connect`` opens the WebSocket (default: trio-websocket's ``open_websocket_url``; the
    simulator's in-process ``sim.open_websocket`` has the same shape). ``run`` closes
    ``events`` when it returns: give it a ``clone()`` to share one channel between readers.
    """

    def __init__(
        self,
        ws_base: str,
        listen_keys: Sequence[str],
        events: trio.MemorySendChannel[StreamEvent],
        *,
        connect: Connect = open_websocket_url,
        silence_after: float = 60.0,
        multiplex: bool = False,
    ) -> None:
        self.listen_keys = tuple(listen_keys)
        self.url = user_stream_url(ws_base, self.listen_keys, multiplex=multiplex)
        self._multiplex = multiplex
        only_key = len(self.listen_keys) == 1 and not multiplex
        self._default_key = self.listen_keys[0] if only_key else None
        self._ws: WebSocketConnection | None = None
        self._events = events
        self._connect = connect
        self._silence_after = silence_after
        self._connected = False
        self._messages = self._order_updates = self._ignored = 0
        self._malformed = self._silences = 0

    def __repr__(self) -> str:
        return f"UserStream(keys={len(self.listen_keys)})"

    def statistics(self) -> StreamStatistics:
        return StreamStatistics(
            connected=self._connected,
            messages=self._messages,
            order_updates=self._order_updates,
            ignored=self._ignored,
            malformed=self._malformed,
            silences=self._silences,
        )

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect, report :class:`Connected`, call ``started()``, then read until closed.

        Returns: after :class:`Disconnected` was sent, or quietly when the consumer closed
        its end of the channel. Cancellation closes the connection.

        Raises:
            Unavailable: the connection could not be opened (before ``started()``).
        """
        async with self._events:
            try:
                async with self._open() as ws:
                    self._connected, self._ws = True, ws
                    task_status.started()
                    # Caught here, inside connect(): its nursery would wrap it in a group.
                    with contextlib.suppress(trio.BrokenResourceError):
                        await self._events.send(Connected(self.listen_keys))
                        await self._read(ws)
            finally:
                self._connected, self._ws = False, None

    async def send_message(self, text: str) -> None:
        """Send one text message on the open connection.

        Raises:
            Unavailable: not connected, or the connection closed meanwhile.
        """
        try:
            await self._open_ws().send_message(text)
        except ConnectionClosed:
            raise Unavailable("user stream: connection closed") from None

    async def ping(self) -> None:
        """Send a ping and wait for its pong (the caller bounds the wait).

        Raises:
            Unavailable: not connected, or the connection closed meanwhile.
        """
        try:
            await self._open_ws().ping()
        except ConnectionClosed:
            raise Unavailable("user stream: connection closed") from None

    def _open_ws(self) -> WebSocketConnection:
        if self._ws is None:
            raise Unavailable("user stream: not connected")
        return self._ws

    def _open(self) -> AbstractAsyncContextManager[WebSocketConnection]:
        return _Opening(self._connect(self.url))

    async def _read(self, ws: WebSocketConnection) -> None:
        """Forward frames and silences until the connection closes."""
        last = trio.current_time()
        try:
            while True:
                message = None
                with trio.move_on_after(self._silence_after):
                    message = await ws.get_message()
                if message is None:
                    self._silences += 1
                    await self._events.send(Silence(trio.current_time() - last))
                    continue
                last = trio.current_time()
                await self._forward(message)
        except ConnectionClosed as exc:
            reason = exc.reason
            text = reason.reason or reason.name if reason is not None else "closed"
            code = reason.code if reason is not None else None
            await self._events.send(Disconnected(text, code))

    async def _forward(self, message: str | bytes) -> None:
        self._messages += 1
        reply = parse_reply(message) if self._multiplex else None
        if reply is not None:
            await self._events.send(reply)
            return
        try:
            event = parse_frame(message, self._default_key)
        except parsing.PayloadError as exc:
            self._malformed += 1
            log.warning("user stream: dropped a malformed frame (%s)", exc)
            if self._multiplex:
                await self._events.send(Malformed(frame_key(message), str(exc)))
            return
        if event is None:
            self._ignored += 1
            return
        if isinstance(event, OrderUpdateEvent):
            self._order_updates += 1
        await self._events.send(event)


class _Opening(AbstractAsyncContextManager[WebSocketConnection]):
    """Wraps ``connect(url)`` so that a failed handshake or socket error is Unavailable."""

    def __init__(self, inner: AbstractAsyncContextManager[WebSocketConnection]) -> None:
        self._inner = inner

    async def __aenter__(self) -> WebSocketConnection:
        try:
            return await self._inner.__aenter__()
        except (HandshakeError, OSError) as exc:
            status = exc.status_code if isinstance(exc, ConnectionRejected) else 0
            if status in (429, 418):
                retry = _retry_after(exc)
                raise RateLimited(
                    f"user stream: handshake refused ({status})", retry_after=retry, status=status
                ) from None
            raise Unavailable(
                f"user stream: cannot connect ({type(exc).__name__})", status=status
            ) from None

    async def __aexit__(self, *exc_info: Any) -> bool | None:
        return await self._inner.__aexit__(*exc_info)


def _retry_after(exc: BaseException) -> float:
    """The Retry-After of a refused handshake in seconds (60 when absent or unreadable)."""
    headers = exc.headers if isinstance(exc, ConnectionRejected) else None
    for name, value in headers or ():
        if name.lower() == b"retry-after":
            try:
                return max(0.0, float(value))
            except ValueError:
                break
    return 60.0
