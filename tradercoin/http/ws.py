"""``/ws``: one user's live order updates.

Protocol (server -> client):

- ``{"type": "hello", "seq": N, "user": {...}}`` first: N is the user's newest event seq;
- ``{"type": "order_update", "seq": N, "data": {...the whole order, with order_id and
  timestamp...}}``, ``{"type": "resync", "seq": N}`` (re-fetch: something could not be
  replayed), ``{"type": "alert", ...}``;
- ``{"type": "heartbeat", "seq": N}`` every 25 s; ``{"type": "pong", "seq": N}`` for a ping;
- ``{"type": "error", "code": ..., "message": ...}`` for a message it cannot use (the
  connection stays open).

Client -> server: ``{"type": "ping"}``, ``{"type": "resume", "since": N}`` (also ``?since=N``
on connect): every event after N is replayed, then live, with no gap and no duplicate;
``{"type": "subscribe", "prices": ["BTCUSDT", ...]}``: from then on ``{"type": "price",
"symbol", "mark_price", "index_price", "time"}`` for those symbols, at most one per symbol per
second (an empty list stops them); ``{"type": "account", ...}`` arrives unasked when the
exchange reports a balance or position change;
``{"type": "auth", "token": "..."}`` as the first message when neither the cookie nor
``?token=`` authenticated the connection (within 10 s).

The endpoint is ASGI middleware in front of the Quart app (:class:`WsEndpoint`), so a session
costs no Quart objects. Each session is a writer task (the connection's own) and a reader task
(its child). The writer alone takes from the bounded channel attached to the user's actor; a
client too slow to keep up is dropped by the actor (never blocking it), and the writer
re-attaches from the last seq it delivered, so even then nothing is lost. Hypercorn serializes
the frames of both. Frames over 16 KiB close with 1009 (Hypercorn's
``websocket_max_message_size``). Refused handshakes answer HTTP 403 (origin), 400 (bad
``since``) or 503 (shutting down) with the API's error body.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import trio

from tradercoin.http.audit import security_event
from tradercoin.http.auth import cookie_value
from tradercoin.http.guards import ascii_int, host_allowed, origin_allowed
from tradercoin.logs import set_log_user
from tradercoin.orders import order_to_wire
from tradercoin.store.models import User

if TYPE_CHECKING:
    from tradercoin.http.context import HttpContext

__all__ = ["MAX_MESSAGE_SIZE", "WsEndpoint", "WsSession", "WsSessions", "serve_websocket"]

log = logging.getLogger(__name__)

HEARTBEAT = 25.0
AUTH_TIMEOUT = 3.0  # an unauthenticated socket's grace for its first message
MAX_UNAUTHENTICATED = 8  # sockets per address still waiting to authenticate
ATTACH_TIMEOUT = 10.0
REATTACH_DELAY = 1.0
CHANNEL_SIZE = 256
REPLAY_LIMIT = 1000
MAX_MESSAGE_SIZE = 16 * 1024
MAX_PRICE_SYMBOLS = 20
GOING_AWAY = 1001
POLICY = 1008
TRY_AGAIN = 1013


class WsSessions:
    """The open sessions: counts per user, and a graceful close of all of them."""

    def __init__(self, ctx: HttpContext) -> None:
        self._ctx = ctx
        self._sessions: set[WsSession] = set()
        self._per_user: dict[int, int] = {}
        self._empty = trio.Event()
        self._empty.set()
        self.closing = False
        self.opened = 0
        self._unauthenticated: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    async def serve(self, session: WsSession) -> None:
        """Run ``session`` until it ends; refuses it (1008) past the per-user limit."""
        user_id = session.user.id
        if self._per_user.get(user_id, 0) >= self._ctx.max_ws_sessions_per_user:
            await session.ws.close(POLICY, "too many sessions for this user")
            return
        self._add(session)
        try:
            await session.run()
        finally:
            self._remove(session)

    def _add(self, session: WsSession) -> None:
        self._sessions.add(session)
        self._per_user[session.user.id] = self._per_user.get(session.user.id, 0) + 1
        self._empty = trio.Event() if self._empty.is_set() else self._empty
        self.opened += 1
        self._ctx.metrics.ws_sessions.set(len(self._sessions))

    def _remove(self, session: WsSession) -> None:
        self._sessions.discard(session)
        left = self._per_user.get(session.user.id, 1) - 1
        if left:
            self._per_user[session.user.id] = left
        else:
            self._per_user.pop(session.user.id, None)
        self._ctx.metrics.ws_sessions.set(len(self._sessions))
        if not self._sessions:
            self._empty.set()

    async def close_all(self, code: int = GOING_AWAY) -> None:
        """Refuse new sessions, close every open one with ``code``, and wait until all have
        ended (bound it with a timeout)."""
        self.closing = True
        for session in list(self._sessions):
            session.stop(code)
        await self._empty.wait()

    def may_wait_for_auth(self, address: str) -> bool:
        """Whether ``address`` may open one more socket that has yet to authenticate."""
        return self._unauthenticated.get(address, 0) < MAX_UNAUTHENTICATED

    async def authenticate(self, socket: AsgiSocket, address: str) -> User | None:
        """The user of the socket's first message (counted against ``address`` meanwhile)."""
        self._unauthenticated[address] = self._unauthenticated.get(address, 0) + 1
        try:
            return await _first_message_user(self._ctx, socket)
        finally:
            left = self._unauthenticated[address] - 1
            if left:
                self._unauthenticated[address] = left
            else:
                del self._unauthenticated[address]

    def count(self, user_id: int) -> int:
        """How many /ws connections ``user_id`` has open now (their browser tabs)."""
        return self._per_user.get(user_id, 0)

    def statistics(self) -> dict[str, int]:
        return {
            "open": len(self._sessions),
            "users": len(self._per_user),
            "opened": self.opened,
            "unauthenticated": sum(self._unauthenticated.values()),
        }


