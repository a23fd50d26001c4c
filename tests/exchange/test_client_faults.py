"""The simulator's injected faults, as our client and stream reader report them.

Each test runs in-process under MockClock and over loopback (see conftest.py).
"""

from __future__ import annotations

import pytest
import trio

from tradercoin.exchange.client import AccountClient
from tradercoin.exchange.errors import (
    ExchangeError,
    OrderNotFound,
    Unavailable,
    UnknownOutcome,
)
from tradercoin.exchange.sim import Fault, FaultKind
from tradercoin.exchange.stream import (
    Connected,
    Disconnected,
    ListenKeyExpired,
    OrderUpdateEvent,
    Silence,
    StreamEvent,
    UserStream,
)
from tradercoin.orders import OrderStatus

from .conftest import Env, limit

ORDER = "/fapi/v1/order"


async def _exists(account: AccountClient, cid: str) -> bool:
    try:
        await account.get_order("BTCUSDT", client_order_id=cid)
    except OrderNotFound:
        return False
    return True


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [
        (FaultKind.UNAVAILABLE, 503, -1001),
        (FaultKind.THROTTLED, 503, -1008),
        (FaultKind.WAF_HTML, 403, None),
    ],
)
async def test_refusals_before_processing_are_unavailable_and_nothing_happened(
    env: Env, sim_clock: object, kind: FaultKind, status: int, code: int | None
) -> None:
    account = env.account()
    env.sim.inject(Fault(kind), path=ORDER)
    with pytest.raises(ExchangeError) as info:
        await account.place_order(limit("f-1"))
    assert type(info.value) is Unavailable
    assert (info.value.status, info.value.code) == (status, code)
    if kind is FaultKind.WAF_HTML:
        assert info.value.body is not None and info.value.body.startswith("<html>")
    assert not await _exists(account, "f-1")


@pytest.mark.parametrize(
    "kind",
    [FaultKind.UNKNOWN_ERROR, FaultKind.TIMEOUT, FaultKind.NO_CODE_5XX, FaultKind.DROP_RESPONSE],
)
async def test_writes_answered_after_processing_are_unknown_outcome_and_did_happen(
    env: Env, sim_clock: object, kind: FaultKind
) -> None:
    account = env.account()
    env.sim.inject(Fault(kind), path=ORDER)
    with pytest.raises(UnknownOutcome):
        await account.place_order(limit("f-2"))
    assert await _exists(account, "f-2")


async def test_dropped_request_on_a_write_is_unknown_though_nothing_happened(
    env: Env, sim_clock: object
) -> None:
    account = env.account()
    env.sim.inject(Fault(FaultKind.DROP_REQUEST), path=ORDER)
    with pytest.raises(UnknownOutcome):
        await account.place_order(limit("f-3"))
    assert not await _exists(account, "f-3")


@pytest.mark.parametrize(
    "kind",
    [
        FaultKind.UNKNOWN_ERROR,
        FaultKind.TIMEOUT,
        FaultKind.NO_CODE_5XX,
        FaultKind.DROP_RESPONSE,
        FaultKind.DROP_REQUEST,
    ],
)
async def test_the_same_faults_on_reads_are_unavailable(
    env: Env, sim_clock: object, kind: FaultKind
) -> None:
    account = env.account()
    env.sim.inject(Fault(kind), path="/fapi/v1/openOrders")
    with pytest.raises(ExchangeError) as info:
        await account.open_orders("BTCUSDT")
    assert type(info.value) is Unavailable


async def test_visibility_delay_is_order_not_found_then_found(env: Env, sim_clock: object) -> None:
    account = env.account()
    env.sim.inject(Fault(FaultKind.VISIBILITY_DELAY, seconds=0.5), path=ORDER)
    placed = await account.place_order(limit("f-4"))
    with pytest.raises(OrderNotFound):
        await account.get_order("BTCUSDT", client_order_id="f-4")
    await trio.sleep(0.6)
    found = await account.get_order("BTCUSDT", client_order_id="f-4")
    assert found.exchange_order_id == placed.exchange_order_id


