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
``{"type": "auth", "token": "..."}`` as the first message when neither the cookie nor
``?token=`` authenticated the connection (within 10 s).

Each session is a reader task and a writer task in one nursery. The writer alone takes from the
bounded channel attached to the user's actor; a client too slow to keep up is dropped by the
actor (never blocking it), and the writer re-attaches from the last seq it delivered, so even
then nothing is lost. Hypercorn serializes the frames of both. Frames over 16 KiB close with 1009
(Hypercorn's ``websocket_max_message_size``).
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

import trio
from quart import Quart, Response, websocket

from tradercoin.http.auth import COOKIE, origin_allowed
from tradercoin.http.context import context
from tradercoin.http.errors import error_response
from tradercoin.orders import order_to_wire
from tradercoin.store.models import User

if TYPE_CHECKING:
    from tradercoin.http.context import HttpContext

__all__ = ["MAX_MESSAGE_SIZE", "WsSession", "WsSessions", "register_routes"]

log = logging.getLogger(__name__)

HEARTBEAT = 25.0
AUTH_TIMEOUT = 10.0
ATTACH_TIMEOUT = 10.0
REATTACH_DELAY = 1.0
CHANNEL_SIZE = 256
REPLAY_LIMIT = 1000
MAX_MESSAGE_SIZE = 16 * 1024
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

    def statistics(self) -> dict[str, int]:
        return {"open": len(self._sessions), "users": len(self._per_user), "opened": self.opened}


class WsSession:
    """One connection of one user: hello, replay, live updates, heartbeats, client messages.

    Resource handling: owns its memory channel's receive side; the actor owns the send side.
    Closing the receive side is how the session leaves the actor when it ends.
    """

    __slots__ = (
        "_attach_lock",
        "_attached",
        "_generation",
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
                if since > latest:  # the client's seq is from another history (a reset DB)
                    await self.send({"type": "resync", "seq": latest})
                    since = latest
                await self.attach(since)
                async with trio.open_nursery() as nursery:
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
        while True:
            raw = await self.ws.receive()
            await self._handle_message(raw)

    async def _handle_message(self, raw: str | bytes) -> None:
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
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
            await self.attach(since)
        elif kind == "auth":
            await self._error("already_authenticated", "this connection is authenticated")
        else:
            await self._error("unknown_type", "type must be ping or resume")

    async def _error(self, code: str, message: str) -> None:
        await self.send({"type": "error", "code": code, "message": message})


def _user(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "role": user.role.value}


# ----------------------------------------------------------------------------- the route


async def _token_user(ctx: HttpContext, token: str | None) -> User | None:
    session = ctx.tokens.verify(token) if token else None
    return None if session is None else await ctx.users.get(session.user_id)


async def _first_message_user(ctx: HttpContext) -> User | None:
    with trio.move_on_after(AUTH_TIMEOUT):
        raw = await websocket.receive()
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        if isinstance(message, dict) and message.get("type") == "auth":
            token = message.get("token")
            return await _token_user(ctx, token if isinstance(token, str) else None)
    return None


def _since_arg() -> int | str | None:
    raw = websocket.args.get("since")
    if raw is None:
        return None
    return int(raw) if raw.isdigit() and len(raw) < 19 else "bad"


async def ws_endpoint() -> Response | None:
    """The WebSocket; see the module docstring for the protocol."""
    ctx = context()
    origin = websocket.headers.get("Origin")
    if origin and not origin_allowed(
        origin,
        websocket.host,
        "http" if websocket.scheme == "ws" else "https",
        ctx.settings.allowed_origins,
    ):
        return error_response(403, "forbidden_origin", "this origin may not connect")
    if ctx.sessions.closing:
        return error_response(503, "shutting_down", "the server is shutting down")
    since = _since_arg()
    if since == "bad":
        return error_response(400, "invalid_query", "since must be a non-negative integer")
    token = websocket.args.get("token") or websocket.cookies.get(COOKIE)
    user = await _token_user(ctx, token)
    await websocket.accept()
    if user is None:
        user = await _first_message_user(ctx)
        if user is None:
            await websocket.close(POLICY, "unauthorized")
            return None
    assert not isinstance(since, str)
    current = websocket._get_current_object()  # type: ignore[attr-defined]
    await ctx.sessions.serve(WsSession(ctx, current, user, since))
    return None


def register_routes(app: Quart) -> None:
    app.add_websocket("/ws", view_func=ws_endpoint)
