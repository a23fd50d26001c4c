"""Any answer at all becomes a result or an ExchangeError; never a crash (hypothesis)."""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradercoin.exchange.client import BinanceFutures
from tradercoin.exchange.errors import ExchangeError
from tradercoin.exchange.protocol import Credentials
from tradercoin.orders import ExchangeUpdate

from .peer import ScriptedPeer
from .test_client_scripted import KEY, LIMIT, ORDER, SECRET, StillClock

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
mutated_orders = st.fixed_dictionaries(
    {}, optional={k: json_values | st.just(v) for k, v in ORDER.items()}
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    mutated_orders.map(lambda v: json.dumps(v).encode()),
    st.builds(lambda c, m: json.dumps({"code": c, "msg": m}).encode(), json_values, json_values),
)
statuses = st.sampled_from([200, 201, 302, 400, 401, 403, 404, 408, 418, 429, 500, 502, 503, 504])
headers = st.dictionaries(
    st.sampled_from(["retry-after", "x-mbx-used-weight-1m", "x-mbx-order-count-10s"]),
    st.text(alphabet="0123456789.-e x", max_size=6),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(status=statuses, body=bodies, extra=headers)
async def test_any_answer_is_a_result_or_an_exchange_error(
    status: int, body: bytes, extra: dict[str, str]
) -> None:
    peer = ScriptedPeer()
    peer.then(status, body, headers=extra).then(status, body, headers=extra)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=peer)) as http:
        usages: list[object] = []
        exchange = BinanceFutures(
            http, clock=StillClock(), on_usage=usages.append, rest_url="http://peer"
        )
        account = exchange.for_account(Credentials(KEY, SECRET))
        for call in (lambda: account.place_order(LIMIT), lambda: account.open_orders("BTCUSDT")):
            try:
                result = await call()
            except ExchangeError as exc:
                assert exc.status == status
                assert KEY not in str(exc) and SECRET not in str(exc)
                assert exc.body is None or len(exc.body) <= 200
            else:
                assert 200 <= status < 300
                assert isinstance(result, ExchangeUpdate | list)
        assert len(usages) == 2
