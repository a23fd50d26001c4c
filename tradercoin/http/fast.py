"""A fast path for the hottest read: ``GET /api/orders`` answered from the per-user cache
straight on ASGI, in front of Quart.

It answers only when everything is already in memory and valid: a verified token (bearer or
cookie), a user already loaded, a query that parses, and a cached page (see
:class:`~tradercoin.http.cache.OrdersCache`). In every other case, errors included, the
request goes to the Quart route, which does the same work in full and fills the cache. So both
paths give the same answer; this one skips Quart's per-request machinery (PERF.md: about half
of a request's CPU).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import trio

from tradercoin.http.auth import cookie_value
from tradercoin.http.context import HttpContext
from tradercoin.http.drain import read_to_end
from tradercoin.http.errors import ApiError
from tradercoin.http.orders import parse_orders_query

__all__ = ["OrdersFastPath"]

PATH = "/api/orders"
_JSON = (b"content-type", b"application/json")
_HEADERS = [  # as tradercoin.http.guards.security_headers gives every API answer
    _JSON,
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]


class OrdersFastPath:
    """ASGI middleware: cached ``GET /api/orders`` pages without Quart; all else passes."""

    def __init__(self, app: Any, ctx: HttpContext) -> None:
        self.app = app
        self.ctx = ctx
        self.answered = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == "GET"
            and not self.app.on_metrics_port(scope)
        ):
            started = trio.current_time()
            body = self.cached(scope)
            if body is not None:
                whole = await read_to_end(receive)  # before answering: see http/drain.py
                await self._answer(send, body, close=not whole)
                elapsed = trio.current_time() - started
                self.ctx.metrics.observe(PATH, "GET", 200, elapsed)
                return
        await self.app(scope, receive, send)

    def cached(self, scope: Any) -> bytes | None:
        """The cached page this request would get, or ``None`` to let Quart answer."""
        user_id = self._user_id(scope)
        if user_id is None:
            return None
        raw = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        try:
            query = parse_orders_query({k: v[0] for k, v in raw.items()})
        except ApiError:
            return None
        supervisor = self.ctx.supervisor
        actor = None if supervisor is None else supervisor.actor(user_id)
        return self.ctx.orders_cache.peek(user_id, tuple(query.values()), actor)

    def _user_id(self, scope: Any) -> int | None:
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                token = value[7:].decode("latin-1").strip()
                break
            if name == b"cookie" and token is None:
                token = cookie_value(value.decode("latin-1"))
        session = self.ctx.tokens.verify(token) if token else None
        if session is None or self.ctx.users.peek(session.user_id) is None:
            return None
        return session.user_id

    async def _answer(self, send: Any, body: bytes, *, close: bool) -> None:
        self.answered += 1
        headers = [*_HEADERS, (b"content-length", str(len(body)).encode())]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def statistics(self) -> dict[str, int]:
        return {"answered": self.answered}
