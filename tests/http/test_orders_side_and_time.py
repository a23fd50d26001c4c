"""``GET /api/orders``: side and creation-time filters, answered by the store's query (the
expected pages are computed here from what was seeded), and bad values refused in a sentence."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from tests.http.conftest import bearer, register
from tradercoin.orders import OrderType, Side, TimeInForce, new_order
from tradercoin.store import Store

T0 = 1_764_720_000_000
# (side, symbol, created_at): both sides, two symbols, an hour apart
SEEDED = [
    (Side.BUY if i % 3 else Side.SELL, "ETHUSDT" if i % 2 else "BTCUSDT", T0 + i * 3_600_000)
    for i in range(12)
]


async def _seed(client: Any, store: Store) -> dict[str, str]:
    token = await register(client)
    user = await store.get_user_by_name("alice")
    assert user is not None
    changes = [
        new_order(
            user_id=user.id,
            symbol=symbol,
            side=side,
            type=OrderType.LIMIT,
            quantity=Decimal("0.010"),
            price=Decimal(1000 + i),
            time_in_force=TimeInForce.GTC,
            client_order_id=f"c{i}",
            now=at,
        )
        for i, (side, symbol, at) in enumerate(SEEDED)
    ]
    await store.apply(changes)
    return bearer(token)


def _expected(
    side: str | None, since: int | None, until: int | None, symbol: str | None
) -> set[str]:
    return {
        f"c{i}"
        for i, (s, sym, at) in enumerate(SEEDED)
        if (side is None or s.value == side)
        and (since is None or at >= since)
        and (until is None or at < until)
        and (symbol is None or sym == symbol)
    }


@pytest.mark.parametrize(
    ("side", "since", "until", "symbol"),
    [
        ("SELL", None, None, None),
        ("BUY", None, None, "ETHUSDT"),
        (None, T0 + 3 * 3_600_000, None, None),
        (None, None, T0 + 5 * 3_600_000, None),
        ("BUY", T0 + 2 * 3_600_000, T0 + 9 * 3_600_000, None),
        ("SELL", T0 + 3 * 3_600_000, T0 + 3 * 3_600_000, None),  # an empty span
    ],
)
async def test_side_and_time_filter_in_the_query(
    client: Any,
    store: Store,
    side: str | None,
    since: int | None,
    until: int | None,
    symbol: str | None,
) -> None:
    headers = await _seed(client, store)
    given = {"side": side, "from": since, "to": until, "symbol": symbol, "page_size": 5}
    query = "&".join(f"{k}={v}" for k, v in given.items() if v is not None)
    want = _expected(side, since, until, symbol)
    got: list[str] = []
    for page in (1, 2, 3):
        answer = await client.get(f"/api/orders?{query}&page={page}", headers=headers)
        assert answer.status_code == 200, await answer.get_data()
        body = await answer.get_json()
        assert body["total"] == len(want)
        got += [o["client_order_id"] for o in body["data"]]
    assert sorted(got) == sorted(want) and len(got) == len(want)


@pytest.mark.parametrize(
    ("query", "sentence"),
    [
        ("side=LONG", "Side must be BUY or SELL."),
        ("from=yesterday", "From must be a time in milliseconds since 1970"),
        ("to=-5", "To must be a time in milliseconds since 1970"),
        ("from=%D9%A1%D9%A2", "From must be a time in milliseconds since 1970"),  # Arabic digits
        ("to=99999999999999999999", "To must be a time in milliseconds since 1970"),
        (f"from={T0 + 1}&to={T0}", "From must not be later than To."),
    ],
)
async def test_bad_side_or_time_is_a_400_sentence(
    client: Any, store: Store, query: str, sentence: str
) -> None:
    headers = await _seed(client, store)
    answer = await client.get(f"/api/orders?{query}", headers=headers)
    assert answer.status_code == 400
    body = await answer.get_json()
    assert body["error"]["message"].startswith(sentence)


async def test_openapi_documents_side_from_and_to(client: Any) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    names = {p["name"] for p in spec["paths"]["/api/orders"]["get"]["parameters"]}
    assert {"side", "from", "to"} <= names
