"""``client_order_id`` on ``POST /api/orders``: a retry answers with the order already placed.

Oracle: the simulator's orders of the account.
"""

from __future__ import annotations

import pytest

from tradercoin.testing import open_test_system

MARKET = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}


async def test_the_same_client_order_id_places_once(autojump_clock: object) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        body = {**MARKET, "client_order_id": "retry-me_1"}
        first = await system.http.post("/api/orders", json=body, headers=alice.headers)
        again = await system.http.post("/api/orders", json=body, headers=alice.headers)
        assert first.status_code == again.status_code == 201
        assert first.json()["data"]["id"] == again.json()["data"]["id"]
        assert [o.client_order_id for o in alice.truth()] == ["retry-me_1"]


async def test_client_order_ids_are_per_user(autojump_clock: object) -> None:
    async with open_test_system() as system:
        alice, bob = await system.add_user("alice"), await system.add_user("bob")
        body = {**MARKET, "client_order_id": "same"}
        for user in (alice, bob):
            answer = await system.http.post("/api/orders", json=body, headers=user.headers)
            assert answer.status_code == 201
        assert len(alice.truth()) == len(bob.truth()) == 1


@pytest.mark.parametrize("bad", ["has space", "x" * 37, "", "é", "a\nb"])
async def test_a_bad_client_order_id_is_a_400_naming_the_rule(
    autojump_clock: object, bad: str
) -> None:
    async with open_test_system() as system:
        alice = await system.add_user("alice")
        body = {**MARKET, "client_order_id": bad}
        answer = await system.http.post("/api/orders", json=body, headers=alice.headers)
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["field"] == "client_order_id"
        assert error["message"] == (
            "Client order id must be 1 to 36 of the characters A-Z a-z 0-9 . : / _ -."
        )
        assert alice.truth() == []


async def test_openapi_documents_client_order_id(autojump_clock: object) -> None:
    async with open_test_system() as system:
        spec = (await system.http.get("/openapi.json")).json()
        content = spec["paths"]["/api/orders"]["post"]["requestBody"]["content"]
        field = content["application/json"]["schema"]["properties"]["client_order_id"]
        assert "retry" in field["description"]
        assert {"pattern": r"^[.A-Z:/a-z0-9_-]{1,36}$", "type": "string"} in field["anyOf"]