class WsSession:
    """One connection of one user: hello, replay, live updates, heartbeats, client messages.

    Resource handling: owns its memory channel's receive side; the actor owns the send side.
    Closing the receive side is how the session leaves the actor when it ends.
    """

    __slots__ = (
        "_attach_lock",
        "_attached",
        "_generation",
        "_nursery",
        "_prices_scope",
        "_recv",
        "_scope",
        "_since",
        "close_code",
        "ctx",
        "last_seq",
        "user",
        "ws",
    )

    def __init__(self, ctx: HttpContext, ws: Any, user: User, since: int | None) -> None:
        self.ctx = ctx
        self.ws = ws
        self.user = user
        self.last_seq = 0
        self._since = since
        self._recv: trio.MemoryReceiveChannel[dict[str, Any]] | None = None
        self._generation = 0
        self._attach_lock = trio.Lock()
        self._attached: trio.Event | None = None
        self._scope = trio.CancelScope()
        self._nursery: trio.Nursery | None = None
        self._prices_scope: trio.CancelScope | None = None
        self.close_code: int | None = None

    def stop(self, code: int) -> None:
        """End the session soon, closing with ``code``. Sync-coloured."""
        self.close_code = code
        self._scope.cancel()

    async def run(self) -> None:
        """Returns when the client leaves or :meth:`stop` is called. This task is the writer;
        the reader is its child."""
        try:
            with self._scope:
                latest = self.last_seq = await self.ctx.store.latest_seq(self.user.id)
                await self.send({"type": "hello", "seq": latest, "user": _user(self.user)})
                since = latest if self._since is None else self._since
                await self.attach(await self._known_seq(since, latest))
                async with trio.open_nursery() as nursery:
                    self._nursery = nursery
                    nursery.start_soon(self._reader)
                    await self._writer()
        finally:
            if self._recv is not None:
                self._recv.close()
        if self.close_code is not None:
            with trio.move_on_after(1):
                await self.ws.close(self.close_code)

    # ------------------------------------------------------------------ attaching

    async def attach(self, since: int) -> None:
        """(Re)join the user's actor with a fresh channel, replaying events after ``since``.

        Without a running actor, replays from the store instead and stays unattached (the
        writer tries again at each heartbeat).
        """
        with trio.CancelScope(shield=True), trio.move_on_after(ATTACH_TIMEOUT):
            async with self._attach_lock:
                await self._attach_locked(since)

    async def _attach_locked(self, since: int) -> None:
        self._generation += 1  # what the old channel still holds is dropped
        self.last_seq = since
        old, self._recv = self._recv, None
        if old is not None:
            old.close()  # the writer's receive ends; the actor drops the old session
        handle = self._actor()
        if handle is None:
            await self._replay_from_store(since)
            return
        send, receive = trio.open_memory_channel[dict[str, Any]](CHANNEL_SIZE)
        try:
            await handle.attach(send, since)
        except Exception as error:  # parked/restarting actor: retried at the next beat
            log.info("user %d: session cannot attach: %s", self.user.id, error)
            receive.close()
            return
        self._recv = receive
        if self._attached is not None:
            self._attached.set()

    def _actor(self) -> Any:
        supervisor = self.ctx.supervisor
        return None if supervisor is None else supervisor.actor(self.user.id)

    async def _replay_from_store(self, since: int) -> None:
        events = await self.ctx.store.events_since(self.user.id, since, REPLAY_LIMIT + 1)
        if len(events) > REPLAY_LIMIT:
            latest = await self.ctx.store.latest_seq(self.user.id)
            await self.deliver({"type": "resync", "seq": latest})
            return
        for event in events:
            data = order_to_wire(event.order)
            await self.deliver({"type": "order_update", "seq": event.seq, "data": data})

    # ------------------------------------------------------------------ sending

    async def send(self, message: dict[str, Any]) -> None:
        """Send one message. The reader and the writer both send: Hypercorn serializes the
        frames under its own lock, and writes each under a shield (so a send is never cut in
        half). A client that stops reading blocks only its own writer; its actor then drops
        it for lagging, and nobody else notices."""
        await self.ws.send(json.dumps(message, separators=(",", ":")))
        self.ctx.metrics.ws_sent.labels(message.get("type", "?")).inc()

    async def deliver(self, message: dict[str, Any]) -> None:
        """Send an update unless it is one this client already has (seq not newer)."""
        seq = message.get("seq")
        kind = message.get("type")
        if isinstance(seq, int):
            if kind == "order_update" and seq <= self.last_seq:
                return
            self.last_seq = seq if kind != "order_update" else max(seq, self.last_seq)
        await self.send(message)

    async def _writer(self) -> None:
        """Deliver the actor's messages in order, beat every 25 s, re-attach when dropped."""
        next_beat = trio.current_time() + HEARTBEAT
        while True:
            got: tuple[dict[str, Any] | None, int] | None = None
            with trio.move_on_at(next_beat):
                got = await self._next_message()
            if got is None:
                await self.send({"type": "heartbeat", "seq": self.last_seq})
                next_beat += HEARTBEAT
                if self._recv is None:
                    await self.attach(self.last_seq)
            elif got[0] is None:
                await self._reattach_later()
            elif got[1] == self._generation:
                await self.deliver(got[0])

    async def _next_message(self) -> tuple[dict[str, Any] | None, int]:
        """Wait for the next message of the current attachment: ``(message, generation)``;
        ``(None, generation)`` when the actor ended the channel. Only waits: safe to cancel."""
        while True:
            receive, generation = self._recv, self._generation
            if receive is None:
                self._attached = trio.Event()
                await self._attached.wait()
                continue
            try:
                return await receive.receive(), generation
            except trio.ClosedResourceError:
                continue  # swapped by a resume
            except trio.EndOfChannel:
                if self._recv is receive:
                    self._recv = None
                    receive.close()
                return None, generation

    async def _reattach_later(self) -> None:
        """The actor let go of us (we lagged, or it restarted): join again from our seq."""
        self.ctx.metrics.ws_dropped.labels("reattached").inc()
        await trio.sleep(REATTACH_DELAY)
        if self._recv is None:
            await self.attach(self.last_seq)

    # ------------------------------------------------------------------ receiving

    async def _reader(self) -> None:
        """Handle the client's messages until it leaves; then end the session."""
        try:
            while True:
                await self._handle_message(await self.ws.receive())
        except Disconnected:
            self._scope.cancel()

    async def _handle_message(self, raw: str | bytes) -> None:
        try:
            message = parse_frame(raw)
        except ValueError:
            await self._error("bad_message", "send JSON text frames")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self.send({"type": "pong", "seq": self.last_seq})
        elif kind == "resume":
            since = message.get("since")
            if type(since) is not int or since < 0:
                await self._error("bad_message", "resume needs an integer since >= 0")
                return
            await self.attach(await self._known_seq(since))
        elif kind == "subscribe":
            await self._subscribe(message.get("prices"))
        elif kind == "auth":
            await self._error("already_authenticated", "this connection is authenticated")
        else:
            await self._error("unknown_type", "type must be ping, resume or subscribe")

    async def _subscribe(self, symbols: Any) -> None:
        """Replace this session's price subscription (an empty list ends it)."""
        feed = self.ctx.prices
        if not isinstance(symbols, list) or len(symbols) > MAX_PRICE_SYMBOLS:
            await self._error("bad_message", "subscribe needs prices: a list of up to 20 symbols")
            return
        if self._prices_scope is not None:
            self._prices_scope.cancel()
            self._prices_scope = None
        if feed is None or not symbols or self._nursery is None:
            return
        await self._nursery.start(self._forward_prices, feed, symbols)

    async def _forward_prices(
        self, feed: Any, symbols: list[Any], *, task_status: trio.TaskStatus[None]
    ) -> None:
        """Send the feed's price messages for ``symbols`` until replaced or the session ends."""
        with trio.CancelScope() as scope, feed.subscribe(symbols) as subscription:
            self._prices_scope = scope
            task_status.started()
            async for message in subscription.receive:
                await self.send(message)

    async def _known_seq(self, since: int, latest: int | None = None) -> int:
        """``since``, or the newest seq after a ``resync`` when ``since`` is beyond it (a seq
        from another history, e.g. a reset DB: kept, it would hide every update up to it)."""
        if latest is None:
            latest = await self.ctx.store.latest_seq(self.user.id)
        if since <= latest:
            return since
        await self.send({"type": "resync", "seq": latest})
        return latest

    async def _error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "code": code, "message": message})


