"""listenKeys and the user-data stream: the routes, pings, the lifetime rule, and delivery of
events to connections, with the stream faults applied.

Routes: ``/private/ws/<key>``, ``/private/ws?listenKey=<key>[&events=A/B]``, stream mode
``/private/stream?listenKey=<k1>&listenKey=<k2>...`` (events wrapped as
``{"stream": key, "data": event}``; more keys can be added on the connection with
``{"method": "SUBSCRIBE", "params": [key, ...], "id": n}``), and the legacy ``/ws/<key>``,
which connects but, like the real one since 2026-04-23, carries no private events. wsproto
refuses handshakes much over 20 KB (measured: 260 keys in one URL pass, 300 do not):
subscribe the rest.

Closes (code, reason): 1001 "connection lifetime reached" (24 h by default), 1001 "forced
disconnect" (the DISCONNECT fault), 1008 "pong timeout" (no pong 10 min after a ping),
1008 "too slow" (more than ``send_buffer`` events queued), 1000 "listenKey closed" (DELETE),
1008 "too many messages" (more than 10 incoming messages in a second). The
``stream_zombie`` fault makes an account's key deliver nothing while everything else about
it lives, until it is closed (a new key delivers again).
An unknown key on ``/private/ws`` is refused at the handshake (HTTP 400, -1125); so is a URL
with more than 1024 keys (400). Binance's connection rules (``connrules.py``): a client IP
over 300 accepted handshakes in 5 minutes gets 429, and a ban (418) if it keeps trying.

Stream faults beyond drop/delay/duplicate/garble/silence: ``stream_reorder`` re-sends an
order's previous ORDER_TRADE_UPDATE right after its newer one (both published while the
fault is armed for the account: the fault remembers updates only then); ``stream_burst``
holds the account's next ``count`` ORDER_TRADE_UPDATEs (and whatever comes between them),
then writes them to each connection as consecutive frames in one write, so the reader gets
them together; a burst also ends ``seconds`` after it began (when above 0), on
:meth:`StreamHub.flush_bursts` (the simulator's ``clear_faults``), or before a forced event.
"""

from __future__ import annotations

import collections
import json
import logging
import random
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trio
import trio_websocket
from wsproto.events import TextMessage

from tradercoin.exchange import wsfix
from tradercoin.exchange.sim.connrules import ConnectionLimits, ConnectionRules, MessageRate
from tradercoin.exchange.sim.engine import Account
from tradercoin.exchange.sim.errors import ApiError
from tradercoin.exchange.sim.faults import (
    BURST,
    REORDER,
    STREAM,
    FaultKind,
    FaultTable,
    garble_event,
)
from tradercoin.exchange.sim.scheduler import Scheduler

wsfix.install()  # a ping crossing a close must not crash a connection

__all__ = ["StreamConfig", "StreamHub"]

logger = logging.getLogger(__name__)
_ALNUM = string.ascii_letters + string.digits
_OPEN = frozenset({"NEW", "PARTIALLY_FILLED"})
Outgoing = str | tuple[str, ...]
"""One frame, or frames to write together (a burst)."""


@dataclass(frozen=True, slots=True)
class StreamConfig:
    listen_key_ttl: float = 3600.0
    ping_interval: float = 180.0
    pong_timeout: float = 600.0
    lifetime: float = 86400.0
    send_buffer: int = 16384  # events queued per connection before it counts as too slow
    rules: ConnectionLimits = field(default_factory=ConnectionLimits)


@dataclass(slots=True)
class _Key:
    account: Account
    key: str
    expires_at: float
    alive: bool = True
    zombie: bool = False  # the STREAM_ZOMBIE fault: known, kept alive, delivers nothing


