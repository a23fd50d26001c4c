"""Bad input gets a 4xx in the one error shape, never a 500 or a traceback."""

from __future__ import annotations

import json
import random
from decimal import Decimal
from typing import Any

import pytest

from tests.fuzzing import random_json
from tests.http.conftest import bearer, register
from tradercoin.exchange.protocol import SymbolInfo
from tradercoin.http.app import MAX_BODY
from tradercoin.http.context import HttpContext

BTC = SymbolInfo(
    symbol="BTCUSDT",
    status="TRADING",
    tick_size=Decimal("0.10"),
    step_size=Decimal("0.001"),
    min_qty=Decimal("0.001"),
    max_qty=Decimal("1000"),
    min_notional=Decimal("100"),
    price_precision=2,
    quantity_precision=3,
)
GOOD = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}


@pytest.fixture
async def token(client: Any, ctx: HttpContext) -> str:
    ctx.symbols = {"BTCUSDT": BTC}
    return await register(client)


async def _error(response: Any, status: int) -> str:
    body = await response.get_data(as_text=True)
    assert response.status_code == status, body
    assert "Traceback" not in body
    answer = json.loads(body)
    assert answer["status"] == "error"
    assert answer["error"]["message"]
    code: str = answer["error"]["code"]
    return code


async def _post(client: Any, token: str, body: Any) -> Any:
    return await client.post("/api/orders", json=body, headers=bearer(token))


async def test_a_valid_order_without_keys_reaches_the_actor_check(client: Any, token: str) -> None:
    assert await _error(await _post(client, token, GOOD), 409) == "no_exchange_keys"


async def test_malformed_json(client: Any, token: str) -> None:
    response = await client.post(
        "/api/orders",
        data='{"symbol": "BTCUSDT",',
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert await _error(response, 400) == "malformed_json"


async def test_a_body_that_is_not_utf8(client: Any, token: str) -> None:
    response = await client.post(
        "/api/orders",
        data=b"\xde\xad\x8d\x00",
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert await _error(response, 400) == "malformed_json"


@pytest.mark.parametrize("opener", ["[", '{"a":'])
async def test_json_nested_too_deeply_is_malformed_not_a_500(
    client: Any, token: str, opener: str
) -> None:
    response = await client.post(
        "/api/orders",
        data=opener * (MAX_BODY // len(opener) - 1),  # json.loads hits its recursion limit
        headers={**bearer(token), "Content-Type": "application/json"},
    )
    assert await _error(response, 400) == "malformed_json"


async def test_json_that_is_not_an_object(client: Any, token: str) -> None:
    assert await _error(await _post(client, token, [GOOD]), 400) == "malformed_json"


async def test_wrong_content_type(client: Any, token: str) -> None:
    response = await client.post(
        "/api/orders",
        data="symbol=BTCUSDT",
        headers={**bearer(token), "Content-Type": "text/plain"},
    )
    assert await _error(response, 415) == "unsupported_media_type"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"quantity": True}, "invalid_request"),
        ({"quantity": [1]}, "invalid_request"),
        ({"symbol": 7}, "invalid_request"),
        ({"side": "buy please"}, "invalid_request"),
        ({"type": "STOP"}, "invalid_request"),
        ({"extra": 1}, "invalid_request"),
        ({"quantity": "0"}, "invalid_quantity"),
        ({"quantity": "-1"}, "invalid_quantity"),
        ({"quantity": "1e400"}, "invalid_quantity"),
        ({"quantity": "NaN"}, "invalid_request"),
        ({"quantity": "0.0001"}, "too_many_decimals"),
        ({"quantity": "0.0015"}, "too_many_decimals"),
        ({"quantity": "5000"}, "invalid_quantity"),
        ({"symbol": "DOGEUSDT"}, "unknown_symbol"),
        ({"symbol": "BTC/USDT"}, "invalid_request"),
        ({"price": "100"}, "invalid_price"),
        ({"type": "LIMIT"}, "invalid_price"),
        ({"type": "LIMIT", "price": "100.123"}, "too_many_decimals"),
        ({"type": "LIMIT", "price": "-5"}, "invalid_price"),
    ],
)
async def test_bad_order_fields(client: Any, token: str, change: dict[str, Any], code: str) -> None:
    assert await _error(await _post(client, token, {**GOOD, **change}), 400) == code


