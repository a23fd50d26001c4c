"""Two service instances in one trio run on one PostgreSQL database, with a fixed directory.

Each test gets a database of its own (LISTEN/NOTIFY is per database, so tests running at the
same time never hear each other), dropped afterwards. The instances reach each other over
httpx's ASGI transport (:class:`PeerTransport`: ``http://a.test`` is instance a's app), and
share one simulator: the exchange, whose orders are the tests' oracle.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import psycopg
import pytest
import trio
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL, missing, pg_conninfo
from tradercoin.clock import FixedEpochClock
from tradercoin.cluster.directory import InstanceInfo, StaticDirectory
from tradercoin.config import PollPolicy
from tradercoin.exchange.sim import Simulator
from tradercoin.store.secrets import generate_key
from tradercoin.testing import EPOCH_MS, TestSystem, TestUser, open_test_system

FAST = PollPolicy(interval=0.5, fast_interval=0.5, reconcile_interval=0.5)
A = InstanceInfo("a", "http://a.test", True, 0, 0.0)
B = InstanceInfo("b", "http://b.test", True, 0, 0.0)

Hook = Callable[[httpx.Request, Callable[[], Awaitable[httpx.Response]]], Awaitable[httpx.Response]]


@pytest.fixture
def pg_database_url() -> Iterator[str]:
    """A fresh, empty database on the test server; dropped afterwards."""
    name = f"tc_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(pg_conninfo(), autocommit=True, connect_timeout=3) as admin:
            admin.execute(f"CREATE DATABASE {name}")
    except psycopg.OperationalError as error:
        missing(f"PostgreSQL unreachable at {PG_URL}: {str(error).splitlines()[0]}")
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(pg_conninfo(), autocommit=True, connect_timeout=10) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


class PeerTransport(httpx.AsyncBaseTransport):
    """Internal calls to ``http://<id>.test`` go to that instance's app in memory; ``hook``
    (if set) wraps each one (a test's fault)."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}
        self.hook: Hook | None = None
        self.calls: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls.append(request.url.path)
        target = self.apps[request.url.host]

        async def forward() -> httpx.Response:
            response = await target.handle_async_request(request)
            await response.aread()
            return response

        return await (forward() if self.hook is None else self.hook(request, forward))


@dataclass
class Cluster:
    a: TestSystem
    b: TestSystem
    owners: dict[int, InstanceInfo]
    peers: PeerTransport
    sim: Simulator

    async def user_on_a(self, name: str) -> tuple[TestUser, TestUser]:
        """A user owned by a (its actor there): the same user as seen from a and from b."""
        on_a = await self.a.add_user(name, policy=FAST)
        self.owners[on_a.user_id] = A
        on_b = TestUser(self.b, on_a.user_id, on_a.api_key)
        return on_a, on_b


@asynccontextmanager
async def open_cluster(url: str, **options: Any) -> AsyncIterator[Cluster]:
    """Instances a and b on ``url`` sharing a simulator; users are added on a."""
    sim = Simulator(clock=FixedEpochClock(EPOCH_MS), market_fill_latency=0.3)
    owners: dict[int, InstanceInfo] = {}
    peers = PeerTransport()
    settings = {"cluster": "on", "master_key": generate_key()}
    async with (
        trio.open_nursery() as nursery,
        httpx.AsyncClient(transport=peers) as internal,
    ):
        await nursery.start(sim.run)
        systems = []
        for info in (A, B):
            system = open_test_system(
                database_url=url,
                poll=FAST,
                sim=sim,
                settings={**settings, "instance_id": info.id},
                directory=StaticDirectory(info.id, owners),
                internal_http=internal,
                **options,
            )
            systems.append(system)
        async with systems[0] as a, systems[1] as b:
            for info, system in ((A, a), (B, b)):
                app: Any = system.service.app.asgi_app
                peers.apps[f"{info.id}.test"] = httpx.ASGITransport(app=app)
            yield Cluster(a, b, owners, peers, sim)
        nursery.cancel_scope.cancel()
