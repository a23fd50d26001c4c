"""HTTP 500, 502 and 504 answered after the request was processed: the order exists, the
cancel happened, and only the answer says otherwise."""

from __future__ import annotations

import httpx
import pytest
import trio
import trio.testing

from tests.sim.conftest import BASE, SignedClient
from tradercoin.exchange.sim import Fault, FaultKind, Simulator

ORDER = "/fapi/v1/order"
KINDS = [(FaultKind.HTTP_500, 500), (FaultKind.HTTP_502, 502), (FaultKind.HTTP_504, 504)]


@pytest.mark.parametrize(("kind", "status"), KINDS)
async def test_place_is_done_whatever_the_answer(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    client: SignedClient,
    kind: FaultKind,
    status: int,
) -> None:
    sim.inject(Fault(kind), path=ORDER, account=client.key)
    answer = await client.signed("POST", ORDER, **BASE, newClientOrderId="lost-answer")
    assert answer.status_code == status
    [truth] = sim.orders(client.key)
    assert (truth.client_order_id, truth.status) == ("lost-answer", "NEW")
    found = await client.signed("GET", ORDER, symbol="BTCUSDT", origClientOrderId="lost-answer")
    assert found.json()["orderId"] == truth.order_id
    assert sim.statistics().faults_hit == 1


@pytest.mark.parametrize(("kind", "status"), KINDS)
async def test_cancels_are_done_whatever_the_answer(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    client: SignedClient,
    kind: FaultKind,
    status: int,
) -> None:
    one, two = await client.limit(), await client.limit()
    sim.inject(Fault(kind), path=ORDER)
    cancel = await client.signed("DELETE", ORDER, symbol="BTCUSDT", orderId=one["orderId"])
    assert cancel.status_code == status
    sim.inject(Fault(kind), path="/fapi/v1/allOpenOrders")
    every = await client.signed("DELETE", "/fapi/v1/allOpenOrders", symbol="BTCUSDT")
    assert every.status_code == status
    assert [o.status for o in sim.orders(client.key)] == ["CANCELED", "CANCELED"]
    assert two["orderId"] == one["orderId"] + 1


async def test_bodies(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    answers = []
    for kind, _ in KINDS:
        sim.inject(Fault(kind), path=ORDER)
        answers.append(await client.signed("POST", ORDER, **BASE))
    internal, gateway, timeout = answers
    assert internal.json()["code"] == -1000
    assert internal.headers["content-type"] == "application/json"
    assert gateway.headers["content-type"] == timeout.headers["content-type"] == "text/html"
    assert "<h1>502 Bad Gateway</h1>" in gateway.text
    assert "<h1>504 Gateway Time-out</h1>" in timeout.text
    assert len(sim.orders(client.key)) == 3


async def test_selected_by_account_and_count_over_admin(
    autojump_clock: trio.testing.MockClock,
    sim: Simulator,
    http: httpx.AsyncClient,
    client: SignedClient,
) -> None:
    key, secret = sim.create_account()
    bystander = SignedClient(http, sim, key, secret)
    armed = await http.post(
        "/sim/admin/faults",
        json={"kind": "http_502", "path": ORDER, "account": client.key, "count": 2},
    )
    assert armed.status_code == 200
    assert (await bystander.signed("POST", ORDER, **BASE)).status_code == 200
    statuses = [(await client.signed("POST", ORDER, **BASE)).status_code for _ in range(3)]
    assert statuses == [502, 502, 200]
    assert len(sim.orders(client.key)) == 3
