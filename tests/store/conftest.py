"""Store fixtures: every store test runs on SQLite (a temp file) and on PostgreSQL (a fresh
schema per test, dropped afterwards)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL, missing
from tradercoin.clock import FixedEpochClock
from tradercoin.orders import OrderChange, OrderType, Side, TimeInForce, new_order
from tradercoin.store import SecretBox, Store, User, generate_key, open_store

EPOCH_MS = 1_750_000_000_000


def _pg_conninfo() -> str:
    return make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(_pg_conninfo(), autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        missing(f"PostgreSQL unreachable at {PG_URL}: {str(error).splitlines()[0]}")
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield (
                make_url(PG_URL)
                .update_query_dict({"options": f"-csearch_path={schema}"})
                .render_as_string(hide_password=False)
            )
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


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
