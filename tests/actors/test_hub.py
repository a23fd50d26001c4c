"""The stream hub against the in-process simulator with Binance's connection rules, under
MockClock. The oracle is the simulator's own record (its connection-rule statistics, the
orders it made) and what each owner's channel received."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket

from tests.sim.test_connrules import _small as _sim
from tradercoin.actors.connbudget import ConnectionBudget
from tradercoin.actors.hub import (
    HubMessage,
    HubOptions,
    StreamDown,
    StreamEvents,
    StreamGap,
    StreamHub,
    StreamUp,
)
from tradercoin.clock import system_clock
from tradercoin.exchange.sim import Fault, FaultKind, Simulator, serve_simulator
from tradercoin.exchange.sim.engine import Account
from tradercoin.exchange.sim.errors import ApiError
from tradercoin.exchange.sim.validate import OrderRequest


@dataclass(eq=False)
class Owner:
    """One user: its account, its listenKey and what its channel received."""

    api_key: str
    account: Account
    key: str
    send: trio.MemorySendChannel[HubMessage]
    receive: trio.MemoryReceiveChannel[HubMessage]
    got: list[HubMessage] = field(default_factory=list)

    def drain(self) -> list[HubMessage]:
        while True:
            try:
                self.got.append(self.receive.receive_nowait())
            except trio.WouldBlock:
                return self.got

    def order_ids(self) -> list[int]:
        return [
            u.exchange_order_id
            for m in self.drain()
            if isinstance(m, StreamEvents)
            for u in m.updates
        ]

    def kinds(self) -> list[type]:
        return [type(m) for m in self.drain()]


async def _hub(
    nursery: trio.Nursery, sim: Simulator, budget: ConnectionBudget | None = None, **options: Any
) -> StreamHub:
    hub = StreamHub(
        "ws://sim", budget=budget or ConnectionBudget(), connect=sim.open_websocket,
        options=HubOptions(**options),
    )  # fmt: skip
    await nursery.start(hub.run)
    return hub


def _owners(sim: Simulator, count: int, buffer: int = 16) -> list[Owner]:
    owners = []
    for _ in range(count):
        api_key, _secret = sim.create_account()
        account = sim.account(api_key)
        send, receive = trio.open_memory_channel[HubMessage](buffer)
        owners.append(Owner(api_key, account, sim.streams.create_key(account), send, receive))
    return owners


def _place(sim: Simulator, owner: Owner) -> int:
    """A resting BTCUSDT limit order: the exchange pushes its NEW event."""
    spec = sim.specs["BTCUSDT"]
    request = OrderRequest(
        spec, "BUY", "LIMIT", "GTC", Decimal("0.010"), Decimal("49000"), None, False, False, 0
    )
    return sim.place(owner.account, request).order_id


async def _join_all(hub: StreamHub, owners: list[Owner]) -> None:
    for owner in owners:
        await hub.join(owner.key, owner.send)


async def _wait_up(owners: list[Owner]) -> None:
    """Until every owner's latest health message is StreamUp."""
    for owner in owners:
        while not _up(owner):
            owner.got.append(await owner.receive.receive())


def _up(owner: Owner) -> bool:
    health = [m for m in owner.drain() if isinstance(m, StreamUp | StreamDown)]
    return bool(health) and isinstance(health[-1], StreamUp)


