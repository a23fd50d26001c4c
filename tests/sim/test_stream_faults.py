"""stream_reorder (an order's older update re-sent after its newer one) and stream_burst (the
next updates held, then written together), in-process under MockClock."""

from __future__ import annotations

import json
from typing import Any

import httpx
import trio
import trio.testing
import trio_websocket

from tests.sim.conftest import SignedClient
from tradercoin.exchange.sim import Fault, FaultKind, Simulator


async def _key(client: SignedClient) -> str:
    key: str = (await client.keyed("POST", "/fapi/v1/listenKey")).json()["listenKey"]
    return key


async def _stream(sim: Simulator, client: SignedClient) -> Any:
    return sim.open_websocket(f"ws://sim/private/ws?listenKey={await _key(client)}")


async def _updates(ws: Any, within: float = 1.0) -> list[tuple[int, str, str]]:
    """``(orderId, x, X)`` of the ORDER_TRADE_UPDATEs that arrive within ``within`` s."""
    seen = []
    with trio.move_on_after(within):
        while True:
            event = json.loads(await ws.get_message())
            if event["e"] == "ORDER_TRADE_UPDATE":
                seen.append((event["o"]["i"], event["o"]["x"], event["o"]["X"]))
    return seen


async def test_reorder_resends_the_older_update_after_the_newer(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    async with await _stream(sim, client) as ws:
        placed = await client.limit()
        oid = placed["orderId"]
        sim.inject(Fault(FaultKind.STREAM_REORDER), account=client.key)
        sim.fill("BTCUSDT", oid, quantity=sim.orders(client.key)[0].orig_qty / 2)
        sim.fill("BTCUSDT", oid)
        assert await _updates(ws) == [
            (oid, "NEW", "NEW"),
            (oid, "TRADE", "PARTIALLY_FILLED"),
            (oid, "TRADE", "FILLED"),
            (oid, "TRADE", "PARTIALLY_FILLED"),  # the stale one, again
        ]
        assert sim.statistics().faults_hit == 1
        second = await client.limit()
        sim.fill("BTCUSDT", second["orderId"])
        assert [u[2] for u in await _updates(ws)] == ["NEW", "FILLED"]  # count=1: used up


async def test_reorder_resends_the_identical_event_over_admin(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    http: httpx.AsyncClient,
    client: SignedClient,
) -> None:
    async with await _stream(sim, client) as ws:
        armed = await http.post(
            "/sim/admin/faults", json={"kind": "stream_reorder", "account": client.key}
        )
        assert armed.status_code == 200
        placed = await client.limit()
        await client.signed("DELETE", "/fapi/v1/order", symbol="BTCUSDT", orderId=placed["orderId"])
        frames = []
        with trio.move_on_after(1):
            while True:
                frames.append(await ws.get_message())
        assert len(frames) == 3
        assert frames[0] == frames[2] and json.loads(frames[2])["o"]["X"] == "NEW"
        assert json.loads(frames[1])["o"]["X"] == "CANCELED"


async def test_burst_holds_then_delivers_together(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    async with await _stream(sim, client) as ws:
        sim.inject(Fault(FaultKind.STREAM_BURST), account=client.key, count=3)
        first = await client.limit()
        sim.fill("BTCUSDT", first["orderId"])  # TRADE, then an ACCOUNT_UPDATE, both held
        assert await _updates(ws, 60) == []
        third = await client.limit()
        start = trio.current_time()
        frames = [json.loads(await ws.get_message()) for _ in range(4)]
        assert trio.current_time() == start
        assert [(f["e"], f.get("o", {}).get("X")) for f in frames] == [
            ("ORDER_TRADE_UPDATE", "NEW"),
            ("ORDER_TRADE_UPDATE", "FILLED"),
            ("ACCOUNT_UPDATE", None),
            ("ORDER_TRADE_UPDATE", "NEW"),
        ]
        assert frames[3]["o"]["i"] == third["orderId"]
        await client.limit()
        assert len(await _updates(ws)) == 1  # delivered at once again


async def test_burst_ends_after_its_seconds_or_when_cleared(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    async with await _stream(sim, client) as ws:
        sim.inject(Fault(FaultKind.STREAM_BURST, seconds=5), account=client.key, count=10)
        await client.limit()
        await client.limit()
        assert await _updates(ws, 4.9) == []
        assert len(await _updates(ws, 0.2)) == 2
        sim.clear_faults()
        sim.inject(Fault(FaultKind.STREAM_BURST), account=client.key, count=None)
        await client.limit()
        assert await _updates(ws, 600) == []
        sim.clear_faults()
        assert len(await _updates(ws)) == 1


class _Writes:
    """Counts the writes of a memory stream's sender (its send_all hook runs once each)."""

    def __init__(self, stream: trio.testing.MemorySendStream) -> None:
        self.count = 0
        pump = stream.send_all_hook

        async def hook() -> None:
            self.count += 1
            if pump is not None:
                await pump()

        stream.send_all_hook = hook


async def test_burst_is_one_write(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    client: SignedClient,
    nursery: trio.Nursery,
) -> None:
    client_side, server_side = trio.testing.memory_stream_pair()
    writes = _Writes(server_side.send_stream)  # type: ignore[arg-type]

    async def serve() -> None:
        async with trio.open_nursery() as inner:
            request = await trio_websocket.wrap_server_stream(inner, server_side)
            await sim.handle_websocket(request)
            inner.cancel_scope.cancel()

    nursery.start_soon(serve)
    resource = f"/private/ws?listenKey={await _key(client)}"
    ws = await trio_websocket.wrap_client_stream(nursery, client_side, "sim", resource)  # type: ignore[arg-type]
    await trio.testing.wait_all_tasks_blocked()
    handshake = writes.count
    sim.inject(Fault(FaultKind.STREAM_BURST), account=client.key, count=3)
    for _ in range(3):
        await client.limit()
    await trio.testing.wait_all_tasks_blocked()
    assert writes.count - handshake == 1
    assert len(await _updates(ws)) == 3
    await client.limit()
    await trio.testing.wait_all_tasks_blocked()
    assert writes.count - handshake == 2  # an ordinary event: one write of its own
    await ws.aclose()
