"""The store announces committed events on ``tradercoin_events`` when told to (a cluster).

Oracle: a plain psycopg connection LISTENing, as another instance would.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests.store.conftest import EPOCH_MS, placed
from tradercoin.clock import FixedEpochClock
from tradercoin.store import SecretBox, generate_key, open_store


def _listen(url: str) -> psycopg.Connection:
    conn = psycopg.connect(
        make_url(url).set(drivername="postgresql").render_as_string(hide_password=False),
        autocommit=True,
    )
    conn.execute("LISTEN tradercoin_events")
    return conn


async def test_each_commit_announces_every_users_newest_seq(pg_database_url: str) -> None:
    box, clock = SecretBox.parse(generate_key("k1")), FixedEpochClock(EPOCH_MS)
    async with open_store(pg_database_url, secrets=box, clock=clock) as store:
        alice = await store.create_user("alice", "h")
        bob = await store.create_user("bob", "h")
        with _listen(pg_database_url) as listener:
            store.notify_events = True
            changes = [placed(alice.id, "a1"), placed(bob.id, "b1"), placed(alice.id, "a2")]
            await store.apply(changes)
            heard = sorted(n.payload for n in listener.notifies(timeout=10, stop_after=2))
            assert heard == sorted([f"{alice.id}:2", f"{bob.id}:1"])
            # what was announced is readable by anyone (it came after the commit)
            assert [e.seq for e in await store.events_since(alice.id, 0)] == [1, 2]

            store.notify_events = False
            await store.apply([placed(alice.id, "a3")])
            assert list(listener.notifies(timeout=0.2)) == []


async def test_sqlite_announces_nothing(tmp_path: Path) -> None:
    box, clock = SecretBox.parse(generate_key("k1")), FixedEpochClock(EPOCH_MS)
    async with open_store(f"sqlite:///{tmp_path / 's.db'}", secrets=box, clock=clock) as store:
        with pytest.raises(ValueError, match="only PostgreSQL"):
            store.notify_events = True
        assert not store.notify_events
