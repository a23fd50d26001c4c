"""Request ids: every HTTP request and WebSocket session gets one, taken from the client's
``X-Request-ID`` when it is sane (1-128 visible ASCII characters) or made here (32 hex
digits). It is returned in the response's ``X-Request-ID`` header and set in
the request's :class:`tradercoin.logs.RequestScope`, so every log line written while handling
the request carries it (and the user id, once authentication knows it). Outermost ASGI
layer: it wraps the fast paths and Quart alike.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tradercoin.logs import RequestScope, request_scope

__all__ = ["HEADER", "RequestIds", "request_id_from"]

HEADER = b"x-request-id"
_SANE = re.compile(rb"^[\x21-\x7e]{1,128}$")
_STARTS = ("http.response.start", "websocket.accept", "websocket.http.response.start")


def request_id_from(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID if sane, else a new random one."""
    for name, value in headers:
        if name.lower() == HEADER and _SANE.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


class RequestIds:
    """ASGI middleware: opens a log scope with the request id for the request's duration
    (closed after it, also for tasks it spawned), and adds ``X-Request-ID`` to the response
    (HTTP) or the handshake (WebSocket)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope.get("headers", []))
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: dict[str, Any]) -> None:
            if message["type"] in _STARTS:
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        log_scope = RequestScope(request_id)
        token = request_scope.set(log_scope)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            log_scope.open = False
            request_scope.reset(token)
