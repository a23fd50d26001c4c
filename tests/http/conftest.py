"""Fixtures of the HTTP suites: a real SQLite store in a temp dir and the app around it, and
(``server``) a real ``tradercoin serve`` subprocess on a free loopback port.

These touch a real database (worker threads) and sockets, so they run without autojump.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.procs import free_port, wait_healthy
from tradercoin.clock import FixedEpochClock
from tradercoin.config import Settings
from tradercoin.http.app import create_app
from tradercoin.http.context import HttpContext
from tradercoin.http.security import Passwords, TokenSigner
from tradercoin.orders import OrderType, Side, TimeInForce, new_order
from tradercoin.store import SecretBox, Store, User, generate_key, open_store

EPOCH_MS = 1_767_225_600_000  # 2026-01-01


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    clock = FixedEpochClock(EPOCH_MS)
    secrets = SecretBox.parse(generate_key())
    async with open_store(f"sqlite:///{tmp_path}/http.db", secrets=secrets, clock=clock) as s:
        yield s


@pytest.fixture
def ctx(store: Store) -> HttpContext:
    clock = FixedEpochClock(EPOCH_MS)
    return HttpContext(
        settings=Settings(),
        store=store,
        clock=clock,
        tokens=TokenSigner(b"test key", clock=clock),
        passwords=Passwords.fast_for_tests(),
    )


@pytest.fixture
def client(ctx: HttpContext) -> Any:
    return create_app(ctx).test_client()


async def register(client: Any, username: str = "alice", password: str = "correct horse") -> str:
    """Register through the API; returns the bearer token."""
    response = await client.post(
        "/api/auth/register", json={"username": username, "password": password}
    )
    assert response.status_code == 201, await response.get_data(as_text=True)
    token: str = (await response.get_json())["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def add_orders(store: Store, user: User, count: int, symbol: str = "BTCUSDT") -> list[Any]:
    """Store ``count`` pending LIMIT orders for ``user`` (as the actor would); their events."""
    changes = [
        new_order(
            user_id=user.id,
            symbol=symbol,
            side=Side.BUY,
            type=OrderType.LIMIT,
            quantity=Decimal("0.010"),
            price=Decimal(50_000 + i),
            time_in_force=TimeInForce.GTC,
            client_order_id=f"tc-{user.id}-{symbol}-{i}",
            now=EPOCH_MS + i,
        )
        for i in range(count)
    ]
    return await store.apply(changes)


# ----------------------------------------------------------------- a real `tradercoin serve`


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """``tradercoin serve`` in a subprocess; its base URL once /healthz answers."""
    port = free_port()
    env = {
        **os.environ,
        "TRADERCOIN_PORT": str(port),
        "TRADERCOIN_DATABASE_URL": f"sqlite:///{tmp_path}/serve.db",
        "TRADERCOIN_MASTER_KEY": generate_key(),
    }
    log = (tmp_path / "serve.log").open("w")
    command = [sys.executable, "-m", "tradercoin.cli", "serve"]
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, tmp_path / "serve.log")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()[-2000:]
