"""Injected faults, in-process: REST answers, drops, latency, visibility, stream faults."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import trio_websocket

from tests.sim.conftest import BASE, SignedClient
from tradercoin.exchange.sim import Fault, FaultKind, Simulator

ORDER = "/fapi/v1/order"


async def _post(client: SignedClient, **extra: Any) -> httpx.Response:
    return await client.signed("POST", ORDER, **{**BASE, **extra})


@pytest.mark.parametrize(
    ("kind", "status", "created"),
    [
        (FaultKind.UNKNOWN_ERROR, 503, True),
        (FaultKind.TIMEOUT, 408, True),
        (FaultKind.NO_CODE_5XX, 503, True),
        (FaultKind.UNAVAILABLE, 503, False),
        (FaultKind.THROTTLED, 503, False),
        (FaultKind.WAF_HTML, 403, False),
    ],
)
async def test_error_faults(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    client: SignedClient,
    kind: FaultKind,
    status: int,
    created: bool,
) -> None:
    sim.inject(Fault(kind), path=ORDER)
    response = await _post(client, newClientOrderId="c1")
    assert response.status_code == status
    assert len(sim.orders(client.key)) == int(created)
    assert (await _post(client)).status_code == 200  # count=1: used up


async def test_error_fault_bodies(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    bodies = []
    for kind in (
        FaultKind.UNKNOWN_ERROR,
        FaultKind.UNAVAILABLE,
        FaultKind.THROTTLED,
        FaultKind.TIMEOUT,
        FaultKind.NO_CODE_5XX,
        FaultKind.WAF_HTML,
    ):
        sim.inject(Fault(kind), path=ORDER)
        bodies.append(await _post(client))
    assert bodies[0].json() == {
        "code": -1000,
        "msg": "Unknown error, please check your request or try again later.",
    }
    assert bodies[1].json() == {"code": -1001, "msg": "Service Unavailable."}
    assert bodies[2].json()["code"] == -1008
    assert bodies[3].json()["code"] == -1007
    assert "code" not in bodies[4].json() and bodies[4].json()["path"] == ORDER
    assert bodies[5].headers["content-type"] == "text/html"
    assert bodies[5].text.startswith("<html>")


async def test_throttle_exempts_reduce_only(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    await client.short()
    sim.inject(Fault(FaultKind.THROTTLED), path=ORDER)
    assert (await _post(client, reduceOnly="true")).status_code == 200
    assert (await _post(client)).json()["code"] == -1008


async def test_faults_match_path_and_account(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    client: SignedClient,
    http: httpx.AsyncClient,
) -> None:
    other_key, other_secret = sim.create_account()
    other = SignedClient(http, sim, other_key, other_secret)
    sim.inject(Fault(FaultKind.UNAVAILABLE), account=client.key, count=None)
    assert (await _post(other)).status_code == 200
    for _ in range(3):
        assert (await client.signed("GET", "/fapi/v1/openOrders")).status_code == 503
    sim.clear_faults()
    assert (await client.signed("GET", "/fapi/v1/openOrders")).status_code == 200
    sim.inject(Fault(FaultKind.UNAVAILABLE), path="/fapi/v1/openOrders", count=2)
    assert (await _post(client)).status_code == 200
    statuses = [(await client.signed("GET", "/fapi/v1/openOrders")).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]


async def test_latency_on_the_sim_clock(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    sim.inject(Fault(FaultKind.LATENCY, seconds=12.5), path=ORDER)
    start = trio.current_time()
    with trio.move_on_after(10):
        await _post(client)
    assert trio.current_time() - start == 10
    assert sim.orders(client.key) == []  # the client gave up before it was processed


async def test_drops_raise_transport_errors(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    sim.inject(Fault(FaultKind.DROP_REQUEST), path=ORDER)
    with pytest.raises(httpx.TransportError):
        await _post(client)
    assert sim.orders(client.key) == []
    sim.inject(Fault(FaultKind.DROP_RESPONSE), path=ORDER)
    with pytest.raises(httpx.TransportError):
        await _post(client, newClientOrderId="lost-answer")
    assert [o.client_order_id for o in sim.orders(client.key)] == ["lost-answer"]


async def test_visibility_delay(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    sim.inject(Fault(FaultKind.VISIBILITY_DELAY, seconds=3), path=ORDER)
    placed = await client.limit()
    assert (await client.get(placed["orderId"]))["code"] == -2013
    assert (await client.signed("GET", "/fapi/v1/openOrders")).json() == []
    await trio.sleep(3)
    assert (await client.get(placed["orderId"]))["status"] == "NEW"


async def _stream(sim: Simulator, client: SignedClient) -> Any:
    key = (await client.keyed("POST", "/fapi/v1/listenKey")).json()["listenKey"]
    return sim.open_websocket(f"ws://sim/private/ws?listenKey={key}")


async def _event(ws: Any, within: float = 1.0) -> dict[str, Any] | None:
    """The next event, or None when none comes within ``within`` virtual seconds."""
    with trio.move_on_after(within):
        message: dict[str, Any] = json.loads(await ws.get_message())
        return message
    return None


async def test_stream_duplicate_and_drop(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    async with await _stream(sim, client) as ws:
        sim.inject(Fault(FaultKind.STREAM_DUPLICATE), account=client.key)
        first = await client.limit()
        assert await _event(ws) == await _event(ws)
        sim.inject(Fault(FaultKind.STREAM_DROP), account=client.key)
        await client.limit()
        third = await client.limit()
        event = await _event(ws)
        assert event is not None and event["o"]["i"] == third["orderId"] == first["orderId"] + 2


async def test_stream_delay(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    async with await _stream(sim, client) as ws:
        sim.inject(Fault(FaultKind.STREAM_DELAY, seconds=30), account=client.key)
        late = await client.limit()
        early = await client.limit()
        start = trio.current_time()
        first = await _event(ws)
        assert first is not None and first["o"]["i"] == early["orderId"]
        second = await _event(ws, 60)
        assert second is not None and second["o"]["i"] == late["orderId"]
        assert trio.current_time() - start == 30


async def test_silent_stream_keeps_pinging(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    async with await _stream(sim, client) as ws:
        sim.inject(Fault(FaultKind.STREAM_SILENT), account=client.key, count=None)
        await client.limit()
        assert await _event(ws, 900) is None  # pings and pongs went on meanwhile
        sim.clear_faults()
        await client.limit()
        assert await _event(ws) is not None


async def test_immediate_expiry_and_disconnect(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    async with await _stream(sim, client) as ws:
        sim.inject(Fault(FaultKind.LISTEN_KEY_EXPIRED), account=client.key)
        expired = await _event(ws)
        assert expired is not None and expired["e"] == "listenKeyExpired"
    async with await _stream(sim, client) as ws:
        sim.inject(Fault(FaultKind.DISCONNECT), account=client.key)
        with pytest.raises(trio_websocket.ConnectionClosed):
            await ws.get_message()


async def test_admin_routes(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    created = (await http.post("/sim/admin/accounts")).json()
    client = SignedClient(http, sim, created["api_key"], created["api_secret"])
    placed = await client.limit()
    price = await http.post("/sim/admin/price", json={"symbol": "BTCUSDT", "price": "48000"})
    assert price.json() == {"symbol": "BTCUSDT", "price": "48000.00"}
    assert (await client.get(placed["orderId"]))["status"] == "FILLED"
    fault = await http.post("/sim/admin/faults", json={"kind": "unavailable", "path": ORDER})
    assert fault.status_code == 200
    assert (await _post(client)).status_code == 503
    bad = await http.post("/sim/admin/faults", json={"kind": "nonsense"})
    assert bad.status_code == 400 and bad.json()["code"] == -1102
    stats = (await http.get("/sim/admin/statistics")).json()
    assert stats["orders_created"] == 1 and stats["fills"] == 1
    orders = (await http.get(f"/sim/admin/orders?api_key={client.key}")).json()
    assert orders[0]["status"] == "FILLED"


async def test_admin_rejects_nonsense_values(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    for body in (
        {"kind": "latency", "seconds": "nan"},
        {"kind": "latency", "seconds": -1},
        {"kind": "unavailable", "count": "x"},
    ):
        response = await http.post("/sim/admin/faults", json=body)
        assert response.status_code == 400 and response.json()["code"] == -1102
    for price in ("Infinity", "NaN", "-5", "abc"):
        response = await http.post("/sim/admin/price", json={"symbol": "BTCUSDT", "price": price})
        assert response.status_code == 400, price
    assert sim.mark("BTCUSDT") == Decimal("50000")
    unknown = await http.post("/sim/admin/fill", json={"symbol": "BTCUSDT", "orderId": 1})
    assert unknown.status_code == 400
