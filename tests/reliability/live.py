"""Clients of a live ``tradercoin serve`` for the reliability and cluster suites:
registration, a WebSocket session that resumes from its last seq, and the comparison of our
orders with the exchange's record (the processes are in tests/procs.py)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import trio
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

PASSWORD = "reliable pass 1"
RECONNECT_DELAY = 0.2


async def register(http: httpx.AsyncClient, name: str) -> dict[str, str]:
    """Register ``name``; the bearer header of its token (the cookie is dropped)."""
    response = await http.post("/api/auth/register", json={"username": name, "password": PASSWORD})
    assert response.status_code == 201, response.text
    http.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


@dataclass(eq=False)
class ResumingSession:
    """A /ws client that reconnects with ``?since=<last seq>`` whenever the connection drops.

    ``updates`` holds every order_update in arrival order; ``problems`` every gap, duplicate,
    resync, alert or error it saw (a correct server leaves it empty).
    """

    ws_base: str
    token: str
    last: int | None = None
    updates: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    connects: int = 0
    changed: trio.Event = field(default_factory=trio.Event)
    greeted: trio.Event = field(default_factory=trio.Event)  # the first hello arrived
    keep: bool = True  # False: count updates without keeping them (long benchmarks)
    on_update: Callable[[dict[str, Any]], None] | None = None
    received: int = 0

    def url(self) -> str:
        since = "" if self.last is None else f"&since={self.last}"
        return f"{self.ws_base}/ws?token={self.token}{since}"

    async def run(self) -> None:
        """Read until cancelled, reconnecting after any failure."""
        while True:
            try:
                async with open_websocket_url(self.url()) as ws:
                    self.connects += 1
                    while True:
                        self._take(json.loads(await ws.get_message()))
            except (ConnectionClosed, HandshakeError, OSError, trio.BrokenResourceError):
                await trio.sleep(RECONNECT_DELAY)

    def _take(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "hello":
            self.greeted.set()
            if self.last is None:
                self.last = message["seq"]
            elif message["seq"] < self.last:
                self.problems.append(f"hello seq {message['seq']} < last {self.last}")
        elif kind == "order_update":
            if self.last is not None and message["seq"] != self.last + 1:
                self.problems.append(f"seq {message['seq']} after {self.last}")
            self.last = message["seq"]
            self.received += 1
            if self.keep:
                self.updates.append(message)
            if self.on_update is not None:
                self.on_update(message)
            self._wake()
        elif kind in ("resync", "error", "alert"):
            self.problems.append(f"unexpected {message}")
            self._wake()

    def _wake(self) -> None:
        self.changed.set()
        self.changed = trio.Event()


async def replay(ws_base: str, token: str, until: int, since: int = 0) -> list[dict[str, Any]]:
    """Every event of the user after ``since`` up to ``until``, read by a fresh session.
    Fails at once on a ``resync`` (the server's answer to a session further behind than its
    channel holds) instead of waiting for events that will not come."""
    session = ResumingSession(ws_base, token, last=since)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(session.run)
        with trio.fail_after(30):
            while session.last is None or session.last < until:
                await session.changed.wait()
                assert session.problems == [], session.problems[:3]
        nursery.cancel_scope.cancel()
    return session.updates


@dataclass(frozen=True, slots=True)
class Stored:
    """One of our orders, as the comparison with the exchange needs it."""

    client_order_id: str
    status: str
    filled: Decimal
    exchange_order_id: int | None


def in_flight(truth: list[dict[str, Any]]) -> list[str]:
    """The exchange's orders still changing by themselves: a MARKET order the simulator has
    not filled yet (it fills after ``--fill-latency``). Equal records while one exists are a
    moment, not quiescence."""
    return [
        f"{o['client_order_id']}: MARKET still {o['status']} at the exchange"
        for o in truth
        if o["type"] == "MARKET" and o["status"] in ("NEW", "PARTIALLY_FILLED")
    ]


def differences(ours: list[Stored], truth: list[dict[str, Any]]) -> list[str]:
    """Where our orders differ from the exchange's record (``/sim/admin/orders``) by client
    order id, and any client order id we stored, or the exchange received, twice; [] when
    equal and settled (nothing :func:`in_flight`). Our orders the exchange never saw must
    have ended rejected, expired or canceled."""
    counts = Counter(o.client_order_id for o in ours)
    found = [f"{cid}: stored {n} times" for cid, n in counts.items() if n > 1]
    at_exchange = Counter(o["client_order_id"] for o in truth)
    found += [f"{cid}: placed {n} times at the exchange" for cid, n in at_exchange.items() if n > 1]
    theirs = {o["client_order_id"]: o for o in truth}
    for order in ours:
        real = theirs.pop(order.client_order_id, None)
        if real is None:
            if order.status not in ("rejected", "expired", "canceled"):
                found.append(f"{order.client_order_id} {order.status}: not at the exchange")
            continue
        want = (real["status"].lower(), Decimal(real["executed_qty"]), int(real["order_id"]))
        got = (order.status, order.filled, order.exchange_order_id)
        if got != want:
            found.append(f"{order.client_order_id}: ours {got}, exchange {want}")
    found.extend(f"{cid}: at the exchange only" for cid in theirs)
    return found + in_flight(truth)
