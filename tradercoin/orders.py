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
* an update never lowers the executed quantity or the status's progress, whatever its time
  says: what a user was shown never goes backwards;
* ``EXPIRED_IN_MATCH`` (self-trade prevention) maps to ``expired``.

Because the newest snapshot always wins and terminal states absorb, merging the same snapshots
in any order, with duplicates, ends where merging them in exchange order ends.

Fills are not part of that decision. A trade is a fact of its own, kept once per
``(order, trade id)`` whichever snapshot brought it (see :class:`OrderFill`): a stream event
that loses the merge to a poll that saw the same progress first still carries its trade.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "MAX_ID",
    "ORDER_FIELDS",
    "PENDING_STATUSES",
    "ExchangeUpdate",
    "Fill",
    "Order",
    "OrderChange",
    "OrderEvent",
    "OrderFill",
    "OrderStatus",
    "OrderType",
    "Side",
    "TimeInForce",
    "apply_updates",
    "fill_to_wire",
    "mark_rejected",
    "mark_vanished",
    "merge",
    "new_order",
    "order_from_values",
    "order_from_wire",
    "order_to_wire",
    "order_values",
    "visible_change",
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
MAX_ID = 2**63 - 1  # ids (ours, the exchange's) are signed 64-bit in every database we run on


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
    """One trade of an order as the exchange reports it to the order's account.

    Both sides of a trade carry the same ``trade_id`` (and two of our users may be those
    sides), so a fill is unique by ``(order, trade_id)``, not by trade id alone.
    """

    symbol: str
    trade_id: int
    exchange_order_id: int
    price: Decimal
    quantity: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    realized_pnl: Decimal = Decimal(0)
    maker: bool = False


@dataclass(frozen=True, slots=True)
class OrderFill:
    """A fill bound to our order (``order_id``) and its user: what the store keeps."""

    user_id: int
    order_id: int
    fill: Fill


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
    reduce_only: bool = False

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
    reduce_only: bool = False,
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
        reduce_only=reduce_only,
    )
    return OrderChange(before=None, after=order)


def merge(order: Order, update: ExchangeUpdate, *, now: int) -> OrderChange | None:
    """Fold the exchange's snapshot into ``order``.

    Returns:
        the change, or ``None`` when the update says nothing new (stale, duplicate, or the
        order is already terminal).
    """
    if order.status.terminal or not _advances(order, update):
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
    return OrderChange(before=order, after=after)


def _advances(order: Order, update: ExchangeUpdate) -> bool:
    """Newer by the exchange's clock, and never a step back in progress."""
    return (
        update.key > order.key
        and update.executed_qty >= order.filled_quantity
        and update.status.rank >= order.status.rank
    )


def visible_change(change: OrderChange) -> bool:
    """Whether a user would see a difference: a new order, or a new status, executed
    quantity, average price or exchange id (a newer timestamp alone is not news)."""
    before, after = change.before, change.after
    return before is None or (
        before.status,
        before.filled_quantity,
        before.avg_price,
        before.exchange_order_id,
        before.note,
    ) != (after.status, after.filled_quantity, after.avg_price, after.exchange_order_id, after.note)


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


def _same(value: Any) -> Any:
    return value


def _enum_value(value: enum.Enum | None) -> Any:
    return None if value is None else value.value


def _optional(decode: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else decode(value)


# The one mapping between an Order and plain values (a table row, a JSON object): each field
# of Order in declaration order, with how it is written and how it is read back.
_CODEC: tuple[tuple[str, Callable[[Any], Any], Callable[[Any], Any]], ...] = (
    ("id", _same, _same),
    ("user_id", _same, _same),
    ("symbol", _same, _same),
    ("side", _enum_value, Side),
    ("type", _enum_value, OrderType),
    ("status", _enum_value, OrderStatus),
    ("quantity", _dec, Decimal),
    ("price", _dec, _optional(Decimal)),
    ("filled_quantity", _dec, Decimal),
    ("avg_price", _dec, _optional(Decimal)),
    ("time_in_force", _enum_value, _optional(TimeInForce)),
    ("client_order_id", _same, _same),
    ("exchange_order_id", _same, _same),
    ("created_at", _same, _same),
    ("updated_at", _same, _same),
    ("exchange_update_time", _same, _same),
    ("note", _same, _same),
    ("reduce_only", _same, bool),
)
ORDER_FIELDS = tuple(name for name, _, _ in _CODEC)
_DECODERS = tuple(decode for _, _, decode in _CODEC)


def order_values(order: Order) -> dict[str, Any]:
    """Every field of ``order`` as plain values (strings for money and enums)."""
    return {name: encode(getattr(order, name)) for name, encode, _ in _CODEC}


def order_from_values(values: Sequence[Any]) -> Order:
    """The inverse of :func:`order_values`, positional in :data:`ORDER_FIELDS` order (a
    table row is read this way, without a lookup by name; columns after those are ignored)."""
    return Order(*(decode(value) for decode, value in zip(_DECODERS, values, strict=False)))


def fill_to_wire(fill: Fill) -> dict[str, Any]:
    """The JSON shape of a fill for HTTP clients (money as decimal strings)."""
    return {
        "trade_id": fill.trade_id,
        "price": _dec(fill.price),
        "quantity": _dec(fill.quantity),
        "commission": _dec(fill.commission),
        "commission_asset": fill.commission_asset,
        "realized_pnl": _dec(fill.realized_pnl),
        "maker": fill.maker,
        "time": fill.time,
    }


def order_to_wire(order: Order) -> dict[str, Any]:
    """The JSON shape of an order for HTTP and WebSocket clients (and stored events).

    Carries the seed's ``order_id`` and ``timestamp`` (seconds) keys beside the full order;
    money stays a decimal string.
    """
    wire = order_values(order)
    del wire["user_id"]
    return {"order_id": order.id, "timestamp": order.updated_at // 1000, **wire}


def order_from_wire(user_id: int, wire: Mapping[str, Any]) -> Order:
    """The inverse of :func:`order_to_wire` (plus the user id). Fields added after events
    were first stored (``reduce_only``) read as their default when the event lacks them."""
    return order_from_values(
        [user_id if n == "user_id" else _wire_value(wire, n) for n in ORDER_FIELDS]
    )


def _wire_value(wire: Mapping[str, Any], name: str) -> Any:
    if name not in wire and name in _WIRE_DEFAULTS:
        return _WIRE_DEFAULTS[name]
    return wire[name]


# Fields an older stored event may lack, and what they meant before they existed; any other
# missing key is a corrupt event and raises KeyError as before.
_WIRE_DEFAULTS: dict[str, Any] = {"reduce_only": False}