async def test_thousands_of_keys_ride_ten_connections(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = await _sim(nursery)
    hub = await _hub(nursery, sim)
    owners = _owners(sim, 2000)
    start = trio.current_time()
    await _join_all(hub, owners)
    await _wait_up(owners)
    assert trio.current_time() - start < 10  # ten handshakes 0.5 s apart, then SUBSCRIBEs
    rules = sim.statistics().connection_rules
    assert rules.streams_per_connection == [200] * 10
    assert (rules.attempts_total, rules.refusals, rules.closed_for_messages) == (10, 0, 0)
    assert hub.statistics().keys_per_connection == (200,) * 10
    chosen = owners[::97]
    placed = {owner.key: _place(sim, owner) for owner in chosen}
    await trio.sleep(1)
    for owner in owners:
        assert owner.order_ids() == ([placed[owner.key]] if owner.key in placed else [])


async def test_join_and_leave_reconnect_nothing_and_disturb_nobody(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = await _sim(nursery)
    hub = await _hub(nursery, sim, keys_per_connection=3)
    owners = _owners(sim, 6)
    await _join_all(hub, owners[:5])
    await _wait_up(owners[:5])
    before = sim.statistics().connection_rules
    assert before.streams_per_connection == [3, 2]
    subscription = await hub.join(owners[5].key, owners[5].send)
    assert subscription.hidden == {owners[5].key}
    first = _place(sim, owners[0])  # while the SUBSCRIBE is on its way
    await _wait_up(owners)
    await hub.leave(owners[1].key)
    second = _place(sim, owners[0])
    await trio.sleep(1)
    after = sim.statistics().connection_rules
    assert after.attempts_total == before.attempts_total == 2
    assert after.streams_per_connection == [3, 2]
    assert owners[0].order_ids() == [first, second]
    assert all(StreamDown not in o.kinds() for o in owners)
    _place(sim, owners[1])
    await trio.sleep(1)
    assert owners[1].order_ids() == []  # left: nothing more for it
    for owner in owners[2:3]:  # the last key of a connection leaves: it closes
        await hub.leave(owner.key)
    await hub.leave(owners[0].key)
    await trio.sleep(1)
    assert sim.statistics().connection_rules.streams_per_connection == [3]


async def test_a_refused_handshake_pauses_attempts_and_never_earns_a_ban(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = await _sim(nursery, max_attempts=2, attempt_window=60)
    budget = ConnectionBudget(attempts_per_window=50)  # more than this exchange allows
    hub = await _hub(nursery, sim, budget, keys_per_connection=1)
    owners = _owners(sim, 3)
    start = trio.current_time()
    await _join_all(hub, owners)
    await _wait_up(owners)
    rules = sim.statistics().connection_rules
    assert (rules.refusals, rules.banned_refusals) == (1, 0)
    assert trio.current_time() - start == pytest.approx(60, abs=1)  # the Retry-After
    assert hub.statistics().refusals == 1
    assert all(StreamDown not in o.kinds() for o in owners)


async def _pair(
    nursery: trio.Nursery, buffer: int = 16
) -> tuple[Simulator, StreamHub, Owner, Owner]:
    """A simulator, a hub, and two owners whose streams are up on one connection."""
    sim = await _sim(nursery)
    hub = await _hub(nursery, sim)
    alice, bob = _owners(sim, 2, buffer)
    await _join_all(hub, [alice, bob])
    await _wait_up([alice, bob])
    return sim, hub, alice, bob


async def test_an_expired_key_affects_only_its_owner(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim, hub, alice, bob = await _pair(nursery)
    sim.inject(Fault(FaultKind.LISTEN_KEY_EXPIRED), account=alice.api_key)
    await trio.sleep(1)
    assert alice.drain()[-1] == StreamDown(alice.key, "listenKey expired")
    bobs = _place(sim, bob)
    await trio.sleep(1)
    assert bob.order_ids() == [bobs] and bob.kinds() == [StreamUp, StreamEvents]
    new_key = sim.streams.create_key(alice.account)
    assert new_key != alice.key
    subscription = hub.replace(alice.key, new_key)
    assert subscription.hidden == {new_key}
    await trio.sleep(1)
    assert alice.drain()[-1] == StreamUp(new_key)
    alices = _place(sim, alice)
    await trio.sleep(1)
    assert alice.order_ids() == [alices]
    assert sim.statistics().connection_rules.attempts_total == 1


async def test_garbage_frames_mark_a_gap_for_their_owner_only(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim, hub, alice, bob = await _pair(nursery)
    sim.inject(Fault(FaultKind.STREAM_GARBLED), account=alice.api_key)
    _place(sim, alice)
    bobs = _place(sim, bob)
    await trio.sleep(1)
    assert [type(m) for m in alice.drain()] == [StreamUp, StreamGap]
    assert alice.order_ids() == [] and bob.order_ids() == [bobs]
    assert hub.statistics().connections == 1 and sim.faults.hits == 1


async def test_a_slow_owner_loses_events_to_a_gap_and_a_gone_one_leaves(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim, hub, alice, bob = await _pair(nursery, buffer=2)
    placed = [_place(sim, alice) for _ in range(4)]  # alice reads nothing meanwhile
    bobs = _place(sim, bob)
    await trio.sleep(0.01)
    assert alice.order_ids() == placed[:2] and bob.order_ids() == [bobs]
    await trio.sleep(1.0)
    assert alice.drain()[-1] == StreamGap(alice.key, "2 events dropped: the channel was full")
    assert hub.statistics().events_dropped == 2
    bob.receive.close()
    _place(sim, bob)
    await trio.sleep(1)
    assert hub.statistics().keys == 1
    assert sim.statistics().connection_rules.streams_per_connection == [1]


async def test_the_ten_messages_rule_closing_a_connection_touches_only_its_keys(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = await _sim(nursery, max_messages=1)  # an exchange stricter than Binance
    hub = await _hub(nursery, sim, keys_per_connection=4, url_keys=4, subscribe_batch=1)
    owners = _owners(sim, 6)
    await _join_all(hub, owners[:5])  # [4 keys in the URL] [1 key]
    await _wait_up(owners[:5])
    await _join_all(hub, owners[5:])
    await hub.leave(owners[4].key)
    # the second connection gets a SUBSCRIBE and an UNSUBSCRIBE 0.25 s apart: closed
    await trio.sleep(1)
    assert sim.statistics().connection_rules.closed_for_messages == 1
    assert hub.statistics().connections == 1
    await _wait_up(owners[:4] + owners[5:])  # reconnected after a 1 s back-off, key in the URL
    assert all(StreamDown not in o.kinds() for o in owners[:4])
    placed = _place(sim, owners[5])
    await trio.sleep(1)
    assert owners[5].order_ids() == [placed]


async def test_all_connections_dropped_everyone_back_within_60s_without_refusal(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = await _sim(nursery)
    hub = await _hub(nursery, sim)
    owners = _owners(sim, 10_000, buffer=4)
    await _join_all(hub, owners)
    await _wait_up(owners)
    assert sim.statistics().connection_rules.streams_per_connection == [200] * 50
    dropped = trio.current_time()
    sim.inject(Fault(FaultKind.DISCONNECT))
    await trio.sleep(0.01)
    assert all(isinstance(o.drain()[-1], StreamDown) for o in owners)
    await _wait_up(owners)
    assert trio.current_time() - dropped <= 60
    rules = sim.statistics().connection_rules
    assert (rules.refusals, rules.banned_refusals, rules.attempts_total) == (0, 0, 100)
    assert rules.max_attempts_in_window == 100
    assert rules.streams_per_connection == [200] * 50
    assert hub.statistics().drops == 50


async def test_rotation_before_24h_is_staggered_and_invisible_to_owners(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = await _sim(nursery)
    hub = await _hub(nursery, sim, keys_per_connection=2)
    owners = _owners(sim, 6)
    nursery.start_soon(_keep_keys_alive, sim, owners)
    await _join_all(hub, owners)
    await _wait_up(owners)
    start = trio.current_time()
    await trio.sleep_until(start + 22 * 3600 + 20 * 60)
    assert hub.statistics().rotations == 1  # offsets 14, 37 and 51 min after 22 h
    await trio.sleep_until(start + 25 * 3600)
    assert all(o.kinds() == [StreamUp] for o in owners)
    stats = hub.statistics()
    assert stats.rotations == 3 and stats.drops == 0
    rules = sim.statistics().connection_rules
    assert rules.attempts_total == 6 and rules.refusals == 0
    assert rules.streams_per_connection == [2, 2, 2]


async def _keep_keys_alive(sim: Simulator, owners: list[Owner]) -> None:
    while True:
        await trio.sleep(1800)
        for owner in owners:
            sim.streams.keepalive(owner.account, owner.key)


class _Wire(trio.abc.Stream):
    """A client stream that delivers what it receives ``delay`` seconds late (latency, not
    a throughput limit), and goes dead when ``cut`` is set: nothing in, nothing out."""

    def __init__(
        self, inner: trio.abc.Stream, cut: trio.Event, delay: float, nursery: trio.Nursery
    ) -> None:
        self._inner, self._cut, self._delay = inner, cut, delay
        self._arrived, self._due = trio.open_memory_channel[tuple[float, bytes]](100_000)
        nursery.start_soon(self._pump)

    async def _pump(self) -> None:
        while data := bytes(await self._inner.receive_some(4096)):
            await self._arrived.send((trio.current_time() + self._delay, data))
        await self._arrived.send((trio.current_time() + self._delay, b""))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if not self._cut.is_set():
            await self._inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        while True:
            due, data = await self._due.receive()
            await trio.sleep_until(due)
            if not self._cut.is_set():
                return data
            if not data:
                await trio.sleep_forever()

    async def send_eof(self) -> None:
        pass

    async def aclose(self) -> None:
        await self._inner.aclose()


def _cuttable(sim: Simulator, cut: trio.Event, delay: float = 0.0) -> Any:
    """A ``connect`` for the hub whose first connection dies (silently) when ``cut`` is set
    and delivers ``delay`` seconds late; the next ones are plain."""
    made = [0]

    @contextlib.asynccontextmanager
    async def connect(url: str) -> AsyncIterator[trio_websocket.WebSocketConnection]:
        made[0] += 1
        if made[0] > 1:
            async with sim.open_websocket(url) as ws:
                yield ws
            return
        client, server = trio.testing.memory_stream_pair()
        sim._nursery.start_soon(sim._serve_memory, server)  # type: ignore[union-attr]
        resource = url.removeprefix("ws://sim")
        async with trio.open_nursery() as nursery:
            wire = _Wire(client, cut, delay, nursery)
            ws = await trio_websocket.wrap_client_stream(nursery, wire, "sim", resource)
            try:
                yield ws
            finally:
                nursery.cancel_scope.cancel()

    return connect


async def test_a_dead_connection_is_found_by_silence_and_a_missing_pong(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim = await _sim(nursery)
    cut = trio.Event()
    hub = StreamHub("ws://sim", budget=ConnectionBudget(), connect=_cuttable(sim, cut))
    await nursery.start(hub.run)
    alice, bob = _owners(sim, 2)
    await _join_all(hub, [alice, bob])
    await _wait_up([alice, bob])
    await trio.sleep(300)  # idle: pinged each minute, answered, nothing reported
    assert alice.kinds() == [StreamUp]
    cut.set()
    start = trio.current_time()
    down = await alice.receive.receive()
    assert down == StreamDown(alice.key, "no pong: the connection is dead")
    assert trio.current_time() - start <= 60 + 30  # silence_after + pong_timeout
    await _wait_up([alice, bob])
    placed = _place(sim, alice)
    await trio.sleep(1)
    assert alice.order_ids() == [placed]
    assert hub.statistics().drops == 1


async def test_over_loopback_with_real_sockets(nursery: trio.Nursery) -> None:
    """No autojump: the real server, trio-websocket over TCP, the hub's default connect."""
    sim = Simulator(clock=system_clock(), volatility_scale=0)
    address = await nursery.start(serve_simulator, sim, "127.0.0.1", 0)
    hub = StreamHub(address.ws_url, budget=ConnectionBudget(spacing=0.05))
    await nursery.start(hub.run)
    owners = _owners(sim, 3)
    with trio.fail_after(10):
        await _join_all(hub, owners)
        await _wait_up(owners)
        placed = _place(sim, owners[1])
        got = await owners[1].receive.receive()
    assert isinstance(got, StreamEvents) and got.updates[0].exchange_order_id == placed
    rules = sim.statistics().connection_rules
    assert rules.attempts_in_window == {"127.0.0.1": 1} and rules.streams_per_connection == [3]


async def test_a_deleted_key_is_replaced_by_its_owner_alone(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """The exchange forgets alice's key silently (DELETE): her keepalive's -1125 is the
    evidence, she recreates it and replaces it on the same connection; bob sees nothing."""
    sim, hub, alice, bob = await _pair(nursery)
    sim.streams.close_key(alice.account, alice.key)
    lost = _place(sim, alice)
    await trio.sleep(1)
    assert alice.order_ids() == []  # the stream cannot tell: the reconcile poll finds it
    with pytest.raises(ApiError) as keepalive:
        sim.streams.keepalive(alice.account, alice.key)
    assert keepalive.value.code == -1125
    new_key = sim.streams.create_key(alice.account)
    hub.replace(alice.key, new_key)
    await trio.sleep(1)
    assert alice.drain()[-1] == StreamUp(new_key)
    placed = _place(sim, alice)
    await trio.sleep(1)
    assert alice.order_ids() == [placed] and lost != placed
    assert bob.kinds() == [StreamUp]
    assert sim.statistics().connection_rules.attempts_total == 1


async def test_a_restarted_owner_joins_again_and_takes_the_key_over(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    sim, hub, alice, bob = await _pair(nursery)
    send, receive = trio.open_memory_channel[HubMessage](8)
    await hub.join(alice.key, send)
    assert receive.receive_nowait() == StreamUp(alice.key)  # up already: said at once
    placed = _place(sim, alice)
    await trio.sleep(1)
    got = receive.receive_nowait()
    assert isinstance(got, StreamEvents) and got.updates[0].exchange_order_id == placed
    assert alice.kinds() == [StreamUp] and bob.kinds() == [StreamUp]
    assert sim.statistics().connection_rules.attempts_total == 1


async def test_events_across_a_rotation_arrive_once_each(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    """The old connection lags half a second behind the new one: what it alone carried
    still arrives, what both carried arrives once."""
    sim = await _sim(nursery)
    options = HubOptions(rotate_after=100.0, rotate_spread=1.0)
    connect = _cuttable(sim, trio.Event(), delay=0.5)
    hub = StreamHub("ws://sim", budget=ConnectionBudget(), connect=connect, options=options)
    await nursery.start(hub.run)
    owners = _owners(sim, 3, buffer=4096)
    await _join_all(hub, owners)
    await _wait_up(owners)
    await trio.sleep_until(trio.current_time() + 99.0)
    placed = []
    for _ in range(400):  # from a second before the rotation to three after
        placed.append(_place(sim, owners[0]))
        await trio.sleep(0.01)
    await trio.sleep(5)
    assert hub.statistics().rotations == 1
    got = owners[0].order_ids()  # interleaved: the two connections lag differently
    assert sorted(got) == placed and len(set(got)) == len(got)
    assert all(o.kinds() == [StreamUp] for o in owners[1:])
    assert sim.statistics().connection_rules.attempts_total == 2