def parse_frame(raw: str | bytes) -> Any:
    """A client frame's JSON.

    Raises:
        ValueError: not JSON, not UTF-8, or nested too deeply for the parser (its
            RecursionError, which a 16 KiB frame of ``[`` reaches, is not a ValueError).
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _user(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role.value}


# ----------------------------------------------------------------------------- the endpoint


class Disconnected(Exception):
    """The client went away (or Hypercorn closed the connection, e.g. 1009)."""


class AsgiSocket:
    """The few WebSocket calls a session makes, straight on ASGI (no Quart objects)."""

    __slots__ = ("_receive", "_send")

    def __init__(self, receive: Any, send: Any) -> None:
        self._receive = receive
        self._send = send

    async def receive(self) -> str | bytes:
        """The next frame's data. Raises: Disconnected."""
        event = await self._receive()
        if event["type"] != "websocket.receive":
            raise Disconnected
        text: str | None = event.get("text")
        return text if text is not None else event.get("bytes") or b""

    async def send(self, text: str) -> None:
        await self._send({"type": "websocket.send", "text": text})

    async def close(self, code: int, reason: str = "") -> None:
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


class WsEndpoint:
    """ASGI middleware in front of the Quart app: ``/ws`` is served here, directly on ASGI,
    everything else goes to the app. It saves Quart's per-connection task, channel and
    context objects (PERF.md: memory per idle session is what limits scale)."""

    def __init__(self, app: Any, ctx: HttpContext, path: str = "/ws") -> None:
        self.app = app
        self.ctx = ctx
        self.path = path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and scope["path"] == self.path:
            await receive()  # websocket.connect
            await serve_websocket(self.ctx, scope, AsgiSocket(receive, send), send)
        else:
            await self.app(scope, receive, send)


