"""An in-memory WebSocket server side for the stream reader's unit tests.

Real trio-websocket on both ends over ``trio.testing.memory_stream_pair``, so tests run under
the autojump clock with no sockets. ``connect`` has the shape ``UserStream`` expects.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio
import trio.testing
from trio_websocket import WebSocketConnection, wrap_client_stream, wrap_server_stream


class WsPeer:
    def __init__(self) -> None:
        self.urls: list[str] = []
        self._send, self.accepted = trio.open_memory_channel[WebSocketConnection](4)

    async def _accept(self, nursery: trio.Nursery, stream: trio.abc.Stream) -> None:
        request = await wrap_server_stream(nursery, stream)
        await self._send.send(await request.accept())

    @asynccontextmanager
    async def connect(self, url: str) -> AsyncIterator[WebSocketConnection]:
        self.urls.append(url)
        parts = urlsplit(url)
        client_stream, server_stream = trio.testing.memory_stream_pair()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._accept, nursery, server_stream)
            client = await wrap_client_stream(
                nursery,
                client_stream,
                parts.hostname or "",
                f"{parts.path}?{parts.query}",  # type: ignore[arg-type]
            )
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
