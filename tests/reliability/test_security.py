"""Security on the whole service over real sockets (tests/inproc.py): isolation on every
route and on /ws, operator routes for operators only, secrets that never leak, and the
session rules (throttled logins, strict cookies, /ws Origin).

Ciphertexts bound to their user (AES-GCM associated data): a credentials row copied to
another user does not decrypt, tests/store/test_users.py::
test_row_copied_to_another_user_does_not_decrypt (and tests/store/test_secrets.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from tests.inproc import next_message, register, running_service, ws_url
from tradercoin.service import Service
from tradercoin.store import Role

LIVE_TIMEOUT = 30  # a MARKET order fills after the simulator's latency; polls every 5 s
Headers = dict[str, str]


@dataclass
class World:
    """A running service with alice and bob (users) and root (operator); alice has one
    filled and one open order, bob one open order."""

    service: Service
    http: httpx.AsyncClient
    alice: Headers
    bob: Headers
    root: Headers
    alice_id: int
    bob_id: int
    alice_orders: list[dict[str, Any]] = field(default_factory=list)
    bob_orders: list[dict[str, Any]] = field(default_factory=list)

    @property
    def open_order(self) -> dict[str, Any]:
        return self.alice_orders[1]

    def ws_base(self) -> str:
        return self.service.url.replace("http://", "ws://")


async def _wait_statuses(ws: Any, wanted: set[tuple[int, str]]) -> None:
    """Until every ``(order id, status)`` in ``wanted`` has come as an order_update."""
    with trio.fail_after(LIVE_TIMEOUT):
        while wanted:
            update = (await next_message(ws, "order_update"))["data"]
            wanted.discard((update["id"], update["status"]))


async def _place(w: World, who: Headers, **body: str) -> dict[str, Any]:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010", **body}
    response = await w.http.post("/api/orders", json=order, headers=who)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def _far_limit(w: World) -> dict[str, str]:
    price = (w.service.simulator.mark("BTCUSDT") * Decimal("0.9")).quantize(Decimal("0.1"))
    return {"type": "LIMIT", "price": str(price), "time_in_force": "GTC"}


async def _login(http: httpx.AsyncClient, name: str, password: str) -> httpx.Response:
    response = await http.post("/api/auth/login", json={"username": name, "password": password})
    http.cookies.clear()
    return response


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with (
        running_service(tmp_path) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        alice, bob = await register(http, "alice"), await register(http, "bob")
        hashed = await service.ctx.passwords.hash("root pass 1")
        await service.store.create_user("root", hashed, Role.OPERATOR)
        login = await _login(http, "root", "root pass 1")
        root = {"Authorization": f"Bearer {login.json()['token']}"}
        me = [(await http.get("/api/auth/me", headers=h)).json()["data"] for h in (alice, bob)]
        w = World(service, http, alice, bob, root, me[0]["id"], me[1]["id"])
        async with open_websocket_url(ws_url(service, alice)) as ws:
            await next_message(ws, "hello")
            w.alice_orders.append(await _place(w, alice))
            w.alice_orders.append(await _place(w, alice, **_far_limit(w)))
            filled, new = w.alice_orders[0]["id"], w.alice_orders[1]["id"]
            await _wait_statuses(ws, {(filled, "filled"), (new, "new")})
        w.bob_orders.append(await _place(w, bob, **_far_limit(w)))
        yield w


# ------------------------------------------------------------------------ isolation


def _alice_traces(w: World, text: str) -> list[str]:
    """Which of alice's order identifiers ``text`` shows."""
    marks = [o["client_order_id"] for o in w.alice_orders]
    marks += [f'"exchange_order_id":{o["exchange_order_id"]}' for o in w.alice_orders]
    return [m for m in marks if m in text.replace(" ", "")]


async def _status(w: World, method: str, path: str, who: Headers | None, **kw: Any) -> int:
    response = await w.http.request(method, path, headers=who or {}, **kw)
    assert "Traceback" not in response.text
    assert not _alice_traces(w, response.text) or who is w.alice or who is w.root, response.text
    return response.status_code


async def _orders_list(w: World) -> None:
    assert await _status(w, "GET", "/api/orders", None) == 401
    mine = await w.http.get("/api/orders", headers=w.bob)
    assert {o["id"] for o in mine.json()["data"]} == {o["id"] for o in w.bob_orders}
    for order in w.alice_orders:
        for query in (f"q={order['client_order_id']}", f"q={order['exchange_order_id']}"):
            found = await w.http.get(f"/api/orders?{query}", headers=w.bob)
            assert found.json()["total"] == 0


