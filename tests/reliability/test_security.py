"""Security on the whole service over real sockets (tests/inproc.py): isolation on every
route and on /ws, operator routes for operators only, secrets that never leak, and the
session rules (throttled logins, strict cookies, /ws Origin).

Ciphertexts bound to their user (AES-GCM associated data): a credentials row copied to
another user does not decrypt, tests/store/test_users.py::
test_row_copied_to_another_user_does_not_decrypt (and tests/store/test_secrets.py).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from tests.inproc import PASSWORD, next_message, register, running_service, ws_url
from tradercoin.exchange.protocol import Credentials
from tradercoin.service import Service
from tradercoin.store import Role, generate_key

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


async def _order_fills(w: World) -> None:
    for order in w.alice_orders:
        path = f"/api/orders/{order['id']}/fills"
        assert await _status(w, "GET", path, None) == 401
        assert await _status(w, "GET", path, w.bob) == 404
        assert await _status(w, "GET", path, w.alice) == 200
    missing = await w.http.get("/api/orders/999999/fills", headers=w.bob)
    theirs = await w.http.get(f"/api/orders/{w.open_order['id']}/fills", headers=w.bob)
    hint = missing.json()["error"]["message"].replace("999999", str(w.open_order["id"]))
    assert theirs.json()["error"] == {**missing.json()["error"], "message": hint}


async def _orders_cancel_all(w: World) -> None:
    """Bob cancelling all his BTCUSDT orders leaves alice's open order open at the exchange."""
    path = "/api/orders?symbol=BTCUSDT"
    assert await _status(w, "DELETE", path, None) == 401
    answer = await w.http.delete(path, headers=w.bob)
    assert answer.status_code == 200, answer.text
    truth = w.service.simulator.orders(await _api_key(w, w.alice_id))
    still = [t.status for t in truth if t.client_order_id == w.open_order["client_order_id"]]
    assert still == ["NEW"]


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
    # checked with the exchange first: keys it does not know are refused and not stored
    assert await _status(w, "PUT", "/api/credentials", w.bob, json=body) == 400
    assert await w.service.store.get_credentials(w.alice_id) == before


async def _credentials_delete(w: World) -> None:
    before = await w.service.store.get_credentials(w.alice_id)
    assert await _status(w, "DELETE", "/api/credentials", None) == 401
    assert await _status(w, "DELETE", "/api/credentials", w.bob) in (200, 204)
    assert await w.service.store.get_credentials(w.alice_id) == before
    assert w.service.supervisor.actor(w.alice_id) is not None


async def _prices(w: World) -> None:
    assert await _status(w, "GET", "/api/prices?symbols=BTCUSDT", None) == 401
    assert await _status(w, "GET", "/api/prices?symbols=BTCUSDT", w.bob) == 200


async def _account(w: World) -> None:
    """Each user reads the account of the keys they stored (the simulator's own answer for
    those keys), never another's."""
    assert await _status(w, "GET", "/api/account", None) == 401
    for who, user_id in ((w.alice, w.alice_id), (w.bob, w.bob_id)):
        response = await w.http.get("/api/account", headers=who)
        assert response.status_code == 200, response.text
        creds = await w.service.store.get_credentials(user_id)
        assert creds is not None
        truth = await w.service.exchange.for_account(creds).account()
        totals = response.json()["data"]["totals"]
        assert totals["wallet_balance"] == format(truth.total_wallet_balance, "f")


async def _leverage(w: World) -> None:
    """A user changes leverage with their own keys only (nothing to name another's account
    by); without a session, nothing."""
    body = {"symbol": "ETHUSDT", "leverage": 3}
    response = await w.http.put("/api/leverage", json=body, headers=w.bob)
    assert response.status_code == 200, response.text
    assert response.json()["data"]["leverage"] == 3
    assert (await w.http.put("/api/leverage", json=body)).status_code == 401


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
    ("/metrics", "GET"): _operator("GET", "/metrics"),
    ("/openapi.json", "GET"): _static("/openapi.json"),
    ("/docs", "GET"): _static("/docs"),
    ("/static/<path:filename>", "GET"): _static("/static/main.js"),
    ("/api/symbols", "GET"): _static("/api/symbols"),
    ("/api/prices", "GET"): _prices,
    ("/api/account", "GET"): _account,
    ("/api/leverage", "PUT"): _leverage,
    ("/api/auth/register", "POST"): _register_route,
    ("/api/auth/login", "POST"): _login_route,
    ("/api/auth/me", "GET"): _me,
    ("/api/orders", "GET"): _orders_list,
    ("/api/orders", "POST"): _orders_place,
    ("/api/orders/<int:order_id>", "GET"): _order_get,
    ("/api/orders/<int:order_id>", "DELETE"): _order_cancel,
    ("/api/orders/<int:order_id>/fills", "GET"): _order_fills,
    ("/api/orders", "DELETE"): _orders_cancel_all,
    ("/api/credentials", "GET"): _credentials_get,
    ("/api/admin/actors", "GET"): _operator("GET", "/api/admin/actors"),
    ("/api/admin/governor", "GET"): _operator("GET", "/api/admin/governor"),
    ("/api/admin/streams", "GET"): _operator("GET", "/api/admin/streams"),
    ("/api/admin/cluster", "GET"): _operator("GET", "/api/admin/cluster"),
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


