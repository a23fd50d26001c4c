"""Weights, 429 then the 418 ban with Retry-After, order counts (in-process, MockClock)."""

from __future__ import annotations

import httpx
import trio
import trio.testing

from tests.sim.conftest import BASE, EPOCH_MS, SignedClient
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.sim import Limits, Simulator


async def _client(nursery: trio.Nursery, limits: Limits) -> SignedClient:
    # EPOCH_MS is 20 s into a minute: windows are fixed minutes of the server clock
    sim = Simulator(clock=FixedEpochClock(EPOCH_MS), limits=limits, volatility_scale=0)
    await nursery.start(sim.run)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.asgi_app), base_url="http://sim")
    key, secret = sim.create_account()
    return SignedClient(http, sim, key, secret)


async def test_429_then_418_ban_then_recovery(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client = await _client(nursery, Limits(weight_per_minute=10, ban_after=2))
    used = [
        (await client.http.get("/fapi/v1/time")).headers["x-mbx-used-weight-1m"] for _ in range(10)
    ]
    assert used == [str(n) for n in range(1, 11)]
    limited = await client.http.get("/fapi/v1/time")
    assert limited.status_code == 429
    assert limited.json() == {
        "code": -1003,
        "msg": "Too many requests; current limit is 10 requests per minute. Please use the "
        "websocket for live updates to avoid polling the API.",
    }
    assert limited.headers["retry-after"] == "40"
    assert (await client.http.get("/fapi/v1/time")).status_code == 429
    banned = await client.http.get("/fapi/v1/time")
    assert banned.status_code == 418 and banned.json()["code"] == -1003
    assert "banned until" in banned.json()["msg"]
    assert banned.headers["retry-after"] == "120"
    await trio.sleep(119)
    assert (await client.http.get("/fapi/v1/time")).status_code == 418
    await trio.sleep(1)
    assert (await client.http.get("/fapi/v1/time")).status_code == 200


async def test_order_count_headers_and_limit(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client = await _client(nursery, Limits(orders_per_10s=2))
    first = await client.signed("POST", "/fapi/v1/order", **BASE)
    assert first.headers["x-mbx-order-count-10s"] == "1"
    assert first.headers["x-mbx-order-count-1m"] == "1"
    assert first.headers["x-mbx-used-weight-1m"] == "0"
    await client.limit()
    third = await client.signed("POST", "/fapi/v1/order", **BASE)
    assert third.status_code == 429 and third.json()["code"] == -1015
    await trio.sleep(10)
    await client.limit()


async def test_exchange_info_limits_follow_config(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client = await _client(nursery, Limits(weight_per_minute=600, orders_per_minute=50))
    limits = (await client.http.get("/fapi/v1/exchangeInfo")).json()["rateLimits"]
    assert limits[0]["limit"] == 600 and limits[1]["limit"] == 50


async def test_bans_double_each_time(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    client = await _client(nursery, Limits(weight_per_minute=1, ban_after=0))
    retry_afters = []
    for _ in range(2):
        await trio.sleep(60 - (client.sim.clock.now_ms() // 1000) % 60)  # a fresh minute
        await client.http.get("/fapi/v1/ping")
        banned = await client.http.get("/fapi/v1/ping")
        assert banned.status_code == 418
        retry_afters.append(int(banned.headers["retry-after"]))
        await trio.sleep(retry_afters[-1])
    assert retry_afters == [120, 240]