async def test_missing_field(client: Any, token: str) -> None:
    body = {k: v for k, v in GOOD.items() if k != "quantity"}
    response = await _post(client, token, body)
    assert await _error(response, 400) == "invalid_request"
    error = (await response.get_json())["error"]
    assert error == {
        "code": "invalid_request",
        "message": "Quantity is required.",
        "field": "quantity",
    }


# Messages a person can cause, as the issue quoted them, and what they read now.
@pytest.mark.parametrize(
    ("path", "body", "message", "field"),
    [
        (
            "/api/orders",
            {**GOOD, "quantity": "abc"},
            "Quantity must be a number, e.g. 0.01.",
            "quantity",
        ),
        (
            "/api/auth/register",
            {"username": "bad name!", "password": "long enough"},
            "Username may use only letters, digits and . _ @ -.",
            "username",
        ),
        (
            "/api/orders",
            {**GOOD, "quantity": "0.0015"},
            "Quantity must be a multiple of 0.001 (the step size of BTCUSDT).",
            "quantity",
        ),
        (
            "/api/orders",
            {**GOOD, "side": "buy please"},
            "Side must be one of BUY or SELL.",
            "side",
        ),
    ],
)
async def test_errors_are_human_sentences(
    client: Any, token: str, path: str, body: dict[str, Any], message: str, field: str
) -> None:
    response = await client.post(path, json=body, headers=bearer(token))
    assert response.status_code == 400
    error = (await response.get_json())["error"]
    assert (error["message"], error["field"]) == (message, field)
    for library_text in ("Value error", "String should", "pattern", "Input should"):
        assert library_text not in error["message"]


async def test_oversized_body_is_413(client: Any, token: str) -> None:
    body = {**GOOD, "symbol": "X" * (MAX_BODY + 1)}
    assert await _error(await _post(client, token, body), 413) == "body_too_large"


@pytest.mark.parametrize(
    "query",
    [
        "page=0",
        "page=-1",
        "page=abc",
        "page=99999999999",
        "page_size=0",
        "page_size=101",
        "page_size=1.5",
        "status=weird",
        "symbol=%24%24",
        "nope=1",
        "q=" + "x" * 65,
    ],
)
async def test_bad_query(client: Any, token: str, query: str) -> None:
    response = await client.get(f"/api/orders?{query}", headers=bearer(token))
    assert await _error(response, 400) == "invalid_query"


@pytest.mark.parametrize(
    "path", ["/api/orders/999", "/api/orders/abc", "/api/orders/99999999999999999999999"]
)
async def test_unknown_order_ids(client: Any, token: str, path: str) -> None:
    await _error(await client.get(path, headers=bearer(token)), 404)


async def test_unknown_route_and_wrong_method(client: Any) -> None:
    assert await _error(await client.get("/api/nothing"), 404) == "not_found"
    assert await _error(await client.patch("/api/orders"), 405) == "method_not_allowed"


async def test_register_bad_bodies(client: Any) -> None:
    for body in (
        {"username": "al", "password": "long enough"},
        {"username": "alice", "password": "short"},
        {"username": "a lice", "password": "long enough"},
        {"username": "x" * 65, "password": "long enough"},
        {"username": "alice", "password": "long enough", "role": "operator"},
    ):
        response = await client.post("/api/auth/register", json=body)
        assert await _error(response, 400) == "invalid_request"


async def test_poll_policy_needs_an_operator(client: Any, token: str) -> None:
    response = await client.get("/api/admin/users/1/poll-policy", headers=bearer(token))
    assert await _error(response, 403) == "forbidden"
    response = await client.get("/api/admin/actors", headers=bearer(token))
    assert await _error(response, 403) == "forbidden"


async def test_no_order_body_gets_a_server_error(client: Any, token: str) -> None:
    rng = random.Random(5)
    fields = ["symbol", "side", "type", "quantity", "price", "time_in_force", "x"]
    for _ in range(300):
        body = {
            **GOOD,
            **{rng.choice(fields): random_json(rng) for _ in range(rng.randrange(1, 4))},
        }
        response = await _post(client, token, body)
        assert response.status_code < 500, body
        assert (await response.get_json())["status"] == "error"
