"""A fix for trio-websocket 0.12: a ping that crosses our close must not crash the connection.

When one side has sent its close frame and the peer's ping arrives before the peer's close
reply (the two frames cross on the wire), trio-websocket's reader task answers the ping with
a pong that wsproto refuses in the closing state: ``LocalProtocolError`` escapes the reader
task and takes down the nursery it runs in, i.e. the connection's owner. The hub pings the
simulator every few seconds and the simulator drops connections on purpose, so the two met in
``bench``/tests (a hub ping at the instant of a forced disconnect killed the simulator), and
they would meet on a real exchange too.

:func:`install` makes the ping handler skip the pong unless the connection is still open: a
closing connection owes no pong (RFC 6455 §5.5.2 asks for one "unless it already received a
Close frame"; once our own close is out, the peer's close reply ends the connection anyway).
"""

from __future__ import annotations

from typing import Any

__all__ = ["install"]

_installed = False


def install() -> None:
    """Patch ``WebSocketConnection._handle_ping_event`` once (idempotent)."""
    global _installed
    if _installed:
        return
    from trio_websocket._impl import WebSocketConnection
    from wsproto.connection import ConnectionState

    original = WebSocketConnection._handle_ping_event

    async def handle_ping(self: Any, event: Any) -> None:
        if self._wsproto.state is ConnectionState.OPEN:
            await original(self, event)

    WebSocketConnection._handle_ping_event = handle_ping  # type: ignore[method-assign]
    _installed = True