async def _orders_place(w: World) -> None:
    assert await _status(w, "POST", "/api/orders", None, json={}) == 401
    body = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}
    smuggled = {**body, "user_id": w.alice_id}
    answer = await w.http.post("/api/orders", json=smuggled, headers=w.bob)
    assert answer.status_code in (201, 400), answer.text
    listed = (await w.http.get("/api/orders?page_size=100", headers=w.alice)).json()["data"]
    assert {o["id"] for o in listed} == {o["id"] for o in w.alice_orders}


async def _order_get(w: World) -> None:
    for order in w.alice_orders:
        path = f"/api/orders/{order['id']}"
        assert await _status(w, "GET", path, None) == 401
        assert await _status(w, "GET", path, w.bob) == 404
    missing = await w.http.get("/api/orders/999999", headers=w.bob)
    theirs = await w.http.get(f"/api/orders/{w.open_order['id']}", headers=w.bob)
    hint = missing.json()["error"]["message"].replace("999999", str(w.open_order["id"]))
    assert theirs.json()["error"] == {**missing.json()["error"], "message": hint}  # no hint


async def _order_cancel(w: World) -> None:
    path = f"/api/orders/{w.open_order['id']}"
    assert await _status(w, "DELETE", path, None) == 401
    assert await _status(w, "DELETE", path, w.bob) == 404
    still = (await w.http.get(path, headers=w.alice)).json()["data"]
    assert still["status"] == "new"
    truth = w.service.simulator.orders(await _api_key(w, w.alice_id))
    assert [t.status for t in truth if t.client_order_id == still["client_order_id"]] == ["NEW"]


async def _api_key(w: World, user_id: int) -> str:
    creds = await w.service.store.get_credentials(user_id)
    assert creds is not None
    return creds.api_key


async def _credentials_get(w: World) -> None:
    assert await _status(w, "GET", "/api/credentials", None) == 401
    alice = (await w.http.get("/api/credentials", headers=w.alice)).json()["data"]
    bob = (await w.http.get("/api/credentials", headers=w.bob)).json()["data"]
    alice_creds = await w.service.store.get_credentials(w.alice_id)
    bob_creds = await w.service.store.get_credentials(w.bob_id)
    assert alice_creds is not None and bob_creds is not None
    assert alice["key_last4"] == alice_creds.api_key[-4:]
    assert bob["key_last4"] == bob_creds.api_key[-4:] != alice["key_last4"]


async def _credentials_put(w: World) -> None:
    body = {"api_key": "bobsOwnKey" + "K" * 54, "api_secret": "bobsOwnSecret" + "S" * 51}
    before = await w.service.store.get_credentials(w.alice_id)
    assert await _status(w, "PUT", "/api/credentials", None, json=body) == 401
    assert await _status(w, "PUT", "/api/credentials", w.bob, json=body) == 200
    assert await w.service.store.get_credentials(w.alice_id) == before


async def _credentials_delete(w: World) -> None:
    before = await w.service.store.get_credentials(w.alice_id)
    assert await _status(w, "DELETE", "/api/credentials", None) == 401
    assert await _status(w, "DELETE", "/api/credentials", w.bob) in (200, 204)
    assert await w.service.store.get_credentials(w.alice_id) == before
    assert w.service.supervisor.actor(w.alice_id) is not None


async def _me(w: World) -> None:
    assert await _status(w, "GET", "/api/auth/me", None) == 401
    me = (await w.http.get("/api/auth/me", headers=w.bob)).json()["data"]
    assert (me["id"], me["username"]) == (w.bob_id, "bob")


async def _logout(w: World) -> None:
    assert await _status(w, "POST", "/api/auth/logout", None) in (401, 200, 204)
    second = await _login(w.http, "bob", "pass word 1")
    bob2 = {"Authorization": f"Bearer {second.json()['token']}"}
    assert await _status(w, "POST", "/api/auth/logout", bob2) in (200, 204)
    assert await _status(w, "GET", "/api/auth/me", bob2) == 401
    assert await _status(w, "GET", "/api/auth/me", w.alice) == 200
    assert await _status(w, "GET", "/api/auth/me", w.bob) == 200  # only that token ended


async def _register_route(w: World) -> None:
    taken = await w.http.post(
        "/api/auth/register", json={"username": "alice", "password": "x" * 12}
    )
    w.http.cookies.clear()
    assert taken.status_code == 409 and "token" not in taken.json()


