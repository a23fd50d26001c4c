"""Where this instance's exchange traffic leaves from: ``--egress-address`` (docs/cluster.md).

The exchange counts request weight and user-stream connections per client IP. Several
``tradercoin serve`` instances on one machine are one IP to it unless each binds its own
local address: ``http_client(local_address=...)`` for the REST pool and
:func:`websocket_connector` for every user-stream WebSocket (the hub's shared connections and
the per-user ones). With no address both are the library defaults: nothing changes for a
single instance.

trio-websocket's ``open_websocket_url`` has no local address, so :func:`open_websocket_from`
opens the TCP stream itself (``trio.open_tcp_stream(..., local_address=...)``, TLS for
``wss``) and hands it to ``trio_websocket.wrap_client_stream``.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from urllib.parse import urlsplit

import trio
import trio_websocket
from trio_websocket import HandshakeError, WebSocketConnection, open_websocket_url

__all__ = ["open_websocket_from", "raise_single", "websocket_connector"]

CONNECT_TIMEOUT = 60.0  # trio-websocket's own default for the handshake
CLOSE_TIMEOUT = 60.0


def websocket_connector(
    local_address: str | None,
) -> Callable[[str], AbstractAsyncContextManager[WebSocketConnection]]:
    """A ``connect(url)`` for the user streams that leaves from ``local_address``."""
    if local_address is None:
        return open_websocket_url

    def connect(url: str) -> AbstractAsyncContextManager[WebSocketConnection]:
        return open_websocket_from(url, local_address)

    return connect


@asynccontextmanager
async def open_websocket_from(url: str, local_address: str) -> AsyncIterator[WebSocketConnection]:
    """A client WebSocket to ``url`` (``ws://`` or ``wss://``) whose TCP connection leaves
    from ``local_address``; closed on exit.

    Raises:
        HandshakeError: the connection or the handshake failed or timed out (the server's
            refusal as ``ConnectionRejected``, like ``open_websocket_url``). An error of the
            body is raised bare, never in an exception group.
    """
    try:
        async with trio.open_nursery() as nursery:
            ws = await _connect(nursery, url, local_address)
            try:
                yield ws
            finally:
                with trio.move_on_after(CLOSE_TIMEOUT):  # cancelled: trio-websocket aborts
                    await ws.aclose()
    except BaseExceptionGroup as group:
        raise_single(group)
        raise


async def _connect(nursery: trio.Nursery, url: str, local_address: str) -> WebSocketConnection:
    """Open TCP (and TLS) from ``local_address``, then the WebSocket handshake."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        with trio.fail_after(CONNECT_TIMEOUT):
            stream: trio.SocketStream | trio.SSLStream[trio.SocketStream]
            stream = await trio.open_tcp_stream(host, port, local_address=local_address)
            if secure:
                context = ssl.create_default_context()
                stream = trio.SSLStream(
                    stream, context, server_hostname=host, https_compatible=True
                )
                await stream.do_handshake()
            host_header = host if port in (80, 443) else f"{host}:{port}"
            return await trio_websocket.wrap_client_stream(nursery, stream, host_header, resource)
    except trio.TooSlowError:
        raise trio_websocket.ConnectionTimeout from None
    except (OSError, trio.BrokenResourceError) as exc:
        raise HandshakeError from exc


def raise_single(group: BaseExceptionGroup[BaseException]) -> None:
    """Re-raise the one real error of a nursery's group bare (a rejected handshake, or the
    caller's own exception), as trio-websocket's ``open_websocket`` does."""
    leaves: list[BaseException] = []
    pending: list[BaseException] = [group]
    while pending:
        exc = pending.pop()
        if isinstance(exc, BaseExceptionGroup):
            pending.extend(exc.exceptions)
        elif not isinstance(exc, trio.Cancelled):
            leaves.append(exc)
    if len(leaves) == 1:
        raise leaves[0] from None