# ------------------------------------------------------------------------ secrets stay secret

MASTER_KEY = generate_key()
PASSWORDS = {"alice": "alice-Pw-q8Zt!2/+", "bob": "bob-Pw-77Xk#&?", "root": "root-Pw-Hh5$s="}
BOGUS_KEY = "carolKeyNotKnownToTheExchange0123456789abcdefABCDEF0123456789xyz"
BOGUS_SECRET = "carolSecretValue9876543210ZYXWVUTSRQPONMLKJIHGFEDCBAzyxwvutsrqpo"
AUTH_PATHS = ("/api/auth/register", "/api/auth/login")  # where a token is the answer


def encodings(secret: str) -> set[str]:
    """The value and its obvious encodings (base64, url-safe base64, hex, url-encoding); for
    the master key also those of the raw key bytes it encodes."""
    raws = [secret.encode()]
    with contextlib.suppress(binascii.Error, ValueError):
        raws.append(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4)))
    found = {secret, quote(secret, safe=""), quote_plus(secret)}
    for raw in raws:
        found |= {raw.hex(), raw.hex().upper()}
        for b64 in (base64.b64encode(raw), base64.urlsafe_b64encode(raw)):
            found |= {b64.decode(), b64.decode().rstrip("=")}
    return {f for f in found if len(f) >= 8}


@dataclass
class Capture:
    """Everything the run showed: (where, text) pairs."""

    seen: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        self.seen.append((where, text))

    async def response(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        where = f"{request.method} {request.url.path}"
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.multi_items())
        self.add(where, f"{response.status_code}\n{headers}\n{response.text}")

    def leaks(self, secrets: dict[str, str], tokens: dict[str, str]) -> list[str]:
        found = []
        for where, text in self.seen:
            legit_token = where.removeprefix("POST ") in AUTH_PATHS
            for name, value in {**secrets, **({} if legit_token else tokens)}.items():
                for form in encodings(value):
                    if (at := text.find(form)) >= 0:
                        found.append(f"{name} in {where}: {text[max(0, at - 200) : at]!r}")
        return found


async def _read_until(
    ws: Any, capture: Capture, label: str, done: Callable[[dict[str, Any]], bool]
) -> None:
    """Capture ``ws``'s messages until one satisfies ``done``."""
    with trio.fail_after(LIVE_TIMEOUT):
        while True:
            text = await ws.get_message()
            capture.add(f"ws {label}", text)
            if done(json.loads(text)):
                return


def _is(kind: str, **data: Any) -> Callable[[dict[str, Any]], bool]:
    def check(message: dict[str, Any]) -> bool:
        got = message.get("data") or {}
        return message["type"] == kind and all(got.get(k) == v for k, v in data.items())

    return check


async def _session(http: httpx.AsyncClient, name: str, *, register: bool) -> Headers:
    path = "/api/auth/register" if register else "/api/auth/login"
    response = await http.post(path, json={"username": name, "password": PASSWORDS[name]})
    assert response.status_code in (200, 201), response.text
    http.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def _trade(http: httpx.AsyncClient, ws: Any, who: Headers, capture: Capture) -> None:
    """A MARKET fill, a LIMIT placed then canceled, an order the exchange refuses."""
    market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}
    filled = (await http.post("/api/orders", json=market, headers=who)).json()["data"]
    limit = {**market, "type": "LIMIT", "price": "30000.0", "time_in_force": "GTC"}
    resting = (await http.post("/api/orders", json=limit, headers=who)).json()["data"]
    await _read_until(ws, capture, "alice", _is("order_update", id=resting["id"], status="new"))
    await http.delete(f"/api/orders/{resting['id']}", headers=who)
    await _read_until(ws, capture, "alice", _is("order_update", id=filled["id"], status="filled"))
    refused = {**limit, "price": "99999999.0"}  # outside the exchange's price band
    await http.post("/api/orders", json=refused, headers=who)


