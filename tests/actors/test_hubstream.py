"""run_hub_stream, the actor's stream runner through the hub: the real exchange client for a
simulator account, the real governor and hub, and a channel standing for the actor's mailbox
(MockClock). The oracle: the simulator's own listenKeys, weight and connection record."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from tests.actors.test_hub import _sim
from tests.actors.test_stream import fill_arrives_at_once
from tradercoin.actors.connbudget import ConnectionBudget
from tradercoin.actors.governor import RateGovernor
from tradercoin.actors.hub import StreamHub
from tradercoin.actors.hubstream import run_hub_stream
from tradercoin.actors.messages import Message, StreamChanged, StreamUpdates, Wake
from tradercoin.actors.parts import ActorConfig
from tradercoin.actors.user import UserActor
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.client import AccountClient, BinanceFutures
from tradercoin.exchange.protocol import Credentials
from tradercoin.exchange.sim import Fault, FaultKind, Simulator
from tradercoin.exchange.sim.validate import OrderRequest
from tradercoin.testing import open_test_system

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


async def test_real_actors_share_one_connection_and_a_drop_loses_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The whole service (supervisor, actors, store, sessions) with every actor's stream
    through one hub, wired as the supervisor will: the actor's stream runner replaced."""
    holder: dict[str, Any] = {}

    class HubActor(UserActor):
        def __init__(self, *args: Any, config: ActorConfig, **kw: Any) -> None:
            runner = functools.partial(
                run_hub_stream, hub=holder["hub"], governor=holder["governor"]
            )
            super().__init__(*args, config=dataclasses.replace(config, stream=runner), **kw)

    options = {"actor_class": HubActor}
    async with (
        open_test_system(stream=True, supervisor_options=options) as system,
        trio.open_nursery() as nursery,
    ):
        hub = StreamHub("ws://sim", budget=ConnectionBudget(), connect=system.sim.open_websocket)
        await nursery.start(hub.run)
        holder.update(hub=hub, governor=system.governor)
        users = [await system.add_user() for _ in range(30)]
        tabs = [await user.open_session() for user in users]
        for user in users:
            await user.wait_stream()
        rules = system.sim.statistics().connection_rules
        assert rules.streams_per_connection == [30] and rules.attempts_total == 1
        orders = [await u.place("BTCUSDT", "BUY", "LIMIT", "0.2", price="1000") for u in users]
        await trio.sleep(7)
        for tab, order in list(zip(tabs, orders, strict=True))[:10]:
            await fill_arrives_at_once(system, tab, order)
        system.inject("disconnect")  # every connection at once
        dropped_at = trio.current_time()
        for order in orders[10:]:
            system.sim.fill("BTCUSDT", order.exchange_order_id)
        for tab, order in list(zip(tabs, orders, strict=True))[10:]:
            got = await tab.wait_for_status(order.id, "filled")
            assert got.time - dropped_at <= 5.0  # the reconcile on StreamUp
        await trio.sleep(120)
        for tab, order in zip(tabs, orders, strict=True):
            assert [u["status"] for u in tab.updates(order.id)].count("filled") == 1
        rules = system.sim.statistics().connection_rules
        assert (rules.attempts_total, rules.refusals) == (2, 0)
        nursery.cancel_scope.cancel()
