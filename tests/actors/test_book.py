"""OrderBook and OrderRateGate: the actor's decisions, without I/O."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from tradercoin.actors.book import OrderBook
from tradercoin.actors.order_rate import OrderRateGate
from tradercoin.exchange.protocol import OrderCounts
from tradercoin.orders import (
    ExchangeUpdate,
    Fill,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    new_order,
)


def _order(order_id: int = 1, qty: str = "0.3") -> Order:
    change = new_order(
        user_id=5,
        symbol="BTCUSDT",
        side=Side.BUY,
        type=OrderType.LIMIT,
        quantity=Decimal(qty),
        price=Decimal(1000),
        time_in_force=TimeInForce.GTC,
        client_order_id=f"c{order_id}",
        now=0,
    )
    return dataclasses.replace(change.after, id=order_id, exchange_order_id=100 + order_id)


def _fill(trade_id: int, qty: str) -> Fill:
    return Fill("BTCUSDT", trade_id, 101, Decimal(1000), Decimal(qty), Decimal(0), "USDT", 1)


def _update(status: str, executed: str, at: int, *fills: Fill) -> ExchangeUpdate:
    return ExchangeUpdate(
        "BTCUSDT", 101, "c1", OrderStatus.from_exchange(status), Decimal(executed), None, at, fills
    )


def _book(*orders: Order) -> OrderBook:
    book = OrderBook(5)
    book.load(orders, {})
    return book


def test_a_batch_is_folded_in_turn_and_a_stale_update_after_it_changes_nothing() -> None:
    book = _book(_order())
    folded = book.fold(
        [
            _update("FILLED", "0.3", 20, _fill(2, "0.2")),
            _update("PARTIALLY_FILLED", "0.1", 10, _fill(1, "0.1")),
            _update("FILLED", "0.3", 20, _fill(2, "0.2")),
        ],
        now=1,
    )
    assert [c.after.status for c in folded.changes] == [OrderStatus.FILLED]
    assert [f.fill.trade_id for f in folded.fills] == [2, 1]  # each trade once, both kept


def test_an_update_that_loses_the_merge_still_brings_its_trade() -> None:
    book = _book(
        dataclasses.replace(
            _order(),
            status=OrderStatus.PARTIALLY_FILLED,
            filled_quantity=Decimal("0.1"),
            exchange_update_time=10,
        )
    )
    folded = book.fold([_update("PARTIALLY_FILLED", "0.1", 10, _fill(1, "0.1"))], now=1)
    assert folded.changes == [] and [f.fill.trade_id for f in folded.fills] == [1]


def test_a_terminal_order_is_owed_its_trades_until_they_add_up() -> None:
    book = _book(_order())
    folded = book.fold([_update("FILLED", "0.3", 20, _fill(2, "0.2"))], now=1)
    book.stored(folded.changes[0].after)
    [owed] = book.owed()
    assert len(book) == 0 and owed.id == 1
    assert [
        f.fill.trade_id for f in book.trades_fetched(owed, [_fill(1, "0.1"), _fill(2, "0.2")])
    ] == [1]
    assert book.owed() == [] and book.by_client_id("c1") is None


def test_a_newer_timestamp_alone_is_no_event() -> None:
    book = _book(dataclasses.replace(_order(), status=OrderStatus.NEW, exchange_update_time=10))
    assert not book.fold([_update("NEW", "0", 30)], now=1)


def test_vanished_after_the_confirmations_in_a_row_and_reset_when_seen_open() -> None:
    book = _book(_order())
    order = book.pending()[0]
    assert book.not_found(order, now=0) is None and book.not_found(order, now=1_000) is None
    book.seen_open(order)
    assert book.not_found(order, now=2_000) is None
    assert book.not_found(order, now=3_000) is None
    gone = book.not_found(order, now=32_000)
    assert gone is not None and gone.after.status == OrderStatus.EXPIRED


def test_answers_inside_the_visibility_delay_never_expire_an_order() -> None:
    """Three -2013s a second apart (a fast order, polled every second, inside the
    exchange's visibility delay) are not a confirmation: they must span 30 s."""
    book = _book(_order())
    order = book.pending()[0]
    assert [book.not_found(order, now=t) for t in (0, 1_000, 2_000, 29_000)] == [None] * 4
    assert book.not_found(order, now=30_000) is not None


def test_the_order_rate_gate_waits_out_the_window_that_is_full() -> None:
    gate = OrderRateGate.binance()
    assert gate.wait_ms(OrderCounts(299, 299, 12_000), 12_500) == 0
    assert gate.wait_ms(OrderCounts(300, 300, 12_000), 12_500) == 7_500  # until 20,000
    assert gate.wait_ms(OrderCounts(300, 1200, 12_000), 20_000) == 40_000  # minute: 60,000
    assert gate.wait_ms(OrderCounts(300, 300, 12_000), 20_000) == 0  # a new 10 s window


def test_a_refusal_pauses_places_and_teaches_the_stated_limit() -> None:
    gate = OrderRateGate.binance()
    gate.refused_by_exchange(3.0, 5, 10.0, now_ms=1_000)
    assert gate.wait_ms(None, 2_000) == 2_000
    assert gate.wait_ms(OrderCounts(5, 5, 4_500), 4_500) == 5_500
    assert gate.refused == 1
