"""Request ids: every HTTP request and WebSocket session gets one, taken from the client's
``X-Request-ID`` when it is sane (1-128 visible ASCII characters) or made here (32 hex
digits). It is returned in the response's ``X-Request-ID`` header and set in
:data:`tradercoin.logs.request_id_var`, so every log line written while handling the request
carries it. Outermost ASGI layer: it wraps the fast paths and Quart alike.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from tradercoin.logs import request_id_var, user_id_var

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
    """ASGI middleware: sets the request id (and clears the user id) for the request's
    duration, and adds ``X-Request-ID`` to the response (HTTP) or handshake (WebSocket)."""

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

        id_token = request_id_var.set(request_id)
        user_token = user_id_var.set(None)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            user_id_var.reset(user_token)
            request_id_var.reset(id_token)
