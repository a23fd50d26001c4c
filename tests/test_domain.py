"""The domain: statuses, the merge rule and its properties."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradercoin.orders import (
    ExchangeUpdate,
    Order,
    OrderStatus,
    OrderType,
    Side,
    apply_updates,
    mark_rejected,
    mark_vanished,
    merge,
    new_order,
    order_to_wire,
)

QTY = Decimal("1.000")


def pending_order() -> Order:
    change = new_order(
        user_id=7,
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        quantity=QTY,
        price=Decimal("42088.10"),
        time_in_force=None,
        client_order_id="tc-1",
        now=1_000,
    )
    return dataclasses.replace(change.after, id=1)


def snapshot(status: OrderStatus, executed: str, t: int) -> ExchangeUpdate:
    return ExchangeUpdate(
        symbol="BTCUSDT",
        exchange_order_id=99,
        client_order_id="tc-1",
        status=status,
        executed_qty=Decimal(executed),
        avg_price=Decimal("42088.10") if Decimal(executed) else None,
        update_time=t,
    )


def test_exchange_statuses_map_to_ours() -> None:
    assert OrderStatus.from_exchange("NEW") is OrderStatus.NEW
    assert OrderStatus.from_exchange("PARTIALLY_FILLED") is OrderStatus.PARTIALLY_FILLED
    assert OrderStatus.from_exchange("EXPIRED_IN_MATCH") is OrderStatus.EXPIRED
    assert OrderStatus.from_exchange("canceled") is OrderStatus.CANCELED
    with pytest.raises(ValueError, match="unknown exchange order status"):
        OrderStatus.from_exchange("HALF_BAKED")


def test_merge_moves_forward_and_records_exchange_fields() -> None:
    change = merge(pending_order(), snapshot(OrderStatus.PARTIALLY_FILLED, "0.400", 5), now=9_000)
    assert change is not None
    assert change.after.status is OrderStatus.PARTIALLY_FILLED
    assert change.after.filled_quantity == Decimal("0.400")
    assert change.after.exchange_order_id == 99
    assert change.after.exchange_update_time == 5
    assert change.after.updated_at == 9_000


def test_stale_update_is_ignored() -> None:
    order = apply_updates(pending_order(), [snapshot(OrderStatus.FILLED, "1.000", 10)], now=10)
    assert merge(order, snapshot(OrderStatus.NEW, "0", 3), now=11) is None


def test_same_instant_breaks_ties_by_progress() -> None:
    order = apply_updates(pending_order(), [snapshot(OrderStatus.NEW, "0", 10)], now=10)
    change = merge(order, snapshot(OrderStatus.CANCELED, "0", 10), now=10)
    assert change is not None and change.after.status is OrderStatus.CANCELED


def test_local_closures_absorb_and_keep_a_reason() -> None:
    order = pending_order()
    rejected = mark_rejected(order, "Invalid symbol.", now=2_000)
    assert rejected is not None
    assert rejected.after.status is OrderStatus.REJECTED
    assert rejected.after.note == "Invalid symbol."
    assert mark_vanished(rejected.after, "gone", now=3_000) is None
    assert merge(rejected.after, snapshot(OrderStatus.FILLED, "1.000", 9), now=3_000) is None


def test_wire_form_keeps_decimals_as_strings_and_seed_keys() -> None:
    wire = order_to_wire(pending_order())
    assert wire["order_id"] == 1
    assert wire["timestamp"] == 1
    assert wire["quantity"] == "1.000"
    assert wire["price"] == "42088.10"
    assert wire["status"] == "pending"


# --- properties -----------------------------------------------------------------------------


@st.composite
def lifecycles(draw: st.DrawFn) -> list[ExchangeUpdate]:
    """A sequence of snapshots as the exchange would emit them, strictly newer each time."""
    steps = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 250)), max_size=8))
    final = draw(
        st.sampled_from([None, OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED])
    )
    t, executed = draw(st.integers(1, 10**6)), Decimal(0)
    updates = [snapshot(OrderStatus.NEW, "0", t)]
    for dt, fill_thousandths in steps:
        step = min(Decimal(fill_thousandths) / 1000, QTY - executed)
        if (dt == 0 and step == 0) or executed + step >= QTY:
            continue
        t, executed = t + dt, executed + step
        status = OrderStatus.PARTIALLY_FILLED if executed else OrderStatus.NEW
        updates.append(snapshot(status, str(executed), t))
    if final is OrderStatus.FILLED:
        updates.append(snapshot(final, str(QTY), t + draw(st.integers(0, 3))))
    elif final is not None:
        updates.append(snapshot(final, str(executed), t + draw(st.integers(0, 3))))
    return updates


@given(data=st.data(), updates=lifecycles())
def test_any_order_with_duplicates_ends_where_in_order_ends(
    data: st.DataObject, updates: list[ExchangeUpdate]
) -> None:
    in_order = apply_updates(pending_order(), updates, now=0)
    noisy = data.draw(st.lists(st.sampled_from(updates), max_size=3 * len(updates)))
    shuffled = data.draw(st.permutations(updates + noisy))
    assert apply_updates(pending_order(), shuffled, now=0) == in_order
    assert in_order.status is updates[-1].status
    assert in_order.filled_quantity == updates[-1].executed_qty


@given(updates=lifecycles(), again=st.integers(0, 100))
def test_applying_the_same_update_twice_is_a_no_op(
    updates: list[ExchangeUpdate], again: int
) -> None:
    order = apply_updates(pending_order(), updates, now=0)
    assert merge(order, updates[again % len(updates)], now=1) is None


@given(updates=lifecycles(), later=lifecycles())
def test_a_terminal_order_never_changes(
    updates: list[ExchangeUpdate], later: list[ExchangeUpdate]
) -> None:
    order = apply_updates(pending_order(), updates, now=0)
    if order.status.terminal:
        bumped = [dataclasses.replace(u, update_time=u.update_time + 10**7) for u in later]
        assert apply_updates(order, bumped, now=5) == order
