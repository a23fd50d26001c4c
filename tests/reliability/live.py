"""Clients of a live ``tradercoin serve`` for the reliability suites: registration and a
WebSocket session that resumes from its last seq (the processes are in tests/procs.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
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
            self.changed.set()
            self.changed = trio.Event()
        elif kind in ("resync", "error", "alert"):
            self.problems.append(f"unexpected {message}")