async def _login_route(w: World) -> None:
    assert (await _login(w.http, "alice", "pass word 1 but wrong")).status_code == 401
    assert "token" not in (await _login(w.http, "alice", "")).json()


async def _public(w: World, path: str) -> None:
    for who in (None, w.bob):
        assert await _status(w, "GET", path, who) == 200


def _operator(method: str, path: str, **kw: Any) -> Callable[[World], Awaitable[None]]:
    async def check(w: World) -> None:
        route = path.format(alice=w.alice_id)
        before = await w.http.get(f"/api/admin/users/{w.alice_id}/poll-policy", headers=w.root)
        assert await _status(w, method, route, None, **kw) == 401
        assert await _status(w, method, route, w.bob, **kw) == 403
        assert await _status(w, method, route, w.alice, **kw) == 403
        after = await w.http.get(f"/api/admin/users/{w.alice_id}/poll-policy", headers=w.root)
        assert after.json() == before.json()
        assert await _status(w, method, route, w.root, **kw) == 200

    return check


def _static(path: str) -> Callable[[World], Awaitable[None]]:
    async def check(w: World) -> None:
        await _public(w, path)

    return check


POLICY = {"interval": "3s"}
ROUTES: dict[tuple[str, str], Callable[[World], Awaitable[None]]] = {
    ("/", "GET"): _static("/"),
    ("/healthz", "GET"): _static("/healthz"),
    ("/readyz", "GET"): _static("/readyz"),
    ("/metrics", "GET"): _static("/metrics"),
    ("/openapi.json", "GET"): _static("/openapi.json"),
    ("/docs", "GET"): _static("/docs"),
    ("/static/<path:filename>", "GET"): _static("/static/main.js"),
    ("/api/symbols", "GET"): _static("/api/symbols"),
    ("/api/auth/register", "POST"): _register_route,
    ("/api/auth/login", "POST"): _login_route,
    ("/api/auth/me", "GET"): _me,
    ("/api/orders", "GET"): _orders_list,
    ("/api/orders", "POST"): _orders_place,
    ("/api/orders/<int:order_id>", "GET"): _order_get,
    ("/api/orders/<int:order_id>", "DELETE"): _order_cancel,
    ("/api/credentials", "GET"): _credentials_get,
    ("/api/admin/actors", "GET"): _operator("GET", "/api/admin/actors"),
    ("/api/admin/governor", "GET"): _operator("GET", "/api/admin/governor"),
    ("/api/admin/users/<int:user_id>/poll-policy", "GET"): _operator(
        "GET", "/api/admin/users/{alice}/poll-policy"
    ),
    ("/api/admin/users/<int:user_id>/poll-policy", "PUT"): _operator(
        "PUT", "/api/admin/users/{alice}/poll-policy", json=POLICY
    ),
    # last: these change bob's session and keys
    ("/api/auth/logout", "POST"): _logout,
    ("/api/credentials", "PUT"): _credentials_put,
    ("/api/credentials", "DELETE"): _credentials_delete,
}


def _routes(service: Service) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in service.app.url_map.iter_rules()
        for method in rule.methods or ()
        if method not in ("HEAD", "OPTIONS")
    }


async def _ws_isolation(w: World) -> None:
    """Bob's session, replaying from 0 and resuming from 0, shows only bob's orders; alice's
    orders changing meanwhile reach none of his messages."""
    with trio.fail_after(LIVE_TIMEOUT):
        async with open_websocket_url(ws_url(w.service, w.bob, since=0)) as ws:
            await next_message(ws, "hello")
            await w.http.delete(f"/api/orders/{w.open_order['id']}", headers=w.alice)
            await ws.send_message(json.dumps({"type": "resume", "since": 0}))
            await ws.send_message(json.dumps({"type": "ping"}))
            seen = []
            while (message := json.loads(await ws.get_message()))["type"] != "pong":
                seen.append(message)
    ids = {m["data"]["id"] for m in seen if m["type"] == "order_update"}
    assert ids == {o["id"] for o in w.bob_orders}
    assert not _alice_traces(w, json.dumps(seen, separators=(",", ":")))


async def test_every_route_and_ws_isolate_users_and_roles(world: World) -> None:
    unclassified = _routes(world.service) - set(ROUTES)
    assert unclassified == set(), f"classify these routes in ROUTES: {unclassified}"
    assert set(ROUTES) - _routes(world.service) == set(), "ROUTES lists routes that are gone"
    for check in ROUTES.values():
        await check(world)
    await _ws_isolation(world)
