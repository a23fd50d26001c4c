"""Two whole services (``open_service``, as ``tradercoin serve`` builds them) on one PostgreSQL
schema: the users are shared out, each user's actor runs on its owner only, operators see the
cluster on ``/api/admin/cluster`` and ``/metrics``, and a graceful shutdown hands every user
over to the instance that stays.

Oracle: ``pg_locks`` (which lock connection holds each user) against where the actors run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import trio

from tests.inproc import operator_headers, register, running_service
from tradercoin.cluster.locksql import conninfo
from tradercoin.cluster.ownership import Ownership
from tradercoin.service import Service
from tradercoin.store import generate_key


def lock_holders(url: str, ownership: Ownership) -> dict[int, int]:
    """user -> pid of the connection holding its ownership lock, from pg_locks."""
    assert ownership._conn is not None
    with psycopg.connect(conninfo(url), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT objid::bigint, pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND objsubid = 2 AND classid = %s::oid",
            (ownership._conn.ns,),
        ).fetchall()
    return {int(user): int(pid) for user, pid in rows}


def actors_on(service: Service) -> set[int]:
    return {status.user_id for status in service.supervisor.statuses()}


async def until(check: Callable[[], bool]) -> None:
    with trio.fail_after(30):
        while not check():  # noqa: ASYNC110  (ownership rounds have no event)
            await trio.sleep(0.1)


async def test_two_services_share_the_users_and_a_shutdown_hands_them_over(
    tmp_path: Path, pg_schema_url: str
) -> None:
    shared: dict[str, Any] = {"database_url": pg_schema_url, "master_key": generate_key()}
    async with running_service(tmp_path, instance_id="stays", **shared) as stays:
        assert isinstance(stays.directory, Ownership) and stays.instance_id == "stays"
        async with (
            running_service(tmp_path, instance_id="leaves", **shared) as leaves,
            httpx.AsyncClient(base_url=leaves.url) as http,
        ):
            for n in range(6):
                await register(http, f"trader{n}")  # keys provisioned: users to own
            admin = await operator_headers(leaves, http)
            a, b = stays.directory, leaves.directory
            assert isinstance(b, Ownership)
            await until(lambda: len(a.held) == 3 and len(b.held) == 3)
            await until(lambda: actors_on(stays) == a.held and actors_on(leaves) == b.held)
            holders = lock_holders(pg_schema_url, a)
            assert holders == {u: (a.pid if u in a.held else b.pid) for u in a.held | b.held}

            seen = b.rounds
            await until(lambda: b.rounds > seen)  # its view of the others is a round old
            response = await http.get("/api/admin/cluster", headers=admin)
            assert response.status_code == 200, response.text
            data = response.json()["data"]
            assert data["instance_id"] == "leaves" and data["clustered"] is True
            listed = {i["id"]: (i["users"], i["healthy"]) for i in data["instances"]}
            assert listed == {"stays": (3, True), "leaves": (3, True)}
            ids = {i["id"]: set(i["user_ids"]) for i in data["instances"]}
            assert ids == {"stays": a.held, "leaves": b.held}  # as in pg_locks (holders)
            assert data["statistics"]["owned_users"] == 3
            metrics = (await http.get("/metrics", headers=admin)).text
            assert "tradercoin_cluster_owned_users 3.0" in metrics
            users = a.held | b.held
        # "leaves" shut down gracefully: it said so, so "stays" takes its users at once
        await until(lambda: a.held == users)
        await until(lambda: actors_on(stays) == users)
        assert set(lock_holders(pg_schema_url, a).values()) == {a.pid}
        assert a.statistics().lease_losses == 0
