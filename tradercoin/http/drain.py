"""ASGI middleware: a request's body is read to its end before its response ends.

Hypercorn 0.18's HTTP/1.1 protocol races when an app finishes its response before Hypercorn
has handed it the request body: the stream closes while the client is still "sending the
body", the body's end is then dropped, the connection is never recycled, and the next
keep-alive request on it hangs forever. Any route that answers without reading a body
(GET /healthz, the orders fast path, 405s, 404s, ...) could hit it; schemathesis found it
with GET/OPTIONS/DELETE requests that carry a body. Draining first keeps Hypercorn's state
machine in step. It costs one receive for requests whose handler ignores the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

__all__ = ["DrainBody", "read_to_end"]

DRAIN_TIMEOUT = 5.0  # a client that stops sending mid-body is not waited for longer
DRAIN_LIMIT = 1024 * 1024  # past this many unread bytes, give up draining


@dataclass(eq=False)
class _Request:
    """What has been received of one request's body."""

    receive: Any
    done: trio.Event = field(default_factory=trio.Event)
    moved: trio.Event = field(default_factory=trio.Event)
    in_flight: int = 0
    size: int = 0

    async def tracked(self) -> Any:
        """The app's ``receive``: notes the body's end (or a disconnect)."""
        self.in_flight += 1
        try:
            message = await self.receive()
        finally:
            self.in_flight -= 1
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
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                await request.drain()
            await send(message)

        await self.app(scope, request.tracked, send_after_drain)


async def read_to_end(receive: Any) -> None:
    """For an ASGI app that answers without reading the body: read it (see the module)."""
    await _Request(receive).drain()
