"""An in-memory WebSocket server side for the stream reader's unit tests.

Real trio-websocket on both ends over ``trio.testing.memory_stream_pair``, so tests run under
the autojump clock with no sockets. ``connect`` has the shape ``UserStream`` expects; the
server ends live in the peer's own nursery (``run``), as they would in a real server, and are
handed to the test through ``accepted``.
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
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    async def _serve(self, stream: trio.abc.Stream) -> None:
        async with trio.open_nursery() as nursery:
            request = await wrap_server_stream(nursery, stream)
            await self._send.send(await request.accept())

    @asynccontextmanager
    async def connect(self, url: str) -> AsyncIterator[WebSocketConnection]:
        assert self._nursery is not None, "start WsPeer.run first"
        self.urls.append(url)
        parts = urlsplit(url)
        client_stream, server_stream = trio.testing.memory_stream_pair()
        self._nursery.start_soon(self._serve, server_stream)
        async with trio.open_nursery() as nursery:
            client = await wrap_client_stream(
                nursery,
                client_stream,  # type: ignore[arg-type]  # any trio Stream works
                parts.hostname or "",
                f"{parts.path}?{parts.query}",
            )
            try:
                yield client
            finally:
                await client.aclose()
