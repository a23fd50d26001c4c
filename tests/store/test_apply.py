"""Writes through the batcher: group commit, gap-free seqs, fills once, events, failures."""

from __future__ import annotations

import dataclasses
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio
import trio.testing

from tests.store.conftest import EPOCH_MS, placed
from tradercoin.clock import FixedEpochClock
from tradercoin.orders import (
    ExchangeUpdate,
    Fill,
    Order,
    OrderChange,
    OrderEvent,
    OrderFill,
    OrderStatus,
    merge,
)
from tradercoin.store import (
    OrderConflict,
    SecretBox,
    Store,
    StoreClosed,
    User,
    open_store,
)
from tradercoin.store import db as db_module

T = TypeVar("T")


def _fill(trade_id: int, order_id: int = 77) -> Fill:
    return Fill(
        symbol="BTCUSDT",
        trade_id=trade_id,
        exchange_order_id=order_id,
        price=Decimal("30000.5"),
        quantity=Decimal("0.005"),
        commission=Decimal("0.01"),
        commission_asset="USDT",
        time=1,
    )


def _filled(order: Order) -> OrderChange:
    update = ExchangeUpdate(
        symbol=order.symbol,
        exchange_order_id=77,
        client_order_id=order.client_order_id,
        status=OrderStatus.FILLED,
        executed_qty=order.quantity,
        avg_price=Decimal("30000.5"),
        update_time=order.exchange_update_time + 10,
    )
    change = merge(order, update, now=order.updated_at + 1)
    assert change is not None
    return change


@asynccontextmanager
async def writes_held(store: Store) -> AsyncIterator[None]:
    """Hold every worker-thread token, so queued writes wait and then commit together."""
    limiter = store.db.limiter
    borrowers = [object() for _ in range(int(limiter.total_tokens))]
    for borrower in borrowers:
        await limiter.acquire_on_behalf_of(borrower)
    try:
        yield
    finally:
        for borrower in borrowers:
            limiter.release_on_behalf_of(borrower)


async def test_apply_returns_events_with_stored_orders(store: Store, alice: User) -> None:
    events = await store.apply([placed(alice.id, "a"), placed(alice.id, "b")])
    assert [e.seq for e in events] == [1, 2]
    assert all(e.order.id is not None and e.user_id == alice.id for e in events)
    assert events[0].order == dataclasses.replace(
        placed(alice.id, "a").after, id=events[0].order.id
    )
    assert await store.latest_seq(alice.id) == 2
    assert await store.apply([]) == []


async def test_concurrent_callers_share_commits_and_seqs_stay_gap_free(
    store: Store, alice: User, bob: User
) -> None:
    results: list[OrderEvent] = []

    async def writer(user: User, n: int) -> None:
        for k in range(3):
            results.extend(
                await store.apply([placed(user.id, f"w{n}-{k}"), placed(user.id, f"x{n}-{k}")])
            )

    async with trio.open_nursery() as nursery:
        for n in range(40):
            nursery.start_soon(writer, alice if n % 2 else bob, n)
    for user in (alice, bob):
        seqs = sorted(e.seq for e in results if e.user_id == user.id)
        assert seqs == list(range(1, 121))
        assert await store.latest_seq(user.id) == 120
    stats = store.statistics()
    assert stats.changes_committed == 240 and stats.jobs_committed == 120
    assert stats.batches < 120 and stats.max_batch_size > 2


async def test_held_writes_commit_in_one_batch(store: Store, alice: User) -> None:
    before = store.statistics().batches
    async with trio.open_nursery() as nursery, writes_held(store):
        for n in range(10):
            nursery.start_soon(store.apply, [placed(alice.id, f"h{n}")])
        await trio.testing.wait_all_tasks_blocked()
    stats = store.statistics()
    assert stats.batches - before == 1
    assert stats.max_batch_size == 10


