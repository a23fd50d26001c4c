"""A fix for Hypercorn 0.18 (trio), needed once responses close their connection.

Hypercorn's ``TCPServer._close`` half-closes the socket (``send_eof``) without its send lock;
while that waits at its checkpoint, a concurrent ``send_all`` of the same connection (the
reader answering a client that vanished mid-body, or the app's last bytes) raises
``trio.BusyResourceError``, which Hypercorn does not catch: the connection's task fails and
takes the whole server down with it. ``bench/abuse.py``'s oversized-body flood (requests that
declare 2 MB, send 2 bytes, and get a 413 with ``Connection: close``) hit it within seconds.

:func:`install` makes ``protocol_send`` treat a busy socket as a closing one, which it is:
the connection is handled as closed (as Hypercorn already does for a broken one).
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = ["install"]

_installed = False


def install() -> None:
    """Patch ``hypercorn.trio.tcp_server.TCPServer.protocol_send`` once (idempotent)."""
    global _installed
    if _installed:
        return
    from hypercorn.events import Closed
    from hypercorn.trio.tcp_server import TCPServer

    original = TCPServer.protocol_send

    async def protocol_send(self: Any, event: Any) -> None:
        try:
            await original(self, event)
        except trio.BusyResourceError:
            await self.protocol.handle(Closed())

    TCPServer.protocol_send = protocol_send  # type: ignore[method-assign]
    _installed = True