async def test_server_clock_skew_is_absorbed_by_one_resync(env: Env, sim_clock: object) -> None:
    account = env.account()
    env.sim.inject(Fault(FaultKind.CLOCK_SKEW, seconds=20))
    assert await account.open_orders("BTCUSDT") == []
    stats = env.exchange.statistics()
    assert stats.resync_retries == 1
    assert abs(stats.time_offset_ms - 20_000) < 1_000


async def _stream(
    env: Env, nursery: trio.Nursery, account: AccountClient, silence_after: float = 600.0
) -> tuple[str, trio.MemoryReceiveChannel[StreamEvent]]:
    key = await account.create_listen_key()
    send, events = trio.open_memory_channel[StreamEvent](64)
    reader = UserStream(env.ws_url, [key], send, connect=env.connect, silence_after=silence_after)
    await nursery.start(reader.run)
    assert await events.receive() == Connected((key,))
    return key, events


async def _next_update(events: trio.MemoryReceiveChannel[StreamEvent]) -> OrderUpdateEvent:
    while True:
        event = await events.receive()
        if isinstance(event, OrderUpdateEvent):
            return event


async def test_listen_key_expiry_keeps_the_connection(
    env: Env, sim_clock: object, nursery: trio.Nursery
) -> None:
    account = env.account()
    key, events = await _stream(env, nursery, account)
    env.sim.inject(Fault(FaultKind.LISTEN_KEY_EXPIRED), account=_api_key(account))
    expired = await events.receive()
    assert isinstance(expired, ListenKeyExpired) and expired.listen_key == key


async def test_forced_disconnect(env: Env, sim_clock: object, nursery: trio.Nursery) -> None:
    account = env.account()
    _, events = await _stream(env, nursery, account)
    env.sim.inject(Fault(FaultKind.DISCONNECT), account=_api_key(account))
    assert await events.receive() == Disconnected("forced disconnect", 1001)
    with pytest.raises(trio.EndOfChannel):
        await events.receive()


async def test_24h_lifetime_disconnects(
    env: Env, sim_clock: object, nursery: trio.Nursery, mode: str
) -> None:
    if mode == "loopback":
        pytest.skip("24 hours of real time")
    account = env.account()
    key, events = await _stream(env, nursery, account, silence_after=1800.0)
    start = trio.current_time()
    async for event in events:
        if isinstance(event, Disconnected):
            break
        assert isinstance(event, Silence)
        await account.keepalive_listen_key(key)  # keep the key alive past its hour
    assert event == Disconnected("connection lifetime reached", 1001)
    assert trio.current_time() - start == pytest.approx(86400.0, abs=1.0)


async def test_silent_stream_reports_silence(
    env: Env, sim_clock: object, nursery: trio.Nursery
) -> None:
    account = env.account()
    _, events = await _stream(env, nursery, account, silence_after=0.5)
    env.sim.inject(Fault(FaultKind.STREAM_SILENT), account=_api_key(account), count=None)
    await account.place_order(limit("f-5"))
    event = await events.receive()
    assert isinstance(event, Silence) and event.seconds >= 0.5


async def test_duplicated_stream_events_arrive_twice(
    env: Env, sim_clock: object, nursery: trio.Nursery
) -> None:
    account = env.account()
    _, events = await _stream(env, nursery, account)
    env.sim.inject(Fault(FaultKind.STREAM_DUPLICATE), account=_api_key(account), count=None)
    await account.place_order(limit("f-6"))
    first, second = await _next_update(events), await _next_update(events)
    assert first == second and first.update.status is OrderStatus.NEW


def _api_key(account: AccountClient) -> str:
    return account._api_key


async def test_unknown_listen_key_is_refused_as_unavailable(env: Env, sim_clock: object) -> None:
    send, _ = trio.open_memory_channel[StreamEvent](1)
    reader = UserStream(env.ws_url, ["no-such-key"], send, connect=env.connect)
    async with trio.open_nursery() as nursery:
        with pytest.raises(Unavailable, match="cannot connect") as info:
            await nursery.start(reader.run)
    assert info.value.status >= 400
