"""A peer's ping that crosses our close frame must not crash the connection's owner.

trio-websocket 0.12 answered such a ping with a pong that wsproto refuses while closing; the
error escaped its reader task and took down the nursery holding the connection (the
simulator's server, or our hub's connection). The peer here is raw wsproto, so the crossing
happens exactly, not by chance.
"""

from __future__ import annotations

import trio
import trio.testing
import trio_websocket
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, CloseConnection, Ping, Request

import tradercoin.exchange.stream  # noqa: F401  (installs tradercoin.exchange.wsfix)


async def test_a_ping_crossing_our_close_ends_the_connection_cleanly(
    autojump_clock: trio.testing.MockClock,
) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    peer = WSConnection(ConnectionType.CLIENT)
    async with trio.open_nursery() as nursery:

        async def accept(
            *, task_status: trio.TaskStatus[trio_websocket.WebSocketConnection]
        ) -> None:
            request = await trio_websocket.wrap_server_stream(nursery, ours)
            task_status.started(await request.accept())

        await theirs.send_all(peer.send(Request(host="sim", target="/ws")))
        connection = await nursery.start(accept)
        peer.receive_data(await theirs.receive_some())
        assert any(isinstance(e, AcceptConnection) for e in peer.events())
        ping = peer.send(Ping(b"crossing"))  # the peer pings ...
        nursery.start_soon(connection.aclose)  # ... as we close
        peer.receive_data(await theirs.receive_some())
        assert any(isinstance(e, CloseConnection) for e in peer.events())
        await theirs.send_all(ping)  # the ping arrives after our close went out
        await trio.sleep(0.5)  # (the crash came here: a pong refused while closing)
        await theirs.send_all(peer.send(CloseConnection(code=1000)))  # then its close reply
        await trio.sleep(0.5)
        assert connection.closed is not None