@dataclass(eq=False, slots=True)
class _Conn:
    ws: trio_websocket.WebSocketConnection
    keys: set[str]
    stream_mode: bool
    events: frozenset[str] | None
    send: trio.MemorySendChannel[Outgoing]
    rate: MessageRate
    ip: str = ""
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)
    close_code: int = 1000
    close_reason: str = ""

    def close(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        self.scope.cancel()


class StreamHub:
    """Owns listenKeys and stream connections; :meth:`publish` is sync and never blocks."""

    def __init__(
        self,
        config: StreamConfig,
        scheduler: Scheduler,
        faults: FaultTable,
        server_ms: Callable[[], int],
        seed: int,
    ) -> None:
        self.config = config
        self._scheduler = scheduler
        self._faults = faults
        self._server_ms = server_ms
        self._rng = random.Random(f"{seed}:listenKeys")
        self._keys: dict[str, _Key] = {}
        self._active: dict[str, _Key] = {}  # api_key -> its live listenKey
        self._conns: dict[str, set[_Conn]] = {}
        self._open: set[_Conn] = set()
        self.rules = ConnectionRules(config.rules)
        self._last: dict[str, dict[tuple[str, int], dict[str, Any]]] = {}  # for stream_reorder
        self._held: dict[str, list[dict[str, Any]]] = {}  # listenKey -> its burst so far
        self.connections = 0
        self.events_sent = 0

    # --- listenKeys ----------------------------------------------------------------------

    def create_key(self, account: Account) -> str:
        """POST: the account's live key, extended, or a new one."""
        current = self._live(account)
        if current is not None:
            current.expires_at = trio.current_time() + self.config.listen_key_ttl
            return current.key
        key = "".join(self._rng.choices(_ALNUM, k=64))
        entry = _Key(account, key, trio.current_time() + self.config.listen_key_ttl)
        self._keys[key] = self._active[account.api_key] = entry
        self._scheduler.call_at(entry.expires_at, lambda: self._check_expiry(entry))
        return key

    def keepalive(self, account: Account, key: str | None) -> str:
        """PUT: extend the account's live key. Raises ApiError -1125 when there is none."""
        current = self._live(account)
        if current is None or (key and key != current.key):
            raise ApiError(-1125, "This listenKey does not exist.")
        current.expires_at = trio.current_time() + self.config.listen_key_ttl
        return current.key

    def close_key(self, account: Account, key: str | None) -> None:
        """DELETE: invalidate the key and end what it carries. Raises -1125 when unknown."""
        current = self._live(account)
        if current is None or (key and key != current.key):
            raise ApiError(-1125, "This listenKey does not exist.")
        self._kill(current)
        for conn in list(self._conns.get(current.key, ())):
            if conn.stream_mode:
                self._unsubscribe(conn, current.key)
            else:
                conn.close(1000, "listenKey closed")

    def expire_now(self, account: Account) -> None:
        """Fault hook: the account's key expires at once (``listenKeyExpired`` is pushed)."""
        current = self._live(account)
        if current is not None:
            current.expires_at = trio.current_time()
            self._check_expiry(current)

    def zombie(self, account: Account) -> None:
        """Fault hook: the account's live key stops delivering events while its connections,
        pings and keepalives go on (Binance's "zombie" key); a new key (DELETE, then POST)
        delivers again. Each event it swallows counts as a fault hit."""
        current = self._live(account)
        if current is not None:
            current.zombie = True

    def disconnect(self, account: Account) -> None:
        """Fault hook: close every connection carrying the account's key."""
        current = self._active.get(account.api_key)
        if current is not None:
            for conn in list(self._conns.get(current.key, ())):
                conn.close(1001, "forced disconnect")

    def _live(self, account: Account) -> _Key | None:
        entry = self._active.get(account.api_key)
        return entry if entry is not None and entry.alive else None

    def _check_expiry(self, entry: _Key) -> None:
        if not entry.alive:
            return
        if entry.expires_at > trio.current_time():
            self._scheduler.call_at(entry.expires_at, lambda: self._check_expiry(entry))
            return
        self._kill(entry)
        event = {"e": "listenKeyExpired", "E": self._server_ms(), "listenKey": entry.key}
        self._deliver(entry.key, event, force=True)

    def _kill(self, entry: _Key) -> None:
        entry.alive = False
        self._keys.pop(entry.key, None)
        if self._active.get(entry.account.api_key) is entry:
            del self._active[entry.account.api_key]

    def wants(self, account: Account) -> bool:
        """True when an event for ``account`` would reach a connection (cheap pre-check)."""
        entry = self._active.get(account.api_key)
        return entry is not None and entry.alive and entry.key in self._conns

    def live_key(self, account: Account) -> str | None:
        """The account's live listenKey (``None``: none)."""
        entry = self._live(account)
        return None if entry is None else entry.key

    def live_keys(self) -> int:
        return len(self._active)

    # --- delivery ------------------------------------------------------------------------

    def publish(self, account: Account, event: dict[str, Any]) -> None:
        """Send ``event`` to every connection on the account's live key, faults applied."""
        entry = self._live(account)
        if entry is None or entry.key not in self._conns:
            self._last.pop(account.api_key, None)
            return
        if entry.zombie:
            self._faults.hits += 1
            return
        previous = self._remember(account, event) if self._faults else None
        if self._faults:
            self._start_burst(account, entry.key, event)
        if not self._faults or self._apply_faults(account, entry.key, event):
            self._deliver(entry.key, event)
        if self._faults or self._held:
            self._after_faults(account, entry.key, previous)

    def _remember(self, account: Account, event: dict[str, Any]) -> dict[str, Any] | None:
        """The order's previous update (while stream_reorder is armed), ``event`` kept as
        the next one's while the order is open."""
        if event["e"] != "ORDER_TRADE_UPDATE":
            return None
        if not self._faults.armed(REORDER, None, account.api_key):
            self._last.pop(account.api_key, None)
            return None
        orders = self._last.setdefault(account.api_key, {})
        order = event["o"]
        previous = orders.pop((order["s"], order["i"]), None)
        if order["X"] in _OPEN:
            orders[(order["s"], order["i"])] = event
        return previous

    def _start_burst(self, account: Account, key: str, event: dict[str, Any]) -> None:
        if event["e"] != "ORDER_TRADE_UPDATE":
            return
        fault = self._faults.take(BURST, None, account.api_key)
        if fault is None or key in self._held:
            return
        held = self._held[key] = []
        if fault.seconds > 0:
            self._scheduler.call_later(fault.seconds, lambda: self._end_burst(key, held))

    def _after_faults(self, account: Account, key: str, previous: dict[str, Any] | None) -> None:
        if previous is not None and self._faults.take(REORDER, None, account.api_key):
            self._deliver(key, previous)
        if key in self._held and not self._faults.armed(BURST, None, account.api_key):
            self._flush(key)

    def _end_burst(self, key: str, held: list[dict[str, Any]]) -> None:
        if self._held.get(key) is held:
            self._flush(key)

    def flush_bursts(self) -> None:
        """Send every burst held so far (faults were cleared)."""
        for key in list(self._held):
            self._flush(key)

    def _flush(self, key: str) -> None:
        """Write the held events of ``key`` to each of its connections in one go."""
        held = self._held.pop(key, [])
        texts = [json.dumps(event, separators=(",", ":")) for event in held]
        for conn in list(self._conns.get(key, ())):
            frames = tuple(
                frame
                for event, text in zip(held, texts, strict=True)
                if (frame := _frame(conn, key, event, text, force=False)) is not None
            )
            if frames:
                self._send(conn, frames)

    def _apply_faults(self, account: Account, key: str, event: dict[str, Any]) -> bool:
        """False when the event must not be delivered now (dropped, silenced or delayed)."""
        if self._faults.take(frozenset({FaultKind.STREAM_SILENT}), None, account.api_key):
            return False
        if event["e"] != "ORDER_TRADE_UPDATE":
            return True
        fault = self._faults.take(STREAM, None, account.api_key)
        if fault is None:
            return True
        if fault.kind is FaultKind.STREAM_DUPLICATE:
            self._deliver(key, event)
            return True
        if fault.kind is FaultKind.STREAM_GARBLED:
            self._deliver(key, garble_event(event))
        if fault.kind is FaultKind.STREAM_DELAY:
            self._scheduler.call_later(fault.seconds, lambda: self._deliver(key, event))
        return False

    def _deliver(self, key: str, event: dict[str, Any], *, force: bool = False) -> None:
        if key in self._held:
            if not force:
                self._held[key].append(event)
                return
            self._flush(key)
        conns = self._conns.get(key)
        if not conns:
            return
        text = json.dumps(event, separators=(",", ":"))
        for conn in list(conns):
            frame = _frame(conn, key, event, text, force=force)
            if frame is not None:
                self._send(conn, frame)

    def _send(self, conn: _Conn, outgoing: Outgoing) -> None:
        try:
            conn.send.send_nowait(outgoing)
            self.events_sent += 1 if isinstance(outgoing, str) else len(outgoing)
        except trio.WouldBlock:
            conn.close(1008, "too slow")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

    # --- connections ---------------------------------------------------------------------

    async def handle(self, request: trio_websocket.WebSocketRequest, ip: str) -> None:
        """Serve one stream connection from client ``ip`` until it closes, its lifetime
        ends, pongs stop, or it sends too many messages.

        Rejects the handshake with 429/418 over the attempt rules (see ``connrules``), 404
        for an unknown route, 400 for an unknown key in ``/private/ws`` form or too many keys.
        """
        refused = self.rules.admit(ip)
        if refused is not None:
            logger.warning("user stream: handshake from %s refused (%d)", ip, refused.status)
            headers = [(b"Retry-After", str(refused.retry_after).encode())]
            await request.reject(refused.status, extra_headers=headers, body=refused.body)
            return
        target = _parse_route(request.path)
        if target is None:
            await request.reject(404, body=b'{"code":-1,"msg":"Unknown route."}')
            return
        keys, stream_mode, events = target
        if not stream_mode and keys and not self._is_live_key(next(iter(keys))):
            await request.reject(400, body=b'{"code":-1125,"msg":"This listenKey does not exist."}')
            return
        if self.rules.too_many_streams(len(keys)):
            await request.reject(400, body=_too_many_streams(self.config.rules.max_streams))
            return
        ws = await request.accept()
        send, receive = trio.open_memory_channel[Outgoing](self.config.send_buffer)
        rate = MessageRate(self.config.rules.max_messages)
        conn = _Conn(ws, {k for k in keys if k in self._keys}, stream_mode, events, send, rate, ip)
        await self._run_conn(conn, receive)

    def streams_per_connection(self) -> list[int]:
        return [len(conn.keys) for conn in self._open]

    def connections_by_ip(self) -> dict[str, int]:
        """Open connections per client address (each exchange IP has its own budget)."""
        return dict(collections.Counter(conn.ip for conn in self._open))

    def _is_live_key(self, key: str) -> bool:
        entry = self._keys.get(key)
        return entry is not None and entry.alive

    async def _run_conn(self, conn: _Conn, receive: trio.MemoryReceiveChannel[Outgoing]) -> None:
        for key in conn.keys:
            self._conns.setdefault(key, set()).add(conn)
        self.connections += 1
        self._open.add(conn)
        try:
            with conn.scope:
                conn.scope.deadline = trio.current_time() + self.config.lifetime
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._writer, conn, receive)
                    nursery.start_soon(self._pinger, conn)
                    nursery.start_soon(self._reader, conn)
            if conn.scope.cancelled_caught and not conn.close_reason:
                conn.close_code, conn.close_reason = 1001, "connection lifetime reached"
        finally:
            self.connections -= 1
            self._open.discard(conn)
            for key in list(conn.keys):
                self._unsubscribe(conn, key)
            conn.send.close()
            with trio.move_on_after(5) as cleanup:
                cleanup.shield = True
                await conn.ws.aclose(conn.close_code, conn.close_reason or None)

    def _unsubscribe(self, conn: _Conn, key: str) -> None:
        conn.keys.discard(key)
        conns = self._conns.get(key)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self._conns[key]

    async def _writer(self, conn: _Conn, receive: trio.MemoryReceiveChannel[Outgoing]) -> None:
        try:
            async for outgoing in receive:
                if isinstance(outgoing, str):
                    await conn.ws.send_message(outgoing)
                else:
                    await _send_together(conn.ws, outgoing)
        except (trio_websocket.ConnectionClosed, trio.BrokenResourceError):
            conn.close(1000, "closed by peer")

    async def _pinger(self, conn: _Conn) -> None:
        while True:
            await trio.sleep(self.config.ping_interval)
            with trio.move_on_after(self.config.pong_timeout):
                try:
                    await conn.ws.ping()
                except trio_websocket.ConnectionClosed:
                    conn.close(1000, "closed by peer")
                continue
            conn.close(1008, "pong timeout")

    async def _reader(self, conn: _Conn) -> None:
        try:
            while True:
                message = await conn.ws.get_message()
                if conn.rate.exceeded():
                    self.rules.closed_for_messages()
                    limit = self.config.rules.max_messages
                    logger.warning("user stream: closed a connection over %d messages/s", limit)
                    conn.close(1008, "too many messages")
                    return
                if conn.stream_mode:
                    await self._control(conn, message)
        except trio_websocket.ConnectionClosed:
            conn.close(1000, "closed by peer")

    async def _control(self, conn: _Conn, message: str | bytes) -> None:
        """Stream-mode requests: SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS; anything else
        gets an error reply, never an exception."""
        parsed = _parse_control(message)
        if parsed is None:
            await conn.ws.send_message('{"error":{"code":2,"msg":"Invalid request"},"id":null}')
            return
        method, params, req_id = parsed
        result: Any = None
        if method == "SUBSCRIBE" and self.rules.too_many_streams(len(conn.keys | set(params))):
            limit = self.config.rules.max_streams
            error = {"code": 2, "msg": f"Too many streams: at most {limit} per connection."}
            await conn.ws.send_message(json.dumps({"error": error, "id": req_id}))
            return
        if method == "SUBSCRIBE":
            for key in params:
                if self._is_live_key(key):
                    conn.keys.add(key)
                    self._conns.setdefault(key, set()).add(conn)
        elif method == "UNSUBSCRIBE":
            for key in params:
                self._unsubscribe(conn, key)
        else:
            result = sorted(conn.keys)
        await conn.ws.send_message(json.dumps({"result": result, "id": req_id}))


