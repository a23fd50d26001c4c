"""In-process simulator fixtures: a started Simulator under MockClock (autojump) and a small
signing HTTP client of our own (independent of tradercoin.exchange.client)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import trio

from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.sim import Simulator

EPOCH_MS = 1_790_000_000_000
BASE: dict[str, Any] = {
    "symbol": "BTCUSDT",
    "side": "BUY",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "price": "49000",
    "quantity": "0.010",
}
"""A valid resting BTCUSDT limit order (the mark starts at 50000)."""


class SignedClient:
    """Signs like python-binance: sorted params, timestamp, HMAC hex; body for writes."""

    def __init__(self, http: httpx.AsyncClient, sim: Simulator, key: str, secret: str) -> None:
        self.http, self.sim, self.key, self.secret = http, sim, key, secret

    async def signed(
        self,
        method: str,
        path: str,
        *,
        sign_with: str | None = None,
        timestamp: int | None = None,
        **params: Any,
    ) -> httpx.Response:
        params["timestamp"] = timestamp if timestamp is not None else self.sim.clock.now_ms()
        payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
        secret = (sign_with or self.secret).encode()
        signature = hmac.new(secret, payload.encode(), hashlib.sha256).hexdigest()
        signed = f"{payload}&signature={signature}"
        headers = {"X-MBX-APIKEY": self.key}
        if method == "GET":
            return await self.http.request(method, f"{path}?{signed}", headers=headers)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return await self.http.request(method, path, content=signed.encode(), headers=headers)

    async def keyed(self, method: str, path: str, **params: Any) -> httpx.Response:
        body = urlencode(params).encode() if params else b""
        headers = {"X-MBX-APIKEY": self.key, "Content-Type": "application/x-www-form-urlencoded"}
        return await self.http.request(method, path, content=body, headers=headers)

    async def get(self, order_id: int, symbol: str = "BTCUSDT") -> dict[str, Any]:
        """GET /fapi/v1/order by id: the body (an order or an error)."""
        response = await self.signed("GET", "/fapi/v1/order", symbol=symbol, orderId=order_id)
        body: dict[str, Any] = response.json()
        return body

    async def order(self, **params: Any) -> dict[str, Any]:
        """POST an order that must succeed; returns its body."""
        response = await self.signed("POST", "/fapi/v1/order", **params)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def short(self, quantity: str = "0.010") -> None:
        """Open a short BTCUSDT position at once (a filled SELL MARKET)."""
        await self.order(
            symbol="BTCUSDT",
            side="SELL",
            type="MARKET",
            quantity=quantity,
            newOrderRespType="RESULT",
        )

    async def limit(
        self, side: str = "BUY", price: str = "49000", quantity: str = "0.010", **extra: Any
    ) -> dict[str, Any]:
        return await self.order(
            symbol="BTCUSDT",
            side=side,
            type="LIMIT",
            timeInForce="GTC",
            price=price,
            quantity=quantity,
            **extra,
        )


@pytest.fixture
async def sim(nursery: trio.Nursery) -> Simulator:
    simulator = Simulator(clock=FixedEpochClock(EPOCH_MS), seed=7, volatility_scale=0.0)
    await nursery.start(simulator.run)
    return simulator


@pytest.fixture
async def http(sim: Simulator) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=sim.asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        yield client


@pytest.fixture
def client(sim: Simulator, http: httpx.AsyncClient) -> SignedClient:
    key, secret = sim.create_account()
    return SignedClient(http, sim, key, secret)
