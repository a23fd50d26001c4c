"""The order domain: what an order is, how the exchange's word about it is merged, and what a
change looks like. No I/O, no clock, nothing of ours imported: every other layer builds on this.

Money and quantities are :class:`~decimal.Decimal` end to end; times are integer epoch
milliseconds, as the exchange sends them.

The merge rule
--------------
An :class:`ExchangeUpdate` is the exchange's snapshot of one order (a REST answer or a
user-stream event). :func:`merge` folds it into our :class:`Order`:

* terminal states (filled, canceled, expired, rejected) never change again;
* an update whose ``(update_time, executed_qty, status rank)`` is not newer than what we hold is
  ignored, so a late poll cannot undo a stream event and a replay is a no-op;
* ``EXPIRED_IN_MATCH`` (self-trade prevention) maps to ``expired``.

Because the newest snapshot always wins and terminal states absorb, merging the same snapshots
in any order, with duplicates, ends where merging them in exchange order ends.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "PENDING_STATUSES",
    "ExchangeUpdate",
    "Fill",
    "Order",
    "OrderChange",
    "OrderEvent",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
    "apply_updates",
    "mark_rejected",
    "mark_vanished",
    "merge",
    "new_order",
    "order_to_wire",
]


class OrderStatus(enum.StrEnum):
    """Our statuses: the exchange's, lower-cased as the seed stores them, plus ``pending``
    (saved by us, not yet acknowledged by the exchange)."""

    PENDING = "pending"
    NEW = "new"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELED = "canceled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def rank(self) -> int:
        """Progress along the lifecycle; breaks ties between snapshots of the same instant."""
        return _RANK[self]

    @classmethod
    def from_exchange(cls, value: str) -> OrderStatus:
        """Map a Binance status (``NEW``, ``EXPIRED_IN_MATCH``, ...) to ours.

        Raises:
            ValueError: for a status the exchange does not define.
        """
        upper = value.upper()
        if upper == "EXPIRED_IN_MATCH":
            return cls.EXPIRED
        try:
            return cls(upper.lower())
        except ValueError:
            raise ValueError(f"unknown exchange order status {value!r}") from None


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED}
)
_RANK = {
    OrderStatus.PENDING: 0,
    OrderStatus.NEW: 1,
    OrderStatus.PARTIALLY_FILLED: 2,
    OrderStatus.FILLED: 3,
    OrderStatus.CANCELED: 3,
    OrderStatus.EXPIRED: 3,
    OrderStatus.REJECTED: 3,
}
PENDING_STATUSES = frozenset(s for s in OrderStatus if not s.terminal)


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"


@dataclass(frozen=True, slots=True)
class Fill:
    """One trade of an order, unique by ``(symbol, trade_id)`` on the exchange."""

    symbol: str
    trade_id: int
    exchange_order_id: int
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str
    time: int


@dataclass(frozen=True, slots=True)
class ExchangeUpdate:
    """The exchange's snapshot of one order, from REST or from ``ORDER_TRADE_UPDATE``."""

    symbol: str
    exchange_order_id: int
    client_order_id: str
    status: OrderStatus
    executed_qty: Decimal
    avg_price: Decimal | None
    update_time: int
    fills: tuple[Fill, ...] = ()

    @property
    def key(self) -> tuple[int, Decimal, int]:
        """Newer snapshots have larger keys: exchange time, then progress."""
        return (self.update_time, self.executed_qty, self.status.rank)


@dataclass(frozen=True, slots=True)
class Order:
    """An order as we keep it. ``id`` is ours (``None`` until stored)."""

    id: int | None
    user_id: int
    symbol: str
    side: Side
    type: OrderType
    status: OrderStatus
    quantity: Decimal
    price: Decimal | None
    filled_quantity: Decimal
    avg_price: Decimal | None
    time_in_force: TimeInForce | None
    client_order_id: str
    exchange_order_id: int | None
    created_at: int
    updated_at: int
    exchange_update_time: int = 0
    note: str | None = None

    @property
    def key(self) -> tuple[int, Decimal, int]:
        return (self.exchange_update_time, self.filled_quantity, self.status.rank)

    @property
    def notional(self) -> Decimal | None:
        """Quantity times price, where the price is known (LIMIT or filled)."""
        reference = self.price if self.price is not None else self.avg_price
        return None if reference is None else self.quantity * reference


