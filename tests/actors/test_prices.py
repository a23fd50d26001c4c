"""PriceFeed against the in-process simulator's ``/fapi/v1/premiumIndex`` under MockClock: the
prices sessions get are the simulator's marks, at most one per symbol per interval, read only
while someone subscribes, within the shared weight budget, and a stuck subscriber blocks
nobody."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
import trio
import trio.testing

from tradercoin.actors.governor import RateGovernor
from tradercoin.actors.prices import CHANNEL_SIZE, PriceFeed
from tradercoin.clock import FixedEpochClock
from tradercoin.exchange.client import BinanceFutures
from tradercoin.exchange.protocol import Usage
from tradercoin.exchange.sim import Simulator

EPOCH = 1_780_000_000_000


class World:
    def __init__(self, sim: Simulator, feed: PriceFeed, usages: list[Usage]) -> None:
        self.sim = sim
        self.feed = feed
        self.usages = usages

    def reads(self) -> int:
        return sum(1 for u in self.usages if u.path == "/fapi/v1/premiumIndex")


@pytest.fixture
async def world(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> AsyncIterator[World]:
    clock = FixedEpochClock(EPOCH)
    sim = Simulator(clock=clock, seed=0)
    await nursery.start(sim.run)
    usages: list[Usage] = []
    governor = RateGovernor(budget_per_minute=2400, safety_margin=0.1, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.asgi_app)) as http:
        exchange = BinanceFutures(http, clock=clock, on_usage=usages.append, rest_url="http://sim")
        feed = PriceFeed(exchange, governor, known=sim.specs, interval=1.0)
        await nursery.start(feed.run)
        yield World(sim, feed, usages)


async def test_prices_are_the_exchanges_marks_throttled_per_symbol(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    with world.feed.subscribe(["BTCUSDT", "NOPE"]) as sub:
        assert sub.symbols == frozenset({"BTCUSDT"})  # unknown symbols are ignored
        got = []
        start = trio.current_time()
        for step in range(5):
            world.sim.set_price("BTCUSDT", Decimal(60_000 + 10 * step))
            message = await sub.receive.receive()
            got.append((trio.current_time() - start, message))
            assert (message["type"], message["symbol"]) == ("price", "BTCUSDT")
            # the simulator's mark at that instant
            assert Decimal(message["mark_price"]) == world.sim.mark("BTCUSDT")
    times = [t for t, _ in got]
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times))  # <= 1 per second


async def test_no_reads_without_subscribers(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    await trio.sleep(30)
    assert world.reads() == 0
    with world.feed.subscribe(["BTCUSDT"]) as sub:
        await sub.receive.receive()
        await trio.sleep(9.5)
    reads = world.reads()
    assert 10 <= reads <= 11
    await trio.sleep(60)
    assert world.reads() == reads


async def test_a_stuck_subscriber_blocks_no_one(
    world: World, autojump_clock: trio.testing.MockClock
) -> None:
    with world.feed.subscribe(["BTCUSDT"]), world.feed.subscribe(["BTCUSDT"]) as live:
        for step in range(CHANNEL_SIZE + 5):  # the first subscriber never reads
            world.sim.set_price("BTCUSDT", Decimal(50_000 + step))
            message = await live.receive.receive()
            assert Decimal(message["mark_price"]) == world.sim.mark("BTCUSDT")
    assert world.feed.statistics().dropped >= 5
    assert world.feed.statistics().subscribers == 0


async def test_no_room_in_the_budget_skips_the_tick(
    nursery: trio.Nursery, autojump_clock: trio.testing.MockClock
) -> None:
    clock = FixedEpochClock(EPOCH)
    sim = Simulator(clock=clock, seed=0)
    await nursery.start(sim.run)
    governor = RateGovernor(budget_per_minute=100, safety_margin=0.0, clock=clock)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=sim.asgi_app)) as http:
        exchange = BinanceFutures(http, clock=clock, rest_url="http://sim")
        feed = PriceFeed(exchange, governor, known=sim.specs)
        await governor.spend(governor.limit)  # the actors took the whole minute
        with feed.subscribe(["BTCUSDT"]):
            await feed.tick()
        assert feed.statistics().reads == 0 and feed.statistics().skipped_for_budget == 1
