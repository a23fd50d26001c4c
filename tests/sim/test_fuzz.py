"""Whatever a client sends, the simulator answers in Binance's shape: never a 500."""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import urlencode

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.sim import Simulator
from tradercoin.exchange.sim.rest import Request
from tradercoin.exchange.sim.routes import ROUTES

NAMES = [
    "symbol",
    "side",
    "type",
    "timeInForce",
    "quantity",
    "price",
    "newClientOrderId",
    "orderId",
    "origClientOrderId",
    "reduceOnly",
    "newOrderRespType",
    "goodTillDate",
    "positionSide",
    "limit",
    "fromId",
    "startTime",
    "endTime",
    "listenKey",
    "recvWindow",
    "leverage",
]
VALUES = st.one_of(
    st.sampled_from(
        [
            "BTCUSDT",
            "BUY",
            "SELL",
            "LIMIT",
            "MARKET",
            "GTC",
            "IOC",
            "FOK",
            "GTX",
            "GTD",
            "0.010",
            "49000",
            "true",
            "1",
            "",
            "-1",
            "1e5",
            "0.0000001",
            "99999999999999999999999",
            "STOP",
            "x" * 40,
        ]
    ),
    st.text(max_size=12),
)
PARAMS = st.dictionaries(st.sampled_from(NAMES) | st.text(max_size=6), VALUES, max_size=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    route=st.sampled_from(sorted(ROUTES)),
    params=PARAMS,
    raw=st.binary(max_size=30),
    in_body=st.booleans(),
    signed=st.booleans(),
)
async def test_no_request_gets_a_500(
    route: tuple[str, str], params: dict[str, str], raw: bytes, in_body: bool, signed: bool
) -> None:
    sim = Simulator(clock=FixedEpochClock(1_790_000_000_000), volatility_scale=0)
    key, secret = sim.create_account()
    if signed:
        params["timestamp"] = str(sim.clock.now_ms())
    encoded = urlencode(params).encode() + (raw if not signed else b"")
    if signed:
        encoded += (
            b"&signature=" + hmac.new(secret.encode(), encoded, hashlib.sha256).hexdigest().encode()
        )
    method, path = route
    request = Request(
        method,
        path,
        b"" if in_body else encoded,
        encoded if in_body else b"",
        {b"x-mbx-apikey": key.encode(), b"content-type": b"application/x-www-form-urlencoded"},
        "127.0.0.1",
    )
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.run)
        response = await sim.handle_http(request)
        nursery.cancel_scope.cancel()
    assert response.status in (200, 400, 401, 404), response.body
    body = json.loads(response.body)
    if response.status != 200:
        assert isinstance(body["code"], int) and body["code"] != -1000
        assert isinstance(body["msg"], str)
