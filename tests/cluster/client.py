"""Traffic through HAProxy and the oracle of the cluster tests.

Users register through HAProxy and store the simulator's keys; each keeps a /ws session (a
:class:`~tests.reliability.live.ResumingSession`: it reconnects through HAProxy with
``?since=``, so it may land on any instance). :class:`Traffic` places orders, each under its
own ``client_order_id`` and retried with that same id after a transport error or a 502-504
(a retry must never place twice), and fills resting ones at the exchange.

The oracle never reads our answers back: the simulator's record of each account's orders,
the rows in PostgreSQL (orders, and each user's event log), what the sessions received
against that log and against a fresh replay of its tail, and which
instance runs which actor (``/api/admin/actors`` asked of each instance directly).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import trio
from sqlalchemy.engine import make_url

from tests.cluster.harness import Deployment
from tests.reliability.live import ResumingSession, Stored, differences, register, replay

SYMBOL = "BTCUSDT"
TICK = Decimal("0.1")
RETRY_STATUSES = (502, 503, 504)
PLACE_ATTEMPTS = 20
OWNING = frozenset({"starting", "running", "parked", "backoff"})  # all but "stopped"
REPLAYED = 200  # events a fresh session replays (its /ws channel holds 254)
SETTLE_TIMEOUT = 90  # quiescence: every instance reconciles its users with the exchange


@dataclass(eq=False)
class User:
    name: str
    headers: dict[str, str]
    account: dict[str, str]
    session: ResumingSession | None = None

    @property
    def token(self) -> str:
        return self.headers["Authorization"].removeprefix("Bearer ")


async def sign_up(deployed: Deployment, accounts: list[dict[str, str]], prefix: str) -> list[User]:
    """One user per simulator account, registered through HAProxy, keys stored."""
    users = []
    async with httpx.AsyncClient(base_url=deployed.url, timeout=30) as http:
        for n, account in enumerate(accounts):
            headers = await register(http, f"{prefix}{n}")
            keys = {"api_key": account["api_key"], "api_secret": account["api_secret"]}
            stored = await http.put("/api/credentials", json=keys, headers=headers)
            assert stored.status_code == 200, stored.text
            users.append(User(f"{prefix}{n}", headers, account))
    return users


def open_sessions(deployed: Deployment, users: list[User], nursery: trio.Nursery) -> None:
    """A resuming /ws session per user, through HAProxy, in ``nursery``."""
    for user in users:
        user.session = ResumingSession(deployed.ws_base, user.token)
        nursery.start_soon(user.session.run)


@dataclass(eq=False)
class Traffic:
    """Places orders (LIMIT far from the mark, and MARKET) for every user through HAProxy
    and fills some resting ones at the exchange, until stopped."""

    deployed: Deployment
    users: list[User]
    pause: float = 0.2
    placed: Counter[str] = field(default_factory=Counter)  # client id -> 2xx answers
    retries: int = 0
    unresolved: set[str] = field(default_factory=set)  # never answered: outcome for the oracle
    fills: int = 0

    async def trade(self, stop: trio.Event) -> None:
        mark = Decimal((await sim_get(self.deployed, "price", symbol=SYMBOL))["price"])
        far = (mark * Decimal("0.9")).quantize(TICK)
        async with httpx.AsyncClient(base_url=self.deployed.url, timeout=15) as http:
            n = 0
            while not stop.is_set():
                n += 1
                for user in self.users:
                    body: dict[str, Any] = {"symbol": SYMBOL, "side": "BUY", "quantity": "0.010"}
                    if n % 2:
                        body |= {"type": "LIMIT", "price": str(far), "time_in_force": "GTC"}
                    else:
                        body |= {"type": "MARKET"}
                    await self._place(http, user, body, f"{user.name}-{n}")
                await trio.sleep(self.pause)

    async def _place(
        self, http: httpx.AsyncClient, user: User, body: dict[str, Any], cid: str
    ) -> None:
        """POST until an answer that is not a transport error or a 502-504 (same id)."""
        body = {**body, "client_order_id": cid}
        for _ in range(PLACE_ATTEMPTS):
            try:
                response = await http.post("/api/orders", json=body, headers=user.headers)
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code not in RETRY_STATUSES:
                assert response.status_code < 500, response.text
                if response.status_code < 300:
                    self.placed[cid] += 1
                return
            self.retries += 1
            await trio.sleep(0.5)
        self.unresolved.add(cid)

    async def fill(self, stop: trio.Event) -> None:
        """At the exchange, fill resting LIMIT orders, some in two parts, until ``stop``."""
        async with httpx.AsyncClient(base_url=self.deployed.sim.url, timeout=10) as sim:
            while not stop.is_set():
                for user in self.users:
                    params = {"api_key": user.account["api_key"]}
                    truth = (await sim.get("/sim/admin/orders", params=params)).json()
                    for order in truth:
                        if order["status"] == "NEW" and int(order["order_id"]) % 3:
                            part = {"quantity": "0.005"} if self.fills % 2 else {}
                            ids = {"symbol": SYMBOL, "orderId": order["order_id"]}
                            await sim.post("/sim/admin/fill", json=ids | part)
                            self.fills += 1
                await trio.sleep(0.3)


# --- ownership --------------------------------------------------------------------------


def owners(
    deployed: Deployment, token: str, *, reverse: bool = False, states: frozenset[str] = OWNING
) -> dict[int, list[str]]:
    """``{user id: [instances running its actor]}`` over the running instances, asked one
    after the other (in reverse order with ``reverse``), counting the actors in ``states``;
    an instance that does not answer in time counts as running none."""
    found: dict[int, list[str]] = {}
    instances = deployed.running()
    for instance in reversed(instances) if reverse else instances:
        try:
            rows = deployed.admin(instance, "actors", token)["data"]
        except httpx.HTTPError:
            continue
        for row in rows:
            if row["state"] in states:
                found.setdefault(row["user_id"], []).append(instance.id)
    return found


def doubly_owned(deployed: Deployment, token: str) -> set[int]:
    """Users run by two instances at once. One pass asks the instances one after the other,
    so a user moving from an earlier one to a later one could show on both: a user counts
    only when a second pass, in reverse order, shows it on two as well."""
    first = {u for u, ids in owners(deployed, token).items() if len(ids) > 1}
    if not first:
        return set()
    second = owners(deployed, token, reverse=True)
    return {u for u in first if len(second.get(u, [])) > 1}


def cluster_view(deployed: Deployment, token: str) -> dict[str, Any]:
    """``GET /api/admin/cluster`` through HAProxy: ``{"instance", "instances": [...]}``."""
    answer: dict[str, Any] = deployed.admin(None, "cluster", token)
    return answer.get("data", answer)


# --- the oracle -------------------------------------------------------------------------


def stored_events(deployed: Deployment) -> dict[str, list[dict[str, Any]]]:
    """Every user's event log in PostgreSQL, by username, as ``order_update`` messages."""
    query = (
        "SELECT u.username, e.seq, e.payload FROM order_events e "
        "JOIN users u ON u.id = e.user_id ORDER BY u.username, e.seq"
    )
    logs: dict[str, list[dict[str, Any]]] = {}
    with psycopg.connect(_conninfo(deployed)) as db:
        for name, seq, payload in db.execute(query):
            message = {"type": "order_update", "seq": seq, "data": payload}
            logs.setdefault(name, []).append(message)
    return logs


