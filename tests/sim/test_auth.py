"""Signatures, API keys, timing and parameter parsing: Binance's codes, messages, statuses."""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

import httpx
import trio
import trio.testing

from tests.sim.conftest import SignedClient
from tradercoin.exchange.sim import Fault, FaultKind, Simulator
from tradercoin.exchange.sim.auth import sign_hmac

VECTOR_SECRET = b"2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
VECTOR_PAYLOAD = (
    b"symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
    b"&recvWindow=5000&timestamp=1591702613943"
)


def test_reference_signature_vector() -> None:
    assert sign_hmac(VECTOR_SECRET, VECTOR_PAYLOAD) == (
        "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    )


def test_reference_mixed_query_and_body_vector() -> None:
    mixed = (
        b"symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
        b"quantity=1&price=9000&recvWindow=5000&timestamp=1591702613943"
    )
    assert sign_hmac(VECTOR_SECRET, mixed) == (
        "30baaf0fab549bbeda7f5ef201898b34122da25fd23c646cac2c529aebe670a4"
    )


async def test_mixed_query_and_body_signature_and_query_wins(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC&price=48000"
    body = f"quantity=0.010&price=1&timestamp={client.sim.clock.now_ms()}"
    signature = (
        hmac.new(client.secret.encode(), (query + body).encode(), hashlib.sha256)
        .hexdigest()
        .upper()
    )
    response = await client.http.post(
        f"/fapi/v1/order?{query}",
        content=f"{body}&signature={signature}",
        headers={"X-MBX-APIKEY": client.key, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["price"] == "48000.00"


async def test_bad_signature_is_1022(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    response = await client.signed("GET", "/fapi/v1/openOrders", sign_with="wrong")
    assert response.status_code == 400
    assert response.json() == {"code": -1022, "msg": "Signature for this request is not valid."}


async def test_missing_signature_is_1102(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    response = await client.http.get(
        f"/fapi/v1/openOrders?timestamp={client.sim.clock.now_ms()}",
        headers={"X-MBX-APIKEY": client.key},
    )
    assert response.json()["code"] == -1102


async def test_api_key_errors_are_401(
    autojump_clock: trio.testing.MockClock, client: SignedClient, http: httpx.AsyncClient
) -> None:
    missing = await http.get("/fapi/v1/openOrders?timestamp=1&signature=00")
    assert (missing.status_code, missing.json()["code"]) == (401, -2014)
    unknown = await http.get(
        "/fapi/v1/openOrders?timestamp=1&signature=00", headers={"X-MBX-APIKEY": "A" * 64}
    )
    assert unknown.status_code == 401
    assert unknown.json() == {
        "code": -2015,
        "msg": "Invalid API-key, IP, or permissions for action.",
    }


async def test_timestamp_window_both_messages(
    autojump_clock: trio.testing.MockClock, client: SignedClient
) -> None:
    now = client.sim.clock.now_ms()
    stale = await client.signed("GET", "/fapi/v1/openOrders", timestamp=now - 5001)
    assert stale.json() == {
        "code": -1021,
        "msg": "Timestamp for this request is outside of the recvWindow.",
    }
    ahead = await client.signed("GET", "/fapi/v1/openOrders", timestamp=now + 1000)
    assert ahead.json()["msg"] == (
        "Timestamp for this request was 1000ms ahead of the server's time."
    )
    wide = await client.signed("GET", "/fapi/v1/openOrders", timestamp=now - 9000, recvWindow=10000)
    assert wide.status_code == 200


async def test_server_clock_skew_fault(
    autojump_clock: trio.testing.MockClock, sim: Simulator, client: SignedClient
) -> None:
    sim.inject(Fault(FaultKind.CLOCK_SKEW, seconds=30))
    skewed = await client.signed("GET", "/fapi/v1/openOrders")
    assert skewed.json()["code"] == -1021
    server = (await client.http.get("/fapi/v1/time")).json()["serverTime"]
    assert server == sim.clock.now_ms() + 30_000
    sim.clear_faults()
    assert (await client.signed("GET", "/fapi/v1/openOrders")).status_code == 200


async def test_ed25519_account(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    api_key, private = sim.create_ed25519_account()
    payload = f"symbol=BTCUSDT&timestamp={sim.clock.now_ms()}"
    signature = quote(base64.b64encode(private.sign(payload.encode())).decode(), safe="")
    ok = await http.get(
        f"/fapi/v1/openOrders?{payload}&signature={signature}", headers={"X-MBX-APIKEY": api_key}
    )
    assert ok.status_code == 200, ok.text
    bad = await http.get(
        f"/fapi/v1/openOrders?{payload}&signature=AAAA", headers={"X-MBX-APIKEY": api_key}
    )
    assert bad.json()["code"] == -1022


async def test_malformed_requests_get_binance_errors(
    autojump_clock: trio.testing.MockClock, client: SignedClient, http: httpx.AsyncClient
) -> None:
    unknown = await http.get("/fapi/v1/nothing")
    assert unknown.status_code == 404 and unknown.json()["code"] == -5000
    assert unknown.headers["x-mbx-used-weight-1m"] == "0"
    garbage = await http.post(
        "/fapi/v1/order", content=b"\xff\xfe=\x00", headers={"X-MBX-APIKEY": client.key}
    )
    assert garbage.status_code == 400 and garbage.json()["code"] == -1100
    dup = await http.get("/fapi/v1/order?symbol=A&symbol=B", headers={"X-MBX-APIKEY": client.key})
    assert dup.json()["code"] == -1101
    bad_ts = await http.get(
        "/fapi/v1/openOrders?timestamp=abc&signature=00", headers={"X-MBX-APIKEY": client.key}
    )
    assert bad_ts.status_code == 400 and bad_ts.json()["code"] in (-1022, -1100)
    for response in (unknown, garbage, dup, bad_ts):
        assert response.headers["content-type"] == "application/json"


async def test_python_binance_constructor_routes(
    autojump_clock: trio.testing.MockClock, sim: Simulator, http: httpx.AsyncClient
) -> None:
    assert (await http.get("/api/v3/ping")).json() == {}
    assert (await http.get("/api/v3/time")).json() == {"serverTime": sim.clock.now_ms()}
    info = (await http.get("/fapi/v1/exchangeInfo")).json()
    assert info["rateLimits"][0] == {
        "rateLimitType": "REQUEST_WEIGHT",
        "interval": "MINUTE",
        "intervalNum": 1,
        "limit": 2400,
    }
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    assert btc["filters"][0]["tickSize"] == "0.10"
