"""ASGI middleware: a request's body is read to its end before its response ends.

Hypercorn 0.18's HTTP/1.1 protocol races when an app finishes its response before Hypercorn
has handed it the request body: the stream closes while the client is still "sending the
body", the body's end is then dropped, the connection is never recycled, and the next
keep-alive request on it hangs forever. Any route that answers without reading a body
(GET /healthz, the orders fast path, 405s, 404s, ...) could hit it; schemathesis found it
with GET/OPTIONS/DELETE requests that carry a body. Draining first keeps Hypercorn's state
machine in step. It costs one receive for requests whose handler ignores the body.

A response to a body that was refused (413, 408) or not read to its end within the bounds
carries ``Connection: close``: the client cannot be trusted to be between requests, so the
connection ends with the response instead of waiting for bytes that may never come.
Without this, 2,000 requests declaring a 2 MB body and sending 2 bytes held 2,000 sockets
open (issue 13).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

__all__ = ["DrainBody", "read_to_end"]

DRAIN_TIMEOUT = 5.0  # a client that stops sending mid-body is not waited for longer
DRAIN_LIMIT = 1024 * 1024  # past this many unread bytes, give up draining
REFUSED_BODY = frozenset({408, 413})  # the body is not wanted: no drain, close after
_CLOSE = (b"connection", b"close")


@dataclass(eq=False)
class _Request:
    """What has been received of one request's body."""

    receive: Any
    done: trio.Event = field(default_factory=trio.Event)
    moved: trio.Event = field(default_factory=trio.Event)
    closing: bool = False
    in_flight: int = 0
    size: int = 0

    async def tracked(self) -> Any:
        """The app's ``receive``: notes the body's end (or a disconnect).

        Once the response is known to close the connection (:attr:`closing`), a disconnect
        is not passed on: Hypercorn reports one while it closes the connection inside the
        app's last ``send``, and Quart-Trio's body reader would then cancel that send, leaving
        the socket open until the client gives up. The app ends when its response is out.
        """
        self.in_flight += 1
        try:
            message = await self.receive()
        finally:
            self.in_flight -= 1
        if message["type"] == "http.disconnect" and self.closing:
            await trio.sleep_forever()
        self.size += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done.set()
        self.moved.set()
        self.moved = trio.Event()
        return message

    async def drain(self) -> None:
        """Waits for: the body's end, read here or by the app's own pending receive; at most
        :data:`DRAIN_TIMEOUT` and :data:`DRAIN_LIMIT` bytes."""
        with trio.move_on_after(DRAIN_TIMEOUT):
            while not self.done.is_set() and self.size <= DRAIN_LIMIT:
                if self.in_flight:
                    await self.moved.wait()  # the app is reading: let it take the message
                else:
                    await self.tracked()


class DrainBody:
    """Wraps an ASGI app; only ``http`` requests are touched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = _Request(receive)

        async def send_after_drain(message: Any) -> None:
            if message["type"] == "http.response.start":
                if message.get("status") not in REFUSED_BODY:
                    await request.drain()
                if not request.done.is_set():
                    request.closing = True
                    message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            await send(message)

        await self.app(scope, request.tracked, send_after_drain)


async def read_to_end(receive: Any) -> bool:
    """For an ASGI app that answers without reading the body: read it (see the module).
    Returns whether it was read to its end (if not, answer with ``Connection: close``)."""
    request = _Request(receive)
    await request.drain()
    return request.done.is_set()