async def _bad_keys(
    service: Any, http: httpx.AsyncClient, ws: Any, who: Headers, capture: Capture
) -> None:
    """Keys the exchange does not know: refused on save (checked with the exchange, answer
    captured); then such keys in the store (as when the exchange revokes a key later): the
    actor parks and the user gets an alert."""
    body = {"api_key": BOGUS_KEY, "api_secret": BOGUS_SECRET}
    refused = await http.put("/api/credentials", json=body, headers=who)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "keys_rejected"
    bob = await service.store.get_user_by_name("bob")
    await service.store.set_credentials(bob.id, Credentials(BOGUS_KEY, BOGUS_SECRET))
    await service.supervisor.credentials_changed(bob.id)
    await http.get("/api/credentials", headers=who)
    market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}
    await http.post("/api/orders", json=market, headers=who)
    await _read_until(ws, capture, "bob", _is("alert"))


async def _errors(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    """Wrong passwords up to the throttle, a password typed as a username, broken tokens,
    malformed bodies, unknown orders."""
    for _ in range(12):
        wrong = {"username": "alice", "password": PASSWORDS["bob"]}
        if (await http.post("/api/auth/login", json=wrong)).status_code == 429:
            break
    await http.post("/api/auth/login", json={"username": PASSWORDS["root"], "password": "x" * 9})
    for token in tokens.values():
        broken = {"Authorization": f"Bearer {token[:-3]}abc"}
        await http.get("/api/orders", headers=broken)
        await http.get("/api/orders", headers={"Cookie": f"tc_session={token}x"})
    who = {"Authorization": f"Bearer {tokens['alice']}", "Content-Type": "application/json"}
    await http.post("/api/orders", content=b'{"symbol": ', headers=who)
    await http.delete("/api/orders/987654", headers=who)
    await http.put("/api/credentials", json={"api_key": PASSWORDS["alice"]}, headers=who)


async def _operator_calls(http: httpx.AsyncClient, root: Headers, users: list[int]) -> None:
    await http.get("/api/admin/actors", headers=root)
    await http.get("/api/admin/governor", headers=root)
    for user_id in users:
        path = f"/api/admin/users/{user_id}/poll-policy"
        await http.get(path, headers=root)
        await http.put(path, json={"interval": "2s"}, headers=root)
    await http.get("/metrics", headers=root)
    for path in ("/metrics", "/readyz", "/healthz", "/openapi.json", "/api/symbols"):
        await http.get(path)


async def _ws_refusals(service: Service, tokens: dict[str, str], capture: Capture) -> None:
    """Every token, presented from a foreign Origin: refused, and the refusal says nothing."""
    base = service.url.replace("http://", "ws://")
    evil = [("Origin", "https://evil.example")]
    for token in tokens.values():
        with pytest.raises(ConnectionRejected) as refused:
            async with open_websocket_url(f"{base}/ws?token={token}", extra_headers=evil):
                pass
        capture.add("ws refused", f"{refused.value!r} {refused.value.body!r}")


def _browser_side(record: logging.LogRecord) -> bool:
    """A DEBUG record of the test's own clients (the browser), which rightly hold tokens:
    httpcore's trace of a response from the service (its Set-Cookie), trio-websocket's
    "Connecting to .../ws?token=". (The service's own exchange client and user stream are
    traced by the same libraries, but never see our cookie or connect to /ws.)"""
    message = record.getMessage()
    if record.name.startswith("httpcore"):
        return "tc_session=" in message
    return record.name == "trio-websocket" and "/ws?token=" in message


async def test_no_seeded_secret_appears_in_anything_a_full_run_shows(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    capture = Capture()
    hooks = {"response": [capture.response]}
    async with (
        running_service(tmp_path, master_key=MASTER_KEY) as service,
        httpx.AsyncClient(base_url=service.url, event_hooks=hooks) as http,
    ):
        tokens: dict[str, str] = {}
        for name in ("alice", "bob"):
            tokens[name] = (await _session(http, name, register=True))["Authorization"][7:]
        hashed = await service.ctx.passwords.hash(PASSWORDS["root"])
        await service.store.create_user("root", hashed, Role.OPERATOR)
        root = await _session(http, "root", register=False)
        tokens["root"] = root["Authorization"][7:]
        users = [u.id for u in await service.store.list_users()]
        secrets = {"master key": MASTER_KEY, "bogus api key": BOGUS_KEY}
        secrets |= {f"password {k}": v for k, v in PASSWORDS.items()}
        secrets["bogus api secret"] = BOGUS_SECRET
        for user_id in users:
            creds = await service.store.get_credentials(user_id)
            if creds is not None:
                secrets[f"api key {user_id}"] = creds.api_key
                secrets[f"api secret {user_id}"] = creds.api_secret
        base = service.url.replace("http://", "ws://")
        async with (
            open_websocket_url(f"{base}/ws") as alice_ws,
            open_websocket_url(f"{base}/ws") as bob_ws,
        ):
            for ws, name in ((alice_ws, "alice"), (bob_ws, "bob")):
                await ws.send_message(json.dumps({"type": "auth", "token": tokens[name]}))
                await _read_until(ws, capture, name, _is("hello"))
            bob = {"Authorization": f"Bearer {tokens['bob']}"}
            alice = {"Authorization": f"Bearer {tokens['alice']}"}
            await _trade(http, alice_ws, alice, capture)
            await _bad_keys(service, http, bob_ws, bob, capture)
        await _operator_calls(http, root, users)
        await _errors(http, tokens)
        await _ws_refusals(service, tokens, capture)
        await http.post("/api/auth/logout", headers=alice)
        for part in (service, service.settings, service.ctx, service.exchange, service.store):
            capture.add(f"repr {type(part).__name__}", repr(part))
        for status in service.supervisor.statuses():
            capture.add("actor status", repr(status))
        for user_id in users:
            capture.add("credentials repr", repr(await service.store.get_credentials(user_id)))
    for record in caplog.records:
        if not _browser_side(record):
            capture.add(f"log {record.name}", caplog.handler.format(record))
    assert len(secrets) >= 10 and len(tokens) == 3
    everything = "\n".join(text for _, text in capture.seen)
    for shown in ("credentials_rejected", "order_update", "tradercoin_http_requests", "parked"):
        assert shown in everything  # the run really did what the scan is about
    assert "\n429\n" in everything and "retry-after" in everything  # login throttled
    leaks = capture.leaks(secrets, tokens)
    assert leaks == [], "\n".join(leaks)


# ------------------------------------------------------------------------ sessions


async def test_sessions_strict_cookies_throttled_logins_and_ws_origins(tmp_path: Path) -> None:
    async with (
        running_service(tmp_path) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        await register(http, "alice")
        login = await http.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        cookie = login.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
        assert {"httponly", "path"} <= attributes
        assert "samesite=strict" in cookie.lower().replace(" ", "")
        token = login.json()["token"]
        http.cookies.clear()

        wrong = {"username": "alice", "password": "not the password"}
        answers = [await http.post("/api/auth/login", json=wrong) for _ in range(20)]
        statuses = [a.status_code for a in answers]
        first = statuses.index(429)  # refused as wrong until the throttle, then throttled
        assert set(statuses[:first]) == {401} and set(statuses[first:]) == {429}
        assert int(answers[first].headers["Retry-After"]) > 0
        right = await http.post("/api/auth/login", json={"username": "alice", "password": PASSWORD})
        assert right.status_code == 429  # even the right password waits out the throttle

        base = service.url.replace("http://", "ws://")
        by_cookie = [("Cookie", f"tc_session={token}")]
        for origin in (
            "https://evil.example",
            "null",
            service.url.replace("127.0.0.1", "localhost"),
        ):
            for url, headers in ((f"{base}/ws?token={token}", []), (f"{base}/ws", by_cookie)):
                with pytest.raises(ConnectionRejected) as refused:
                    async with open_websocket_url(
                        url, extra_headers=[*headers, ("Origin", origin)]
                    ):
                        pass
                assert refused.value.status_code == 403
        with trio.fail_after(LIVE_TIMEOUT):
            async with open_websocket_url(
                f"{base}/ws", extra_headers=[*by_cookie, ("Origin", service.url)]
            ) as ws:
                assert (await next_message(ws, "hello"))["user"]["username"] == "alice"
