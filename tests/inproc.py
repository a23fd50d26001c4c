"""The whole service in-process, as ``tradercoin serve`` builds it (``open_service``): a temp
SQLite file, the embedded simulator, the supervisor and Hypercorn on free loopback ports, with
httpx and trio-websocket as clients. Real sockets and threads: use it without autojump."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from tradercoin.config import Settings
from tradercoin.http.security import Passwords
from tradercoin.service import Service, open_service
from tradercoin.store import Role, generate_key

__all__ = [
    "PASSWORD",
    "next_message",
    "operator_headers",
    "register",
    "running_service",
    "ws_url",
]

PASSWORD = "pass word 1"


@asynccontextmanager
async def running_service(tmp_path: Path, **settings: Any) -> AsyncIterator[Service]:
    """``open_service`` on a fresh database in ``tmp_path``; ``settings`` override the rest."""
    options: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path}/service.db",
        "master_key": generate_key(),
        "port": 0,
        "sim_port": 0,
        **settings,
    }
    async with open_service(Settings(**options), passwords=Passwords.fast_for_tests()) as running:
        yield running


async def register(http: httpx.AsyncClient, name: str, password: str = PASSWORD) -> dict[str, str]:
    """Register ``name``; the bearer header of its token (the cookie is dropped)."""
    response = await http.post("/api/auth/register", json={"username": name, "password": password})
    assert response.status_code == 201, response.text
    http.cookies.clear()
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def operator_headers(service: Service, http: httpx.AsyncClient) -> dict[str, str]:
    """An operator (made in the store) logged in: the bearer header of its token."""
    password = "root pass 1 for the tests"
    hashed = await service.ctx.passwords.hash(password)
    await service.store.create_user("root", hashed, Role.OPERATOR)
    login = await http.post("/api/auth/login", json={"username": "root", "password": password})
    assert login.status_code == 200, login.text
    http.cookies.clear()
    return {"Authorization": f"Bearer {login.json()['token']}"}


def ws_url(service: Service, headers: dict[str, str], since: int | None = None) -> str:
    token = headers["Authorization"].removeprefix("Bearer ")
    base = service.url.replace("http://", "ws://")
    return f"{base}/ws?token={token}" + ("" if since is None else f"&since={since}")


async def next_message(ws: Any, kind: str) -> dict[str, Any]:
    """The next message of ``kind`` (others skipped); the caller bounds the wait."""
    while True:
        message: dict[str, Any] = json.loads(await ws.get_message())
        if message["type"] == kind:
            return message
