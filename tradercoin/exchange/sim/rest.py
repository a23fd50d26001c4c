"""The raw ASGI app of the simulator's REST side: read the request, hand it to the
simulator, write its answer. No framework: one dict lookup per request.

``Content-Type: application/json`` on every JSON answer; a body over 1 MiB gets 413.
A :func:`dropped` answer breaks the connection: in-process it raises ``httpx.RemoteProtocolError``
(what httpx raises for a real drop); over a socket it sends headers, then aborts, so the
server closes the connection mid-response.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["ConnectionDropped", "Request", "Response", "RestApp", "dropped", "json_response"]

MAX_BODY = 1 << 20
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: bytes
    body: bytes
    headers: dict[bytes, bytes]
    ip: str

    def header(self, name: bytes) -> str | None:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(JSON_HEADERS))
    drop: bool = False


def dropped() -> Response:
    """An answer that breaks the connection instead of answering."""
    return Response(0, b"", [], drop=True)


def json_response(payload: Any, status: int = 200) -> Response:
    return Response(status, json.dumps(payload, separators=(",", ":")).encode())


class ConnectionDropped(Exception):
    """Aborts a response mid-way so the ASGI server closes the connection."""


class RestApp:
    """ASGI 3 callable around ``handler``; ``in_process`` picks how a drop is shown."""

    def __init__(
        self, handler: Callable[[Request], Awaitable[Response]], *, in_process: bool
    ) -> None:
        self._handler = handler
        self._in_process = in_process

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        body = await _read_body(receive)
        if body is None:
            await _send(send, json_response({"code": -1000, "msg": "Request too large."}, 413))
            return
        response = await self._handler(_request(scope, body))
        if response.drop:
            await self._drop(send)
        await _send(send, response)

    async def _drop(self, send: Send) -> None:
        if self._in_process:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"100")]}
        )
        raise ConnectionDropped


def _request(scope: Scope, body: bytes) -> Request:
    client = scope.get("client")
    return Request(
        method=scope["method"],
        path=scope["path"],
        query=scope.get("query_string", b""),
        body=body,
        headers={k.lower(): v for k, v in scope.get("headers", ())},
        ip=client[0] if client else "unknown",
    )


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, response: Response) -> None:
    await send(
        {"type": "http.response.start", "status": response.status, "headers": response.headers}
    )
    await send({"type": "http.response.body", "body": response.body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
