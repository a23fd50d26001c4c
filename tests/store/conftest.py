"""Store fixtures: every store test runs on SQLite (a temp file) and on PostgreSQL (a fresh
schema per test, dropped afterwards)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from tradercoin.clock import FixedEpochClock
from tradercoin.orders import OrderChange, OrderType, Side, TimeInForce, new_order
from tradercoin.store import SecretBox, Store, User, generate_key, open_store

EPOCH_MS = 1_750_000_000_000


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return str(request.getfixturevalue("pg_schema_url"))


@pytest.fixture
def box() -> SecretBox:
    return SecretBox.parse(generate_key("k1"))


@pytest.fixture
async def clock() -> FixedEpochClock:
    return FixedEpochClock(EPOCH_MS)


@pytest.fixture
async def store(db_url: str, box: SecretBox, clock: FixedEpochClock) -> AsyncIterator[Store]:
    async with open_store(db_url, secrets=box, clock=clock) as opened:
        yield opened


@pytest.fixture
async def alice(store: Store) -> User:
    return await store.create_user("alice", "hash-a")


@pytest.fixture
async def bob(store: Store) -> User:
    return await store.create_user("bob", "hash-b")


def placed(
    user_id: int,
    client_order_id: str,
    *,
    symbol: str = "BTCUSDT",
    now: int = EPOCH_MS,
    quantity: str = "0.010",
    price: str | None = "30000.5",
) -> OrderChange:
    """The change that records a new pending LIMIT (or MARKET, price=None) order."""
    return new_order(
        user_id=user_id,
        symbol=symbol,
        side=Side.BUY,
        type=OrderType.LIMIT if price else OrderType.MARKET,
        quantity=Decimal(quantity),
        price=None if price is None else Decimal(price),
        time_in_force=TimeInForce.GTC if price else None,
        client_order_id=client_order_id,
        now=now,
    )
