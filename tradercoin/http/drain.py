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
    abandoned: bool = False
    pending: set[trio.CancelScope] = field(default_factory=set)
    in_flight: int = 0
    size: int = 0

    async def tracked(self) -> Any:
        """The app's ``receive``: notes the body's end (or a disconnect). Once the body is
        :meth:`abandon`-ed, it answers ``http.disconnect`` (so the app, Quart's body reader
        included, ends instead of waiting for bytes that will not come)."""
        if self.abandoned:
            return {"type": "http.disconnect"}
        self.in_flight += 1
        message: Any = {"type": "http.disconnect"}
        scope = trio.CancelScope()
        self.pending.add(scope)
        try:
            with scope:
                message = await self.receive()
        finally:
            self.in_flight -= 1
            self.pending.discard(scope)
        self.size += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.done.set()
        self.moved.set()
        self.moved = trio.Event()
        return message

    def abandon(self) -> None:
        """The response is out and the body will not be read: end every receive."""
        self.abandoned = True
        for scope in self.pending:
            scope.cancel()
        self.done.set()

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

        closing = False

        async def send_after_drain(message: Any) -> None:
            nonlocal closing
            if message["type"] == "http.response.start":
                if message.get("status") not in REFUSED_BODY:
                    await request.drain()
                if not request.done.is_set():
                    closing = True
                    message = {**message, "headers": [*message.get("headers", ()), _CLOSE]}
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if not (closing and last):
                await send(message)
                return
            # Hypercorn closes the connection inside this send; Quart-Trio's body reader, told
            # of the close, cancels this task meanwhile, which would leave the socket open
            # (held until the client gives up). Shielded, the close completes (bounded: the
            # write itself is already shielded by Hypercorn, the close is two system calls).
            with trio.CancelScope(shield=True):
                await send(message)
            request.abandon()

        await self.app(scope, request.tracked, send_after_drain)


async def read_to_end(receive: Any) -> bool:
    """For an ASGI app that answers without reading the body: read it (see the module).
    Returns whether it was read to its end (if not, answer with ``Connection: close``)."""
    request = _Request(receive)
    await request.drain()
    return request.done.is_set()