def _too_many_streams(limit: int) -> bytes:
    return b'{"code":-1,"msg":"Too many streams: at most %d per connection."}' % limit


_METHODS = frozenset({"SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS"})


def _frame(conn: _Conn, key: str, event: dict[str, Any], text: str, *, force: bool) -> str | None:
    """What ``conn`` is sent for ``event`` (``text`` is its JSON); None when it filters it."""
    if conn.events is not None and not force and event["e"] not in conn.events:
        return None
    return f'{{"stream":"{key}","data":{text}}}' if conn.stream_mode else text


async def _send_together(ws: trio_websocket.WebSocketConnection, texts: tuple[str, ...]) -> None:
    """Write ``texts`` as consecutive text frames in one write to the transport, so the peer
    reads them at once. trio-websocket has no public call for this; like its own
    ``send_message``, it encodes with the connection's wsproto and writes under its lock.

    Raises:
        trio_websocket.ConnectionClosed: the connection is closed or closing;
        trio.BrokenResourceError: the transport broke.
    """
    if ws._close_reason is not None:
        raise trio_websocket.ConnectionClosed(ws._close_reason)
    data = b"".join(ws._wsproto.send(TextMessage(data=text)) for text in texts)
    async with ws._stream_lock:
        try:
            await ws._stream.send_all(data)
        except trio.ClosedResourceError:
            raise trio.BrokenResourceError from None