@dataclass(frozen=True, slots=True)
class OrderChange:
    """What a merge decided: ``before`` is ``None`` for a newly created order."""

    before: Order | None
    after: Order
    fills: tuple[Fill, ...] = ()

    @property
    def user_id(self) -> int:
        return self.after.user_id


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A stored change, numbered by the user's gap-free sequence."""

    user_id: int
    seq: int
    order: Order
    created_at: int


def new_order(
    *,
    user_id: int,
    symbol: str,
    side: Side,
    type: OrderType,
    quantity: Decimal,
    price: Decimal | None,
    time_in_force: TimeInForce | None,
    client_order_id: str,
    now: int,
) -> OrderChange:
    """The change that records an order we are about to send (status ``pending``)."""
    order = Order(
        id=None,
        user_id=user_id,
        symbol=symbol,
        side=side,
        type=type,
        status=OrderStatus.PENDING,
        quantity=quantity,
        price=price,
        filled_quantity=Decimal(0),
        avg_price=None,
        time_in_force=time_in_force,
        client_order_id=client_order_id,
        exchange_order_id=None,
        created_at=now,
        updated_at=now,
    )
    return OrderChange(before=None, after=order)


def merge(order: Order, update: ExchangeUpdate, *, now: int) -> OrderChange | None:
    """Fold the exchange's snapshot into ``order``.

    Returns:
        the change, or ``None`` when the update says nothing new (stale, duplicate, or the
        order is already terminal).
    """
    if order.status.terminal or update.key <= order.key:
        return None
    after = dataclasses.replace(
        order,
        status=update.status,
        filled_quantity=update.executed_qty,
        avg_price=update.avg_price if update.executed_qty else order.avg_price,
        exchange_order_id=update.exchange_order_id,
        exchange_update_time=update.update_time,
        updated_at=max(now, order.updated_at),
    )
    return OrderChange(before=order, after=after, fills=update.fills)


def apply_updates(order: Order, updates: Iterable[ExchangeUpdate], *, now: int) -> Order:
    """Merge many snapshots in turn and return the resulting order."""
    for update in updates:
        change = merge(order, update, now=now)
        if change is not None:
            order = change.after
    return order


def _close_locally(order: Order, status: OrderStatus, note: str, now: int) -> OrderChange | None:
    if order.status.terminal:
        return None
    after = dataclasses.replace(
        order, status=status, note=note, updated_at=max(now, order.updated_at)
    )
    return OrderChange(before=order, after=after)


def mark_rejected(order: Order, reason: str, *, now: int) -> OrderChange | None:
    """The exchange refused the order outright (a ``{code, msg}`` answer to the place)."""
    return _close_locally(order, OrderStatus.REJECTED, reason, now)


def mark_vanished(order: Order, reason: str, *, now: int) -> OrderChange | None:
    """The exchange no longer knows a pending order (``-2013`` confirmed): it is expired."""
    return _close_locally(order, OrderStatus.EXPIRED, reason, now)


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def order_to_wire(order: Order) -> dict[str, Any]:
    """The JSON shape of an order for HTTP and WebSocket clients.

    Carries the seed's ``order_id`` and ``timestamp`` (seconds) keys beside the full order;
    money stays a decimal string.
    """
    return {
        "order_id": order.id,
        "timestamp": order.updated_at // 1000,
        "id": order.id,
        "symbol": order.symbol,
        "side": order.side.value,
        "type": order.type.value,
        "status": order.status.value,
        "quantity": _dec(order.quantity),
        "price": _dec(order.price),
        "filled_quantity": _dec(order.filled_quantity),
        "avg_price": _dec(order.avg_price),
        "time_in_force": None if order.time_in_force is None else order.time_in_force.value,
        "client_order_id": order.client_order_id,
        "exchange_order_id": order.exchange_order_id,
        "created_at": order.created_at,
        "updated_at": order.updated_at,
        "exchange_update_time": order.exchange_update_time,
        "note": order.note,
    }
