"""Fixtures for running our client against the simulator, in-process and over loopback.

``env`` (with ``sim_clock`` among the test's arguments, so that pytest-trio uses the mock
clock in-process) gives a started simulator and a BinanceFutures reaching it: in-process
through httpx.ASGITransport and the simulator's in-memory WebSocket, under MockClock with
autojump; over loopback through serve_simulator, real sockets and clock, no autojump.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import pytest
import trio
import trio.testing
from trio_websocket import open_websocket_url

from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.client import AccountClient, BinanceFutures, http_client
from tradercoin.exchange.protocol import Credentials, PlaceOrder, Usage
from tradercoin.exchange.sim import Simulator, serve_simulator
from tradercoin.exchange.stream import Connect
from tradercoin.orders import OrderType, Side, TimeInForce

EPOCH = 1_780_000_000_000
FILL_LATENCY = 0.5


@dataclass
class Env:
    sim: Simulator
    exchange: BinanceFutures
    ws_url: str
    connect: Connect
    http: httpx.AsyncClient
    usages: list[Usage] = field(default_factory=list)

    def account(self) -> AccountClient:
        api_key, api_secret = self.sim.create_account()
        return self.exchange.for_account(Credentials(api_key, api_secret))


@pytest.fixture(params=["inprocess", "loopback"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim_clock(mode: str) -> trio.testing.MockClock | None:
    """The trio clock of the test (pytest-trio takes a Clock among the test's arguments)."""
    return trio.testing.MockClock(autojump_threshold=0) if mode == "inprocess" else None


@pytest.fixture
async def env(mode: str, nursery: trio.Nursery) -> AsyncIterator[Env]:
    clock = FixedEpochClock(EPOCH)
    sim = Simulator(clock=clock, seed=0, market_fill_latency=FILL_LATENCY)
    await nursery.start(sim.run)
    usages: list[Usage] = []
    if mode == "inprocess":
        transport = httpx.ASGITransport(app=sim.asgi_app)
        async with httpx.AsyncClient(transport=transport) as http:
            exchange = BinanceFutures(
                http, clock=clock, on_usage=usages.append, rest_url="http://sim"
            )
            yield Env(sim, exchange, "ws://sim", sim.open_websocket, http, usages)
    else:
        address = await nursery.start(serve_simulator, sim, "127.0.0.1", 0)
        async with http_client(timeout=10.0) as http:
            exchange = BinanceFutures(
                http, clock=clock, on_usage=usages.append, rest_url=address.rest_url
            )
            yield Env(sim, exchange, address.ws_url, open_websocket_url, http, usages)


def limit(
    cid: str, price: str = "40000.0", qty: str = "0.010", side: Side = Side.BUY
) -> PlaceOrder:
    return PlaceOrder(
        symbol="BTCUSDT",
        side=side,
        type=OrderType.LIMIT,
        quantity=Decimal(qty),
        client_order_id=cid,
        price=Decimal(price),
        time_in_force=TimeInForce.GTC,
    )


def market(cid: str, qty: str = "0.010") -> PlaceOrder:
    return PlaceOrder(
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.MARKET,
        quantity=Decimal(qty),
        client_order_id=cid,
    )
