"""The whole service as ``tradercoin serve`` builds it (open_service): a temp SQLite file, the
embedded simulator, the supervisor and Hypercorn on free loopback ports; httpx and
trio-websocket as the clients. Real sockets and threads: no autojump.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from click.testing import CliRunner
from trio_websocket import ConnectionClosed, open_websocket_url

from tests.inproc import next_message, running_service
from tests.inproc import register as _register
from tests.inproc import ws_url as _ws_url
from tradercoin.cli import main as cli
from tradercoin.service import Service
from tradercoin.store import Role, generate_key

LIVE_TIMEOUT = 30  # a MARKET order fills after the simulator's latency; polls every 5 s


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    async with running_service(tmp_path) as running:
        yield running


@pytest.fixture
async def http(service: Service) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=service.url) as client:
        yield client


async def _next(ws: Any, kind: str) -> dict[str, Any]:
    with trio.fail_after(LIVE_TIMEOUT):
        return await next_message(ws, kind)


async def _until_status(ws: Any, order_id: int, status: str) -> list[dict[str, Any]]:
    """Every order_update up to the one that shows ``order_id`` in ``status``."""
    seen = []
    while True:
        update = await _next(ws, "order_update")
        seen.append(update)
        if update["data"]["id"] == order_id and update["data"]["status"] == status:
            return seen


async def _place(http: httpx.AsyncClient, headers: dict[str, str], **body: str) -> dict[str, Any]:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010", **body}
    response = await http.post("/api/orders", json=order, headers=headers)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


async def test_a_new_user_trades_at_once_and_sees_the_fill_live(
    service: Service, http: httpx.AsyncClient
) -> None:
    alice = await _register(http, "alice")
    async with open_websocket_url(_ws_url(service, alice)) as ws:
        hello = await _next(ws, "hello")
        order = await _place(http, alice)
        updates = await _until_status(ws, order["id"], "filled")
    seqs = [u["seq"] for u in updates]
    assert seqs == list(range(hello["seq"] + 1, hello["seq"] + 1 + len(seqs)))  # no gap
    listed = (await http.get("/api/orders", headers=alice)).json()
    assert listed["total"] == 1 and listed["data"][0]["status"] == "filled"
    assert listed["data"][0]["order_id"] == order["id"]


async def test_resume_after_a_disconnect_replays_what_was_missed(
    service: Service, http: httpx.AsyncClient
) -> None:
    alice = await _register(http, "alice")
    mark = (await http.get("/api/symbols")).json()["data"]
    assert any(s["symbol"] == "BTCUSDT" for s in mark)
    async with open_websocket_url(_ws_url(service, alice)) as ws:
        await _next(ws, "hello")
        far = (service.simulator.mark("BTCUSDT") * Decimal("0.9")).quantize(Decimal("0.1"))
        order = await _place(http, alice, type="LIMIT", price=str(far), time_in_force="GTC")
        last = (await _until_status(ws, order["id"], "new"))[-1]["seq"]
    canceled = await http.delete(f"/api/orders/{order['id']}", headers=alice)
    assert canceled.status_code == 200 and canceled.json()["data"]["status"] == "canceled"
    async with open_websocket_url(_ws_url(service, alice, since=last)) as ws:
        await _next(ws, "hello")
        missed = await _next(ws, "order_update")
    assert missed["seq"] == last + 1
    assert missed["data"]["status"] == "canceled"


async def test_sessions_are_isolated_between_users(
    service: Service, http: httpx.AsyncClient
) -> None:
    alice = await _register(http, "alice")
    bob = await _register(http, "bob")
    async with (
        open_websocket_url(_ws_url(service, bob)) as bob_ws,
        open_websocket_url(_ws_url(service, alice)) as alice_ws,
    ):
        await _next(bob_ws, "hello")
        await _next(alice_ws, "hello")
        order = await _place(http, alice)
        await _until_status(alice_ws, order["id"], "filled")
        await bob_ws.send_message(json.dumps({"type": "ping"}))
        first = json.loads(await bob_ws.get_message())
    assert first["type"] in ("pong", "heartbeat")
    assert (await http.get(f"/api/orders/{order['id']}", headers=bob)).status_code == 404


async def test_orders_cache_follows_live_changes(service: Service, http: httpx.AsyncClient) -> None:
    alice = await _register(http, "alice")
    async with open_websocket_url(_ws_url(service, alice)) as ws:
        await _next(ws, "hello")
        assert (await http.get("/api/orders", headers=alice)).json()["total"] == 0
        assert (await http.get("/api/orders", headers=alice)).json()["total"] == 0  # cached
        order = await _place(http, alice)
        await _until_status(ws, order["id"], "filled")
    listed = (await http.get("/api/orders", headers=alice)).json()
    assert [o["status"] for o in listed["data"]] == ["filled"]
    assert service.ctx.orders_cache.hits >= 1


async def test_operator_routes_and_the_poll_rate_cli(
    service: Service, http: httpx.AsyncClient
) -> None:
    alice = await _register(http, "alice")
    user = await service.store.get_user_by_name("alice")
    assert user is not None
    await service.store.create_user(
        "root", await service.ctx.passwords.hash("root pass 1"), Role.OPERATOR
    )
    login = await http.post("/api/auth/login", json={"username": "root", "password": "root pass 1"})
    http.cookies.clear()
    root = {"Authorization": f"Bearer {login.json()['token']}"}
    actors = (await http.get("/api/admin/actors", headers=root)).json()["data"]
    assert [(a["user_id"], a["username"]) for a in actors] == [(user.id, "alice")]
    assert (await http.get("/api/admin/governor", headers=root)).json()["data"][
        "limit_per_minute"
    ] > 0
    assert (await http.get("/api/admin/actors", headers=alice)).status_code == 403
    alone = (await http.get("/api/admin/cluster", headers=root)).json()["data"]
    assert alone["clustered"] is False
    assert [(i["users"], i["user_ids"]) for i in alone["instances"]] == [(1, [user.id])]

    args = ["poll-rate", "set", "--user", str(user.id), "--interval", "2s", "--url", service.url]
    result = await trio.to_thread.run_sync(
        lambda: CliRunner().invoke(cli, args, env={"TRADERCOIN_TOKEN": root["Authorization"][7:]})
    )
    assert result.exit_code == 0, result.output
    assert "interval=2.0" in result.output
    stored = await service.store.get_poll_policy(user.id)
    assert stored is not None and stored.interval == 2.0
    got = (await http.get(f"/api/admin/users/{user.id}/poll-policy", headers=root)).json()["data"]
    assert got["interval"] == 2.0


async def test_poll_rate_cli_with_a_users_token_fails_cleanly(
    service: Service, http: httpx.AsyncClient
) -> None:
    alice = await _register(http, "alice")
    token = alice["Authorization"][7:]
    args = ["poll-rate", "get", "--user", "1", "--url", service.url, "--token", token]
    result = await trio.to_thread.run_sync(lambda: CliRunner().invoke(cli, args))
    assert result.exit_code == 1
    assert "HTTP 403" in result.output and "Traceback" not in result.output


async def test_readiness_and_metrics(service: Service, http: httpx.AsyncClient) -> None:
    assert (await http.get("/readyz")).json() == {"status": "ready"}
    await service.store.create_user(
        "root", await service.ctx.passwords.hash("root pass 1"), Role.OPERATOR
    )
    login = await http.post("/api/auth/login", json={"username": "root", "password": "root pass 1"})
    http.cookies.clear()
    root = {"Authorization": f"Bearer {login.json()['token']}"}
    text = (await http.get("/metrics", headers=root)).text
    for name in (
        "# TYPE tradercoin_actors gauge",
        "tradercoin_governor_budget_weight_per_minute",
        "tradercoin_exchange_requests_total",
        "tradercoin_store_batches_total",
        "tradercoin_actor_poll_lag_max_seconds",
        'tradercoin_session_notifications_total{outcome="delivered"}',
        "tradercoin_store_batch_commit_duration_seconds_bucket",
    ):
        assert name in text


async def test_shutdown_closes_sessions_with_1001_and_stops_serving(
    service: Service, http: httpx.AsyncClient
) -> None:
    alice = await _register(http, "alice")
    codes: list[int] = []
    greeted = trio.Event()

    async def client() -> None:
        async with open_websocket_url(_ws_url(service, alice)) as ws:
            await _next(ws, "hello")
            greeted.set()
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed as closed:
                codes.append(closed.reason.code)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        await greeted.wait()
        await service.shutdown()
    assert codes == [1001]
    with pytest.raises(httpx.TransportError):
        await http.get("/healthz")


async def test_a_restart_keeps_sim_users_trading(tmp_path: Path) -> None:
    key = generate_key()  # the same master key (and database) in both runs
    async with (
        running_service(tmp_path, master_key=key) as first,
        httpx.AsyncClient(base_url=first.url) as client,
    ):
        alice = await _register(client, "alice")
    async with (
        running_service(tmp_path, master_key=key) as second,
        httpx.AsyncClient(base_url=second.url) as client,
        open_websocket_url(_ws_url(second, alice)) as ws,
    ):
        await _next(ws, "hello")
        order = await _place(client, alice)  # the stored keys still sign with the new simulator
        await _until_status(ws, order["id"], "filled")


async def test_the_service_prunes_old_events_and_an_old_resume_gets_a_resync(
    tmp_path: Path,
) -> None:
    """Issue 9, defect 8: event retention was never started, so order_events grew forever.
    Here events are kept 1 s: they go, and a resume from before them is told to resync."""
    async with (
        running_service(tmp_path, event_retention=1.0) as service,
        httpx.AsyncClient(base_url=service.url) as http,
    ):
        alice = await _register(http, "alice")
        far = (service.simulator.mark("BTCUSDT") * Decimal("0.9")).quantize(Decimal("0.1"))
        await _place(http, alice, type="LIMIT", price=str(far), time_in_force="GTC")
        user = await service.store.get_user_by_name("alice")
        assert user is not None
        assert await service.store.events_since(user.id, 0)  # kept for now
        with trio.fail_after(LIVE_TIMEOUT):
            while await service.store.events_since(user.id, 0):  # noqa: ASYNC110 (a database)
                await trio.sleep(0.1)
        latest = await service.store.latest_seq(user.id)
        async with open_websocket_url(_ws_url(service, alice, since=0)) as ws:
            await _next(ws, "hello")
            resync = await _next(ws, "resync")
    assert latest > 0 and resync["seq"] == latest


async def test_concurrent_first_reads_attach_the_page_cache_once(
    service: Service, http: httpx.AsyncClient
) -> None:
    """Regression: the page asks for several lists at once; each first read of a user's
    pages attached the cache to the actor again (one stray session each)."""
    await _register(http, "alice")
    user = await service.store.get_user_by_name("alice")
    assert user is not None
    handle = service.supervisor.actor(user.id)
    assert handle is not None
    before = len(handle.sessions)

    async def render() -> bytes:
        return b"{}"

    async with trio.open_nursery() as nursery:
        for status in ("pending", "new", "partially_filled"):
            get = partial(service.ctx.orders_cache.get, user.id, (status,), handle, render)
            nursery.start_soon(get)
    assert len(handle.sessions) == before + 1