async def test_bad_change_fails_only_its_caller(store: Store, alice: User, bob: User) -> None:
    (good,) = await store.apply([placed(alice.id, "good")])
    ghost = dataclasses.replace(good.order, id=10_000, user_id=bob.id)
    bad = OrderChange(before=ghost, after=dataclasses.replace(ghost, note="x"))
    duplicate = placed(alice.id, "good")
    outcomes: dict[str, object] = {}

    async def attempt(name: str, changes: list[OrderChange]) -> None:
        try:
            outcomes[name] = await store.apply(changes)
        except OrderConflict as error:
            outcomes[name] = error

    async with trio.open_nursery() as nursery, writes_held(store):
        nursery.start_soon(attempt, "first", [placed(alice.id, "first")])
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(attempt, "bad", [bad])
        nursery.start_soon(attempt, "ok1", [placed(alice.id, "ok1"), placed(bob.id, "ok1")])
        nursery.start_soon(attempt, "dup", [duplicate])
        nursery.start_soon(attempt, "ok2", [placed(bob.id, "ok2")])
        await trio.testing.wait_all_tasks_blocked()
    assert "has no order 10000" in str(outcomes["bad"])
    assert isinstance(outcomes["dup"], OrderConflict)
    ok1, ok2 = outcomes["ok1"], outcomes["ok2"]
    assert isinstance(ok1, list) and isinstance(ok2, list)
    assert ok1[0].seq == 3  # alice: good, first, ok1
    assert sorted([ok1[1].seq, ok2[0].seq]) == [1, 2]  # bob: ok1 and ok2 in either order
    assert store.statistics().fallbacks == 1 and store.statistics().jobs_failed == 2
    assert [e.seq for e in await store.events_since(alice.id, 0)] == [1, 2, 3]
    assert (await store.list_orders(alice.id)).total == 3


def _on(order: Order, *fills_: Fill) -> list[OrderFill]:
    assert order.id is not None
    return [OrderFill(order.user_id, order.id, f) for f in fills_]


async def test_fills_are_kept_once_per_order_and_trade(store: Store, alice: User) -> None:
    (event,) = await store.apply([placed(alice.id, "f")])
    order = event.order
    await store.apply([_filled(order)], _on(order, _fill(1), _fill(2)))
    assert await store.record_fills(_on(order, _fill(2), _fill(3), _fill(3))) == 1
    assert await store.record_fills(_on(order, _fill(1))) == 0
    assert await store.record_fills([]) == 0
    assert [f.trade_id for f in await store.order_fills(alice.id, order.id or 0)] == [1, 2, 3]


async def test_both_sides_of_a_trade_are_kept(store: Store, alice: User, bob: User) -> None:
    """Binance gives both sides of a trade the same trade id; two of our users may be them
    (issue 9, defect 3: the second side was silently dropped)."""
    (mine,) = await store.apply([placed(alice.id, "buy")])
    (theirs,) = await store.apply([placed(bob.id, "sell")])
    maker = dataclasses.replace(_fill(7), realized_pnl=Decimal("-1.25"), maker=True)
    assert await store.record_fills(_on(mine.order, _fill(7))) == 1
    assert await store.record_fills(_on(theirs.order, maker)) == 1
    assert await store.order_fills(alice.id, mine.order.id or 0) == [_fill(7)]
    assert await store.order_fills(bob.id, theirs.order.id or 0) == [maker]
    assert await store.order_fills(bob.id, mine.order.id or 0) == []  # not bob's order


async def test_events_since_replays_in_order_per_user(store: Store, alice: User, bob: User) -> None:
    (first,) = await store.apply([placed(alice.id, "e")])
    await store.apply([placed(bob.id, "e")])
    (second,) = await store.apply([_filled(first.order)])
    replay = await store.events_since(alice.id, 0)
    assert replay == [first, second]
    assert await store.events_since(alice.id, 1) == [second]
    assert await store.events_since(alice.id, 0, limit=1) == [first]
    assert await store.events_since(alice.id, 2) == []
    assert [e.user_id for e in await store.events_since(bob.id, 0)] == [bob.id]


async def test_prune_keeps_the_sequence_going(
    store: Store, alice: User, clock: FixedEpochClock
) -> None:
    await store.apply([placed(alice.id, "p1"), placed(alice.id, "p2")])
    assert await store.prune_events(clock.now_ms() + 1) == 2
    assert await store.events_since(alice.id, 0) == []
    assert await store.latest_seq(alice.id) == 2
    (event,) = await store.apply([placed(alice.id, "p3")])
    assert event.seq == 3
    assert await store.latest_seq(12345) == 0


