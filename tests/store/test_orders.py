"""Reads of orders: filters, pagination with the total of all matches, isolation, pending."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from tests.store.conftest import EPOCH_MS, placed
from tradercoin.orders import Order, OrderChange, OrderStatus
from tradercoin.store import Store, User


async def _seed(store: Store, user: User, n: int, *, symbol: str = "BTCUSDT") -> list[Order]:
    changes = [placed(user.id, f"{symbol}-{i}", symbol=symbol, now=EPOCH_MS + i) for i in range(n)]
    return [event.order for event in await store.apply(changes)]


async def _set_status(store: Store, order: Order, status: OrderStatus) -> Order:
    after = dataclasses.replace(order, status=status, updated_at=order.updated_at + 1)
    (event,) = await store.apply([OrderChange(before=order, after=after)])
    return event.order


async def test_newest_first_and_total_counts_all_matches(store: Store, alice: User) -> None:
    stored = await _seed(store, alice, 45)
    page = await store.list_orders(alice.id, page=2, page_size=20)
    assert [o.id for o in page.items] == [o.id for o in reversed(stored)][20:40]
    assert (page.total, page.page, page.page_size) == (45, 2, 20)
    last = await store.list_orders(alice.id, page=3, page_size=20)
    assert len(last.items) == 5 and last.total == 45
    beyond = await store.list_orders(alice.id, page=9, page_size=20)
    assert beyond.items == [] and beyond.total == 45


async def test_same_created_at_breaks_ties_by_id(store: Store, alice: User) -> None:
    changes = [placed(alice.id, f"c{i}", now=EPOCH_MS) for i in range(3)]
    ids = [e.order.id for e in await store.apply(changes)]
    page = await store.list_orders(alice.id)
    assert [o.id for o in page.items] == list(reversed(ids))


async def test_filters_by_status_symbol_and_text(store: Store, alice: User) -> None:
    btc = await _seed(store, alice, 3, symbol="BTCUSDT")
    await _seed(store, alice, 2, symbol="ETHUSDT")
    await _set_status(store, btc[0], OrderStatus.CANCELED)
    by_status = await store.list_orders(alice.id, status=OrderStatus.CANCELED)
    assert [o.id for o in by_status.items] == [btc[0].id] and by_status.total == 1
    by_symbol = await store.list_orders(alice.id, symbol="ETHUSDT", page_size=1)
    assert len(by_symbol.items) == 1 and by_symbol.total == 2
    both = await store.list_orders(alice.id, status=OrderStatus.PENDING, symbol="BTCUSDT")
    assert both.total == 2
    text = await store.list_orders(alice.id, q="eth")
    assert {o.symbol for o in text.items} == {"ETHUSDT"} and text.total == 2
    assert (await store.list_orders(alice.id, q="BTCUSDT-1")).total == 1


async def test_text_filter_treats_wildcards_literally(store: Store, alice: User) -> None:
    await store.apply([placed(alice.id, "a_b"), placed(alice.id, "axb"), placed(alice.id, "c%d")])
    assert [o.client_order_id for o in (await store.list_orders(alice.id, q="a_b")).items] == [
        "a_b"
    ]
    assert (await store.list_orders(alice.id, q="%")).total == 1


async def test_another_users_order_is_not_found(store: Store, alice: User, bob: User) -> None:
    (order,) = await _seed(store, alice, 1)
    assert order.id is not None
    assert await store.get_order(alice.id, order.id) == order
    assert await store.get_order(bob.id, order.id) is None
    assert (await store.list_orders(bob.id)).total == 0
    assert await store.find_order_by_client_id(bob.id, order.client_order_id) is None
    assert await store.find_order_by_client_id(alice.id, order.client_order_id) == order


async def test_pending_orders_are_the_non_terminal_ones(store: Store, alice: User) -> None:
    orders = await _seed(store, alice, 4)
    await _set_status(store, orders[0], OrderStatus.FILLED)
    await _set_status(store, orders[1], OrderStatus.PARTIALLY_FILLED)
    await _set_status(store, orders[2], OrderStatus.NEW)
    pending = await store.pending_orders(alice.id)
    assert [o.id for o in pending] == [o.id for o in orders[1:]]
    assert [o.status for o in pending] == [
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.NEW,
        OrderStatus.PENDING,
    ]


async def test_money_round_trips_exactly(store: Store, alice: User) -> None:
    change = placed(alice.id, "exact", quantity="0.000000000000000001", price="123456789.1200")
    (event,) = await store.apply([change])
    assert event.order.id is not None
    stored = await store.get_order(alice.id, event.order.id)
    assert stored is not None
    assert stored.quantity == Decimal("1E-18") and str(stored.price) == "123456789.1200"
    assert stored == dataclasses.replace(change.after, id=event.order.id)


@pytest.mark.parametrize(("page", "size"), [(0, 20), (1, 0), (1, 1001)])
async def test_bad_page_is_refused(store: Store, alice: User, page: int, size: int) -> None:
    with pytest.raises(ValueError, match="page"):
        await store.list_orders(alice.id, page=page, page_size=size)