def _headers(scope: Any) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def _since_arg(query: dict[str, list[str]]) -> int | str | None:
    raw = query.get("since", [None])[0]
    if raw is None:
        return None
    number = ascii_int(raw, max_digits=18)
    return "bad" if number is None else number


async def _reject(send: Any, scope: Any, status: int, code: str, message: str) -> None:
    """Refuse the handshake with an HTTP ``status`` and the API's error body."""
    body = json.dumps({"status": "error", "error": {"code": code, "message": message}}).encode()
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": POLICY})
        return
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})


async def _token_user(ctx: HttpContext, token: str | None) -> User | None:
    session = ctx.tokens.verify(token) if token else None
    return None if session is None else await ctx.users.get(session.user_id)


async def _first_message_user(ctx: HttpContext, socket: AsgiSocket) -> User | None:
    with trio.move_on_after(AUTH_TIMEOUT):
        try:
            message = parse_frame(await socket.receive())
        except (ValueError, Disconnected):
            return None
        if isinstance(message, dict) and message.get("type") == "auth":
            token = message.get("token")
            return await _token_user(ctx, token if isinstance(token, str) else None)
    return None


def _refusal(ctx: HttpContext, scope: Any, headers: dict[str, str]) -> tuple[int, str, str] | None:
    origin = headers.get("origin")
    scheme = "https" if scope.get("scheme") == "wss" else "http"
    host = headers.get("host", "")
    server = scope.get("server")
    if origin and not host_allowed(host, server[1] if server else None, ctx.settings):
        return 403, "forbidden_host", "this service does not answer to that host name"
    if origin and not origin_allowed(origin, host, scheme, ctx.settings.allowed_origins):
        return 403, "forbidden_origin", "this origin may not connect"
    if ctx.sessions.closing:
        return 503, "shutting_down", "the server is shutting down"
    return None


