"""-1015 per account: each account's own ORDERS limits, counted per account (not per IP), the
counts on every order answer, and 429 -1015 beyond them."""

from __future__ import annotations

import httpx
import trio
import trio.testing

from tests.sim.conftest import BASE, SignedClient
from tradercoin.exchange.sim import Simulator

ORDER = "/fapi/v1/order"


async def _admin_account(http: httpx.AsyncClient, sim: Simulator, **limits: int) -> SignedClient:
    created = await http.post("/sim/admin/accounts", json=limits)
    assert created.status_code == 200, created.text
    body = created.json()
    return SignedClient(http, sim, body["api_key"], body["api_secret"])


def _counts(response: httpx.Response) -> tuple[str, str]:
    return response.headers["x-mbx-order-count-10s"], response.headers["x-mbx-order-count-1m"]


async def test_limits_are_per_account_not_per_ip(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    busy = await _admin_account(http, sim, orders_per_10s=3, orders_per_minute=5)
    calm = await _admin_account(http, sim)
    answers = [await busy.signed("POST", ORDER, **BASE) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert [_counts(a) for a in answers] == [("1", "1"), ("2", "2"), ("3", "3"), ("4", "4")]
    assert answers[3].json() == {
        "code": -1015,
        "msg": "Too many new orders; current limit is 3 orders per TEN_SECONDS.",
    }
    assert answers[3].headers["retry-after"] == "10"
    assert len(sim.orders(busy.key)) == 3
    other = await calm.signed("POST", ORDER, **BASE)  # same IP, its own count
    assert (other.status_code, _counts(other)) == (200, ("1", "1"))


async def test_minute_limit_and_windows(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    busy = await _admin_account(http, sim, orders_per_10s=3, orders_per_minute=5)
    for _ in range(3):
        await busy.signed("POST", ORDER, **BASE)
    await trio.sleep(10)  # a new 10 s window, the same minute (the clock is 20 s into it)
    fourth = await busy.signed("POST", ORDER, **BASE)
    fifth = await busy.signed("POST", ORDER, **BASE)
    sixth = await busy.signed("POST", ORDER, **BASE)
    assert [_counts(r) for r in (fourth, fifth, sixth)] == [("1", "4"), ("2", "5"), ("3", "6")]
    assert sixth.status_code == 429
    assert sixth.json()["msg"] == "Too many new orders; current limit is 5 orders per MINUTE."
    assert sixth.headers["retry-after"] == "30"
    await trio.sleep(30)
    assert (await busy.signed("POST", ORDER, **BASE)).status_code == 200


async def test_defaults_and_rate_limit_order_endpoint(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    default = await _admin_account(http, sim)
    own = await _admin_account(http, sim, orders_per_10s=7)
    limits = {}
    for client in (default, own):
        answer = await client.signed("GET", "/fapi/v1/rateLimit/order")
        limits[client.key] = [(x["interval"], x["intervalNum"], x["limit"]) for x in answer.json()]
    assert limits[default.key] == [("SECOND", 10, 300), ("MINUTE", 1, 1200)]
    assert limits[own.key] == [("SECOND", 10, 7), ("MINUTE", 1, 1200)]
    sim.set_order_limits(default.key, per_10s=1, per_minute=2)
    await default.signed("POST", ORDER, **BASE)
    assert (await default.signed("POST", ORDER, **BASE)).json()["code"] == -1015


async def test_refused_orders_carry_the_counts_too(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    bad = await client.signed("POST", ORDER, **{**BASE, "price": "49000.05"})
    assert bad.status_code == 400 and bad.json()["code"] != -1015
    fok = await client.signed("POST", ORDER, **{**BASE, "timeInForce": "FOK"})
    assert fok.json()["code"] == -5021
    assert [_counts(bad), _counts(fok)] == [("1", "1"), ("2", "2")]


async def test_admin_refuses_bad_limits(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    for body in ({"orders_per_10s": 0}, {"orders_per_minute": "5"}, {"orders_per_10s": 1.5}):
        refused = await http.post("/sim/admin/accounts", json=body)
        assert refused.status_code == 400 and refused.json()["code"] == -1102, body
    assert sim.statistics().accounts == 0