def _conninfo(deployed: Deployment) -> str:
    url = make_url(deployed.pg.url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def stored_orders(deployed: Deployment) -> dict[str, list[Stored]]:
    """Every order row in PostgreSQL, by username."""
    query = (
        "SELECT u.username, o.client_order_id, o.status, o.filled_quantity, "
        "o.exchange_order_id FROM orders o JOIN users u ON u.id = o.user_id"
    )
    rows: dict[str, list[Stored]] = {}
    with psycopg.connect(_conninfo(deployed)) as db:
        for name, cid, status, filled, exchange_id in db.execute(query):
            rows.setdefault(name, []).append(Stored(cid, status, Decimal(filled), exchange_id))
    return rows


async def sim_get(deployed: Deployment, path: str, **params: str) -> Any:
    """``GET /sim/admin/<path>`` of the simulator process."""
    async with httpx.AsyncClient(base_url=deployed.sim.url, timeout=10) as sim:
        response = await sim.get(f"/sim/admin/{path}", params=params)
    response.raise_for_status()
    return response.json()


async def settled(deployed: Deployment, users: list[User]) -> None:
    """Wait until every user's orders in PostgreSQL equal the exchange's record."""
    diffs: list[str] = []
    with trio.move_on_after(SETTLE_TIMEOUT):
        while True:
            stored = await trio.to_thread.run_sync(stored_orders, deployed)
            diffs = []
            for user in users:
                truth = await sim_get(deployed, "orders", api_key=user.account["api_key"])
                diffs += differences(stored.get(user.name, []), truth)
            if not diffs:
                return
            await trio.sleep(0.5)
    raise AssertionError(f"not settled after {SETTLE_TIMEOUT} s: {diffs[:10]}")


async def caught_up(deployed: Deployment, users: list[User]) -> None:
    """Wait until each session has seen its user's final state of every stored order."""
    stored = await trio.to_thread.run_sync(stored_orders, deployed)
    with trio.fail_after(60):
        for user in users:
            assert user.session is not None
            final = {(o.client_order_id, o.status) for o in stored.get(user.name, [])}
            while _seen(user.session) != final:
                await user.session.changed.wait()


def _seen(session: ResumingSession) -> set[tuple[str, str]]:
    last = {u["data"]["client_order_id"]: u["data"]["status"] for u in session.updates}
    return set(last.items())


async def check_sessions(deployed: Deployment, users: list[User]) -> None:
    """Each session saw its user's event log, as PostgreSQL holds it, once, in seq order, with
    no gap, across every reconnect; no change was stored twice; and a fresh session resuming
    through HAProxy replays the log's tail the same (one session replays at most what its
    channel holds: further behind, the server answers ``resync``, by design)."""
    logs = await trio.to_thread.run_sync(stored_events, deployed)
    for user in users:
        session = user.session
        assert session is not None and session.last is not None
        assert session.problems == [], (user.name, session.problems[:5])
        log = logs.get(user.name, [])
        assert [u["seq"] for u in log] == list(range(1, len(log) + 1))  # the store's own
        first = session.updates[0]["seq"] if session.updates else session.last + 1
        assert [u["seq"] for u in session.updates] == list(range(first, session.last + 1))
        assert session.updates == [u for u in log if first <= u["seq"]]
        states = Counter(repr(sorted(u["data"].items())) for u in log)
        assert [s for s, n in states.items() if n > 1] == []
        since = max(0, session.last - REPLAYED)
        tail = await replay(deployed.ws_base, user.token, session.last, since=since)
        assert tail == [u for u in log if since < u["seq"] <= session.last]