async def serve_websocket(ctx: HttpContext, scope: Any, socket: AsgiSocket, send: Any) -> None:
    """One ``/ws`` connection, from the handshake to the end; see the module docstring."""
    headers = _headers(scope)
    refusal = _refusal(ctx, scope, headers)
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    since = _since_arg(query)
    if refusal is None and since == "bad":
        refusal = 400, "invalid_query", "since must be a non-negative integer"
    token = query.get("token", [None])[0] or cookie_value(headers.get("cookie", ""))
    user = None if refusal is not None else await _token_user(ctx, token)
    address = (scope.get("client") or ("?",))[0]
    if refusal is None and user is None and not ctx.sessions.may_wait_for_auth(address):
        refusal = 429, "too_many_sockets", "too many unauthenticated connections from here"
    if refusal is not None:
        security_event("ws_refused", address=address, status=refusal[0], reason=refusal[1])
        await _reject(send, scope, *refusal)
        return
    await send({"type": "websocket.accept"})
    if user is None:
        user = await ctx.sessions.authenticate(socket, address)
        if user is None:
            await socket.close(POLICY, "unauthorized")
            return
    assert not isinstance(since, str)
    set_log_user(user.id)  # the session's log lines carry it (tradercoin.logs)
    await ctx.sessions.serve(WsSession(ctx, socket, user, since))
