"""run_hub_stream, the actor's stream runner through the hub: the real exchange client for a
simulator account, the real governor and hub, and a channel standing for the actor's mailbox
(MockClock). The oracle: the simulator's own listenKeys, weight and connection record."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import httpx
import pytest
import trio
import trio.testing

from tests.actors.test_hub import _sim
from tradercoin.actors.connbudget import ConnectionBudget
from tradercoin.actors.governor import RateGovernor
from tradercoin.actors.hub import StreamHub
from tradercoin.actors.hubstream import run_hub_stream
from tradercoin.actors.messages import Message, StreamChanged, StreamUpdates, Wake
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.client import AccountClient, BinanceFutures
from tradercoin.exchange.protocol import Credentials
from tradercoin.exchange.sim import Fault, FaultKind, Simulator
from tradercoin.exchange.sim.validate import OrderRequest

EPOCH_MS = 1_790_000_000_000


@dataclass
class Actor:
    """What the runner talks to: a client of one simulator account and a mailbox."""

    sim: Simulator
    hub: StreamHub
    api_key: str
    client: AccountClient
    inbox: trio.MemoryReceiveChannel[Message]
    scope: trio.CancelScope

    async def next(self) -> Message:
        with trio.fail_after(120):
            return await self.inbox.receive()

    def place(self) -> int:
        spec = self.sim.specs["BTCUSDT"]
        request = OrderRequest(
            spec, "BUY", "LIMIT", "GTC", Decimal("0.010"), Decimal("49000"), None, False, False, 0
        )
        return self.sim.place(self.sim.account(self.api_key), request).order_id


@pytest.fixture
async def actor(nursery: trio.Nursery) -> AsyncIterator[Actor]:
    sim = await _sim(nursery)
    clock = FixedEpochClock(EPOCH_MS)
    governor = RateGovernor(clock=clock)
    hub = StreamHub("ws://sim", budget=ConnectionBudget(), connect=sim.open_websocket)
    await nursery.start(hub.run)
    transport = httpx.ASGITransport(app=sim.asgi_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as http:
        exchange = BinanceFutures(http, clock=clock, on_usage=governor.on_usage, rest_url="")
        api_key, secret = sim.create_account()
        client = exchange.for_account(Credentials(api_key, secret))
        send, receive = trio.open_memory_channel[Message](64)
        scope = trio.CancelScope()

        async def runner() -> None:
            with scope:
                await run_hub_stream(client, user_id=7, sink=send, hub=hub, governor=governor)

        nursery.start_soon(runner)
        yield Actor(sim, hub, api_key, client, receive, scope)
        scope.cancel()


async def test_healthy_then_updates(autojump_clock: trio.testing.MockClock, actor: Actor) -> None:
    assert await actor.next() == StreamChanged("healthy", "connected")
    placed = actor.place()
    update = await actor.next()
    assert isinstance(update, StreamUpdates)
    assert [u.exchange_order_id for u in update.updates] == [placed]


async def test_an_expired_key_is_recreated_and_swapped_on_the_same_connection(
    autojump_clock: trio.testing.MockClock, actor: Actor
) -> None:
    await actor.next()
    before = actor.sim.statistics().connection_rules.attempts_total
    actor.sim.inject(Fault(FaultKind.LISTEN_KEY_EXPIRED), account=actor.api_key)
    assert await actor.next() == StreamChanged("down", "listenKey expired")
    assert await actor.next() == StreamChanged("healthy", "connected")
    placed = actor.place()
    update = await actor.next()
    assert isinstance(update, StreamUpdates) and update.updates[0].exchange_order_id == placed
    assert actor.sim.statistics().connection_rules.attempts_total == before == 1
    assert actor.sim.statistics().live_listen_keys == 1


async def test_keepalives_keep_the_key_for_hours_and_a_gap_wakes_the_actor(
    autojump_clock: trio.testing.MockClock, actor: Actor
) -> None:
    await actor.next()
    await trio.sleep(5 * 3600)  # the key lives 60 min unless PUT: the runner PUTs it
    assert actor.sim.statistics().requests_by_path["/fapi/v1/listenKey"] >= 10
    actor.sim.inject(Fault(FaultKind.STREAM_GARBLED), account=actor.api_key)
    actor.place()
    assert await actor.next() == Wake()
    placed = actor.place()
    update = await actor.next()
    assert isinstance(update, StreamUpdates) and update.updates[0].exchange_order_id == placed


async def test_cancelled_it_leaves_the_hub(
    autojump_clock: trio.testing.MockClock, actor: Actor
) -> None:
    await actor.next()
    assert actor.hub.statistics().keys == 1
    actor.scope.cancel()
    await trio.sleep(1)
    assert actor.hub.statistics().keys == 0
    assert actor.sim.statistics().connection_rules.connections_open == 0
