"""The readiness probe (``Database.probe``, behind ``/readyz``) on PostgreSQL cut off by a real
network partition: the caller's cancel returns at once, the hung thread is left behind, and a
second probe does not pile another thread onto the dead link."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
import trio
from sqlalchemy.engine import make_url

from tests.cluster.dblink import DbLink
from tests.conftest import PG_URL, missing, pg_conninfo
from tradercoin.store.db import Database

HANG_GUARD = 30.0  # only ends a hang; the order of events is what is checked


@pytest.fixture
def link() -> Iterator[DbLink]:
    try:
        psycopg.connect(pg_conninfo(), connect_timeout=3).close()
    except psycopg.OperationalError as error:
        missing(f"PostgreSQL unreachable at {PG_URL}: {str(error).splitlines()[0]}")
    port = make_url(PG_URL).port or 5432
    relay = DbLink(port)
    try:
        yield relay
    finally:
        relay.close()


async def test_a_probe_of_a_partitioned_database_returns_when_cancelled(link: DbLink) -> None:
    url = make_url(PG_URL).set(host="127.0.0.1", port=link.port)
    db = Database(url.render_as_string(hide_password=False))
    try:
        await db.probe()  # a pooled connection, through the link
        link.partition()
        healed = trio.Event()
        order: list[str] = []

        async def heal_later() -> None:
            await trio.sleep(3)
            order.append("healed")
            link.heal()
            healed.set()

        with trio.fail_after(HANG_GUARD):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(heal_later)
                for attempt in ("first", "second"):  # the second waits for the hung thread
                    with trio.move_on_after(0.5) as probe:
                        await db.probe()
                    assert probe.cancelled_caught
                    order.append(f"{attempt} probe gave up")
        assert order == ["first probe gave up", "second probe gave up", "healed"]
        assert link.partitions == 1

        with trio.fail_after(HANG_GUARD):  # healed: a new connection answers again
            while True:
                try:
                    await db.probe()
                    break
                except Exception:  # the pool's connection died with the partition
                    await trio.sleep(0.1)
    finally:
        await db.dispose()
