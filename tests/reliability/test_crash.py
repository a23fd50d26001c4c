"""Crash safety: ``tradercoin serve`` is SIGKILLed while fills flow and restarted on the same
database; WebSocket clients resume from their last seq.

The simulator runs as its own process (``tradercoin sim``), the service reaches it as an
external exchange (``--exchange URL`` + ``TRADERCOIN_EXCHANGE_WS``) and users store the sim
accounts' keys with ``PUT /api/credentials``. Real processes, sockets and threads: no
autojump.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from tests.procs import Child, free_port, serve_env, start_serve, start_sim
from tests.reliability.live import ResumingSession, Stored, differences, register, replay

pytestmark = pytest.mark.slow

USERS = 3
SETTLE_TIMEOUT = 90  # reconciliation after the restart: polls every second, stream resumes
TICK = Decimal("0.1")


async def _sim(sim: Child, method: str, path: str, **body: Any) -> Any:
    """One admin call to the simulator; ``None`` for -2011 (the order is gone by now)."""
    async with httpx.AsyncClient(base_url=sim.url) as client:
        if method == "GET":
            response = await client.get(f"/sim/admin/{path}", params=body)
        else:
            response = await client.request(method, f"/sim/admin/{path}", json=body)
    if response.status_code == 400 and response.json().get("code") == -2011:
        return None
    assert response.status_code == 200, response.text
    return response.json()


class Trader:
    """Places MARKET and LIMIT orders for every user and cancels some, through the service;
    requests that meet the killed service count as ``lost_requests`` (their outcome is for
    reconciliation to settle)."""

    def __init__(self, users: list[dict[str, str]], sim: Child) -> None:
        self.users = users
        self.sim = sim
        self.placed = 0
        self.lost_requests = 0

    async def run(self, base: str, stop: trio.Event) -> None:
        mark = Decimal((await _sim(self.sim, "GET", "price", symbol="BTCUSDT"))["price"])
        far = (mark * Decimal("0.9")).quantize(TICK)
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            i = 0
            while not stop.is_set():
                i += 1
                for headers in self.users:
                    body = {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010"}
                    if i % 2:
                        body |= {"type": "LIMIT", "price": str(far), "time_in_force": "GTC"}
                    else:
                        body |= {"type": "MARKET"}
                    await self._request(http, "POST", "/api/orders", headers, body)
                    if i % 5 == 4:
                        await self._cancel_newest(http, headers)
                await trio.sleep(0.1)

    async def _cancel_newest(self, http: httpx.AsyncClient, headers: dict[str, str]) -> None:
        listed = await self._request(http, "GET", "/api/orders?status=new", headers)
        if listed is not None and listed["data"]:
            await self._request(http, "DELETE", f"/api/orders/{listed['data'][0]['id']}", headers)

    async def _request(
        self, http: httpx.AsyncClient, method: str, path: str, headers: dict[str, str], body=None
    ) -> Any:
        try:
            response = await http.request(method, path, headers=headers, json=body)
        except httpx.TransportError:
            self.lost_requests += 1
            return None
        assert response.status_code < 500, response.text
        if method == "POST" and response.status_code == 201:
            self.placed += 1
        return response.json()


async def _fill_some(sim: Child, accounts: list[dict[str, str]], stop: trio.Event) -> int:
    """At the exchange, fill (wholly or partly) resting LIMIT orders until ``stop``."""
    fills = 0
    while not stop.is_set():
        for n, account in enumerate(accounts):
            truth = await _sim(sim, "GET", "orders", api_key=account["api_key"])
            for order in truth:
                if order["status"] == "NEW" and int(order["order_id"]) % 3 != 0:
                    part = {"quantity": "0.005"} if (fills + n) % 2 else {}  # partly, then wholly
                    ids = {"symbol": "BTCUSDT", "orderId": order["order_id"]}
                    await _sim(sim, "POST", "fill", **ids, **part)
                    fills += 1
        await trio.sleep(0.3)
    return fills


async def _orders(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    response = await http.get("/api/orders?page_size=100", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["total"] <= 100
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def _stored(order: dict[str, Any]) -> Stored:
    filled = Decimal(order["filled_quantity"])
    return Stored(order["client_order_id"], order["status"], filled, order["exchange_order_id"])


async def _settled(
    base: str, users: list[dict[str, str]], sim: Child, accounts: list[dict[str, str]]
) -> list[list[dict[str, Any]]]:
    """Wait until every user's orders equal the exchange's truth; returns them."""
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        with trio.move_on_after(SETTLE_TIMEOUT):
            while True:
                ours = [await _orders(http, headers) for headers in users]
                truths = [await _sim(sim, "GET", "orders", api_key=a["api_key"]) for a in accounts]
                diffs = [
                    d
                    for o, t in zip(ours, truths, strict=True)
                    for d in differences([_stored(x) for x in o], t)
                ]
                if not diffs:
                    return ours
                await trio.sleep(0.5)
    raise AssertionError(f"not reconciled after {SETTLE_TIMEOUT} s: {diffs[:10]}")


async def _caught_up(session: ResumingSession, orders: list[dict[str, Any]]) -> None:
    """Wait until the session has seen every order in its final state."""
    final = {o["id"]: o for o in orders}
    with trio.fail_after(30):
        while {u["data"]["id"]: u["data"] for u in session.updates} != final:
            await session.changed.wait()


async def test_sigkill_while_fills_flow_loses_and_duplicates_nothing(tmp_path: Path) -> None:
    sim = await trio.to_thread.run_sync(
        lambda: start_sim(tmp_path, "--fill-latency", "0.3", "--weight-limit", "100000", accounts=3)
    )
    accounts = sim.extra["accounts"]
    env = serve_env(
        f"sqlite:///{tmp_path}/crash.db",
        TRADERCOIN_EXCHANGE=sim.url,
        TRADERCOIN_EXCHANGE_WS=sim.extra["ws_url"],
        TRADERCOIN_POLL_INTERVAL="1s",
        TRADERCOIN_WEIGHT_BUDGET_PER_MINUTE="100000",
    )
    port = free_port()
    serve = await trio.to_thread.run_sync(lambda: start_serve(tmp_path, env, port=port))
    ws_base = serve.url.replace("http://", "ws://")
    try:
        async with httpx.AsyncClient(base_url=serve.url, timeout=10) as http:
            users = [await register(http, f"crash{i}") for i in range(USERS)]
            for headers, account in zip(users, accounts, strict=True):
                keys = {"api_key": account["api_key"], "api_secret": account["api_secret"]}
                stored = await http.put("/api/credentials", json=keys, headers=headers)
                assert stored.status_code == 200, stored.text
        tokens = [h["Authorization"].removeprefix("Bearer ") for h in users]
        sessions = [ResumingSession(ws_base, token) for token in tokens]
        trader = Trader(users, sim)
        stop_filling = trio.Event()
        async with trio.open_nursery() as nursery:
            for session in sessions:
                nursery.start_soon(session.run)
            nursery.start_soon(_fill_some, sim, accounts, stop_filling)
            stop_trading = trio.Event()
            async with trio.open_nursery() as trading:
                trading.start_soon(trader.run, serve.url, stop_trading)
                await trio.sleep(2.5)
                assert trader.placed > 0 and any(s.updates for s in sessions)
                await trio.to_thread.run_sync(serve.kill)  # SIGKILL: mid-trade, mid-fill
                await trio.sleep(1.5)  # the exchange keeps filling while we are down
                serve = await trio.to_thread.run_sync(
                    lambda: start_serve(tmp_path, env, port=port, log_name="serve2.log")
                )
                await trio.sleep(1.5)
                stop_trading.set()
            stop_filling.set()
            finals = await _settled(serve.url, users, sim, accounts)
            for session, orders in zip(sessions, finals, strict=True):
                await _caught_up(session, orders)
            nursery.cancel_scope.cancel()
        await _check_streams(ws_base, tokens, sessions, trader)
    finally:
        await trio.to_thread.run_sync(serve.stop)
        await trio.to_thread.run_sync(sim.stop)
    assert "Traceback" not in (tmp_path / "serve2.log").read_text()


async def _check_streams(
    ws_base: str, tokens: list[str], sessions: list[ResumingSession], trader: Trader
) -> None:
    """Each session saw its user's event log exactly once, in order, across the crash."""
    assert trader.lost_requests > 0 or trader.placed > 0
    for token, session in zip(tokens, sessions, strict=True):
        assert session.problems == []
        assert session.connects >= 2  # it really lived through the crash
        assert session.last is not None
        log = await replay(ws_base, token, session.last)
        first = session.updates[0]["seq"]
        assert [u["seq"] for u in session.updates] == list(range(first, session.last + 1))
        assert session.updates == [u for u in log if u["seq"] >= first]
        states = Counter(repr(sorted(u["data"].items())) for u in log)
        assert [s for s, n in states.items() if n > 1] == []  # no change stored twice