async def test_closed_store_refuses_writes_after_flushing(
    db_url: str, box: SecretBox, clock: FixedEpochClock
) -> None:
    async with open_store(db_url, secrets=box, clock=clock) as store:
        user = await store.create_user("carol", "h")
    with pytest.raises(StoreClosed):
        await store.apply([placed(user.id, "late")])


async def test_sqlite_lock_is_retried_not_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: FixedEpochClock
) -> None:
    retried_twice = trio.Event()

    def noting_backoff(attempt: int) -> float:
        if attempt >= 2:
            retried_twice.set()
        return 0.001

    monkeypatch.setattr(db_module, "SQLITE_BUSY_TIMEOUT_MS", 20)
    monkeypatch.setattr(db_module, "backoff", noting_backoff)
    path = tmp_path / "locked.db"
    async with open_store(f"sqlite:///{path}", secrets=SecretBox.ephemeral(), clock=clock) as store:
        user = await store.create_user("locked", "h")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        result: list[OrderEvent] = []

        async def write() -> None:
            result.extend(await store.apply([placed(user.id, "while-locked")]))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write)
            await retried_twice.wait()
            other.execute("COMMIT")
        other.close()
        assert [e.seq for e in result] == [1]
        assert store.statistics().retries >= 2


async def test_cancelled_store_wakes_queued_callers(store: Store, alice: User) -> None:
    doomed = Store(store.db, store.secrets, store.clock)  # its own batcher, cancelled below
    outcomes: list[BaseException] = []

    async def write(name: str) -> None:
        try:
            await doomed.apply([placed(alice.id, name)])
        except StoreClosed as error:
            outcomes.append(error)

    async with (
        trio.open_nursery() as callers,
        trio.open_nursery() as batcher_scope,
        writes_held(store),
    ):
        await batcher_scope.start(doomed.batcher.run)
        for n in range(3):
            callers.start_soon(write, f"q{n}")
        await trio.testing.wait_all_tasks_blocked()
        batcher_scope.cancel_scope.cancel()
    assert len(outcomes) == 3
    with pytest.raises(StoreClosed):
        await doomed.apply([placed(alice.id, "after")])
    assert (await store.list_orders(alice.id)).total == 0


async def _inline(fn: Callable[..., T], /, *args: Any, limiter: Any = None) -> T:
    """The thread hop run on the trio thread: in-memory SQLite under MockClock autojump."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


async def test_retention_prunes_old_events_on_schedule(autojump_clock: trio.abc.Clock) -> None:
    clock = FixedEpochClock(EPOCH_MS)
    async with open_store(
        "sqlite:///:memory:", secrets=SecretBox.ephemeral(), clock=clock, run_sync=_inline
    ) as store:
        user = await store.create_user("ret", "h")
        await store.apply([placed(user.id, "old")])
        async with trio.open_nursery() as nursery:
            await nursery.start(functools.partial(store.run_retention, keep=3600, every=600))
            await trio.sleep(1800)
            await store.apply([placed(user.id, "new")])
            await trio.sleep(2500)  # the prune at t=3600 keeps "old" (not older than 1 h yet)
            assert [e.seq for e in await store.events_since(user.id, 0)] == [2]
            await trio.sleep(1800)
            assert await store.events_since(user.id, 0) == []
            nursery.cancel_scope.cancel()
        assert await store.latest_seq(user.id) == 2


async def test_two_processes_share_one_gap_free_sequence(
    db_url: str, box: SecretBox, clock: FixedEpochClock
) -> None:
    async with (
        open_store(db_url, secrets=box, clock=clock) as first,
        open_store(db_url, secrets=box, clock=clock, migrate=False) as second,
    ):
        user = await first.create_user("shared", "h")
        seqs: list[int] = []

        async def writer(store: Store, name: str) -> None:
            for k in range(10):
                seqs.extend(e.seq for e in await store.apply([placed(user.id, f"{name}{k}")]))

        async with trio.open_nursery() as nursery:
            for n in range(4):
                nursery.start_soon(writer, first if n % 2 else second, f"w{n}-")
        assert sorted(seqs) == list(range(1, 41))
