"""A signed request that waits in the client's queue is stamped when it leaves.

Found by the 10,000-user soak: requests were signed before they queued behind the
``max_in_flight`` limit, so a queue longer than the 5 s ``recvWindow`` made the exchange refuse
them with -1021, and each refusal cost a ``GET /fapi/v1/time`` and a resend. The oracle is the
simulator's count of requests by path.
"""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing

from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.client import BinanceFutures
from tradercoin.exchange.protocol import Credentials
from tradercoin.exchange.sim import Fault, FaultKind, Simulator

EPOCH = 1_780_000_000_000
OPEN_ORDERS = "/fapi/v1/openOrders"


@pytest.fixture
def mock_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


async def test_a_request_queued_past_the_recv_window_is_accepted_at_once(
    mock_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    clock = FixedEpochClock(EPOCH)
    sim = Simulator(clock=clock, seed=0)
    await nursery.start(sim.run)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.asgi_app)) as http:
        exchange = BinanceFutures(http, clock=clock, rest_url="http://sim", max_in_flight=1)
        await exchange.sync_time()
        account = exchange.for_account(Credentials(*sim.create_account()))
        sim.inject(Fault(FaultKind.LATENCY, seconds=12.0), path=OPEN_ORDERS, count=1)
        done: list[int] = []

        async def ask() -> None:
            done.append(len(await account.open_orders("BTCUSDT")))

        async with trio.open_nursery() as callers:
            callers.start_soon(ask)  # holds the one slot for 12 s
            await trio.sleep(0.1)
            callers.start_soon(ask)  # waits 12 s in the queue, over the 5 s recvWindow
        assert done == [0, 0]
        stats = sim.statistics()
        assert stats.faults_hit  # the slow answer happened: the second one really queued
        assert stats.requests_by_path[OPEN_ORDERS] == 2  # no refusal, so no resend
        assert stats.requests_by_path.get("/fapi/v1/time", 0) == 1  # the first sync only
