"""Order reads from the store: paging, filters, search, totals, isolation between users."""

from __future__ import annotations

from typing import Any

from tests.http.conftest import add_orders, bearer, register
from tradercoin.store import Store, User


async def _user(store: Store, name: str) -> User:
    user = await store.get_user_by_name(name)
    assert user is not None
    return user


async def test_orders_page_shape_and_total_counts_every_match(client: Any, store: Store) -> None:
    token = await register(client)
    await add_orders(store, await _user(store, "alice"), 25)
    response = await client.get("/api/orders?page=2&page_size=10", headers=bearer(token))
    body = await response.get_json()
    assert response.status_code == 200
    assert body["status"] == "success"
    assert (body["total"], body["page"], body["page_size"]) == (25, 2, 10)
    assert len(body["data"]) == 10


async def test_orders_are_newest_first_with_seed_keys(client: Any, store: Store) -> None:
    token = await register(client)
    await add_orders(store, await _user(store, "alice"), 3)
    body = await (await client.get("/api/orders", headers=bearer(token))).get_json()
    ids = [o["id"] for o in body["data"]]
    assert ids == sorted(ids, reverse=True)
    first = body["data"][0]
    assert first["order_id"] == first["id"]
    assert isinstance(first["timestamp"], int)
    assert first["quantity"] == "0.010"  # money stays a decimal string


async def test_filter_by_status_and_symbol_and_search(client: Any, store: Store) -> None:
    token = await register(client)
    alice = await _user(store, "alice")
    await add_orders(store, alice, 3, symbol="BTCUSDT")
    await add_orders(store, alice, 2, symbol="ETHUSDT")
    by_symbol = await (
        await client.get("/api/orders?symbol=ethusdt", headers=bearer(token))
    ).get_json()
    assert by_symbol["total"] == 2
    by_status = await (
        await client.get("/api/orders?status=filled", headers=bearer(token))
    ).get_json()
    assert by_status["total"] == 0
    pending = await (
        await client.get("/api/orders?status=pending", headers=bearer(token))
    ).get_json()
    assert pending["total"] == 5
    search = await (await client.get("/api/orders?q=ETHUSDT-1", headers=bearer(token))).get_json()
    assert [o["client_order_id"] for o in search["data"]] == [f"tc-{alice.id}-ETHUSDT-1"]


async def test_a_user_sees_only_their_orders(client: Any, store: Store) -> None:
    await register(client, "alice")
    bob_token = await register(client, "bob")
    events = await add_orders(store, await _user(store, "alice"), 2)
    body = await (await client.get("/api/orders", headers=bearer(bob_token))).get_json()
    assert body["total"] == 0
    other = events[0].order.id
    response = await client.get(f"/api/orders/{other}", headers=bearer(bob_token))
    assert response.status_code == 404
    assert (await response.get_json())["error"]["code"] == "order_not_found"


async def test_get_one_order(client: Any, store: Store) -> None:
    token = await register(client)
    events = await add_orders(store, await _user(store, "alice"), 1)
    order_id = events[0].order.id
    response = await client.get(f"/api/orders/{order_id}", headers=bearer(token))
    assert (await response.get_json())["data"]["id"] == order_id


async def test_orders_need_authentication(client: Any) -> None:
    response = await client.get("/api/orders", headers={"Cookie": ""})
    assert response.status_code == 401


async def test_symbols_lists_trading_symbols(client: Any) -> None:
    response = await client.get("/api/symbols")
    assert response.status_code == 200
    assert (await response.get_json())["data"] == []  # this context has no exchange info


async def test_health_and_readiness(client: Any) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200


async def test_metrics_are_prometheus_text_from_the_apps_registry(client: Any) -> None:
    await client.get("/healthz")
    text = await (await client.get("/metrics")).get_data(as_text=True)
    assert 'tradercoin_http_requests_total{method="GET",route="/healthz",status="200"}' in text
    assert (
        'tradercoin_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/healthz"}'
        in text
    )
    assert "tradercoin_ws_sessions" in text


async def test_openapi_documents_the_routes(client: Any) -> None:
    spec = await (await client.get("/openapi.json")).get_json()
    paths = spec["paths"]
    for path in ("/api/orders", "/api/orders/{order_id}", "/api/auth/login", "/api/credentials"):
        assert path in paths
    assert "PlaceOrderBody" in str(spec)
    docs = await client.get("/docs")
    assert docs.status_code == 200


async def test_the_page_is_served_with_a_strict_csp(client: Any) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert "<title>tradercoin" in await response.get_data(as_text=True)
    assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    script = await client.get("/static/main.js")
    assert script.status_code == 200


async def test_pages_of_a_user_without_actor_are_cached_until_keys_change(
    client: Any, store: Store, ctx: Any
) -> None:
    token = await register(client)
    alice = await _user(store, "alice")
    await add_orders(store, alice, 2)
    assert (await (await client.get("/api/orders", headers=bearer(token))).get_json())["total"] == 2
    await add_orders(store, alice, 1, symbol="ETHUSDT")  # behind the service's back
    assert (await (await client.get("/api/orders", headers=bearer(token))).get_json())["total"] == 2
    assert ctx.orders_cache.hits == 1
    keys = {"api_key": "abcdefgh1234", "api_secret": "s" * 16}
    await client.put("/api/credentials", json=keys, headers=bearer(token))
    assert (await (await client.get("/api/orders", headers=bearer(token))).get_json())["total"] == 3


async def test_cached_pages_come_from_the_asgi_fast_path_with_the_same_answer(
    ctx: Any, store: Store
) -> None:
    from tradercoin.http.app import create_app

    app = create_app(ctx)
    client = app.test_client()
    token = await register(client)
    await add_orders(store, await _user(store, "alice"), 3)
    first = await client.get("/api/orders?page=1&page_size=2", headers=bearer(token))
    fast = app.asgi_app.app  # inside the request-id layer (requestid.py)
    assert fast.answered == 0  # a miss: Quart rendered and cached it
    again = await client.get("/api/orders?page_size=2&page=1", headers=bearer(token))
    by_cookie = await client.get("/api/orders?page=1&page_size=2")
    assert fast.answered == 2
    assert await again.get_data() == await first.get_data() == await by_cookie.get_data()
    assert again.headers["Content-Type"] == "application/json"
    bad = await client.get("/api/orders?page=1&page_size=2&x=", headers=bearer(token))
    assert bad.status_code == 400  # anything the fast path would not answer goes to Quart
    assert fast.answered == 2
