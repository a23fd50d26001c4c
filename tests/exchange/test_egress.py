"""``--egress-address``: the REST pool and the user-stream WebSockets leave from the given
local address, so the exchange (the simulator over loopback, which counts per client IP) sees
each instance as its own IP. Real sockets: no autojump."""

from __future__ import annotations

import pytest
import trio
from trio_websocket import ConnectionRejected, HandshakeError

from tradercoin.clock import system_clock
from tradercoin.exchange.client import http_client
from tradercoin.exchange.egress import open_websocket_from, websocket_connector
from tradercoin.exchange.sim import SimAddress, Simulator, serve_simulator


@pytest.fixture
async def served(nursery: trio.Nursery) -> tuple[Simulator, SimAddress]:
    sim = Simulator(clock=system_clock(), seed=1)
    await nursery.start(sim.run)
    address = await nursery.start(serve_simulator, sim, "127.0.0.1", 0)
    return sim, address


async def test_rest_weight_is_counted_for_the_egress_address(
    served: tuple[Simulator, SimAddress],
) -> None:
    sim, address = served
    async with http_client(local_address="127.0.0.2") as http:
        response = await http.get(f"{address.rest_url}/fapi/v1/exchangeInfo")
    assert response.status_code == 200
    stats = sim.statistics()
    assert set(stats.weight_by_ip) == {"127.0.0.2"}
    assert stats.weight_by_ip["127.0.0.2"] == stats.weight_used > 0


async def test_streams_are_counted_for_the_egress_address(
    served: tuple[Simulator, SimAddress],
) -> None:
    sim, address = served
    url = f"{address.ws_url}/private/stream"
    async with open_websocket_from(url, "127.0.0.3"), websocket_connector("127.0.0.4")(url):
        assert sim.statistics().stream_connections_by_ip == {"127.0.0.3": 1, "127.0.0.4": 1}
    assert set(sim.statistics().connection_rules.attempts_in_window) == {"127.0.0.3", "127.0.0.4"}


async def test_a_refused_handshake_is_raised_bare(served: tuple[Simulator, SimAddress]) -> None:
    _, address = served
    with pytest.raises(ConnectionRejected) as caught:
        async with open_websocket_from(f"{address.ws_url}/no/such/route", "127.0.0.2"):
            pass
    assert caught.value.status_code == 404


async def test_no_server_is_a_handshake_error() -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: the connection is refused
        with pytest.raises(HandshakeError):
            async with open_websocket_from(f"ws://127.0.0.1:{port}/x", "127.0.0.2"):
                pass


async def test_an_error_of_the_body_is_raised_bare(served: tuple[Simulator, SimAddress]) -> None:
    _, address = served
    with pytest.raises(KeyError):
        async with open_websocket_from(f"{address.ws_url}/private/stream", "127.0.0.2"):
            raise KeyError("mine")


def test_without_an_address_the_library_default_is_used() -> None:
    from trio_websocket import open_websocket_url

    assert websocket_connector(None) is open_websocket_url