def _parse_control(message: str | bytes) -> tuple[str, list[str], Any] | None:
    """``(method, keys, id)`` of a well-formed control request, else ``None``."""
    try:
        request = json.loads(message)
    except (ValueError, RecursionError):
        return None
    if not isinstance(request, dict):
        return None
    method, params, req_id = request.get("method"), request.get("params", []), request.get("id")
    if method not in _METHODS or not isinstance(params, list):
        return None
    if not all(isinstance(p, str) for p in params) or not isinstance(req_id, int | str | None):
        return None
    return method, params, req_id


def _parse_route(target: str) -> tuple[set[str], bool, frozenset[str] | None] | None:
    """``(keys, stream_mode, events)`` of a stream URL path, ``None`` when not a route."""
    parts = urlsplit(target)
    query = parse_qsl(parts.query)
    keys = {v for k, v in query if k == "listenKey" and v}
    events_raw = [v for k, v in query if k == "events"]
    events = frozenset(e for raw in events_raw for e in raw.split("/") if e) or None
    path = parts.path.rstrip("/")
    if path.startswith("/private/ws/") and path.count("/") == 3:
        return {path.rsplit("/", 1)[1]}, False, events
    if path == "/private/ws" and len(keys) == 1:
        return keys, False, events
    if path == "/private/stream":
        return keys, True, events
    if path.startswith("/ws/") and path.count("/") == 2:
        return set(), False, events
    return None
