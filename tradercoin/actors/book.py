"""A user's orders in flight, and what the exchange's word about them means. No I/O, no trio.

:class:`OrderBook` is the state a :class:`~tradercoin.actors.user.UserActor` used to keep in a
dozen attributes: the pending orders (by our id and by client id), the trades known of each,
the ``-2013`` confirmations of orders the exchange no longer shows, the orders a short budget
left unsettled, and the terminal orders whose trades do not yet add up to what they executed.
The actor does the I/O and asks the book what it means; the book decides.

The rules it keeps (each was a defect once):

* Updates of one batch are folded in turn, each onto the result of the previous one, never
  onto a snapshot taken before the batch: a stream burst [FILLED, stale PARTIALLY_FILLED]
  stores ``filled`` once, and a frame repeated within a batch changes nothing.
* A trade is recorded whatever the merge of its snapshot decides (once per order and trade
  id): a stream event that loses to a poll that saw the same progress first still brings its
  trade.
* An order that ends (by stream, poll, place answer or cancel answer) having executed more
  than its known trades add up to is *owed* its trades; the actor fetches ``userTrades`` for
  it until they add up, so every terminal order ends holding exactly the exchange's trades.
* A change a user could not see (a newer timestamp, nothing else) is kept in memory but is
  not an event: sessions get news, not noise.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from tradercoin.orders import (
    ExchangeUpdate,
    Fill,
    Order,
    OrderChange,
    OrderFill,
    OrderStatus,
    mark_vanished,
    merge,
    visible_change,
)

__all__ = ["STREAM_GRACE_MS", "Folded", "OrderBook", "missed_by_stream"]

#: how long an exchange change may still be on its way by stream (not evidence of a deaf key)
STREAM_GRACE_MS = 3000


@dataclass(slots=True)
class Folded:
    """What a batch of exchange snapshots comes to: changes to store (each an event) and
    trades to record."""

    changes: list[OrderChange] = field(default_factory=list)
    fills: list[OrderFill] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.changes or self.fills)


class OrderBook:
    """The pending and owed orders of user ``user_id``.

    Args:
        vanish_confirmations: how many ``-2013`` answers in a row make a pending order
            expired (the exchange purges orders; a place may not be visible yet).
        vanish_after_ms: and over at least this long since the first of them: a fresh order
            may be unknown to queries for a while (the exchange's visibility delay), and a
            fast order polled every second would otherwise be "confirmed" gone within it.
        track_trades: keep terminal orders owed their trades until they add up (``False``
            only for the benchmark's baseline, which fetches none, as the seed did).
    """

    def __init__(
        self,
        user_id: int,
        *,
        vanish_confirmations: int = 3,
        vanish_after_ms: int = 30_000,
        track_trades: bool = True,
    ) -> None:
        self.user_id = user_id
        self._vanish_confirmations = vanish_confirmations
        self._vanish_after_ms = vanish_after_ms
        self._track_trades = track_trades
        self._pending: dict[int, Order] = {}
        self._owed: dict[int, Order] = {}
        self._by_client_id: dict[str, int] = {}
        self._trades: dict[int, dict[int, Decimal]] = {}
        self._missing: dict[int, tuple[int, int]] = {}  # id -> (-2013 answers, first at)
        self._unsettled: set[int] = set()

    # ------------------------------------------------------------ reading

    def __len__(self) -> int:
        return len(self._pending)

    def pending(self) -> list[Order]:
        """The orders not yet terminal, oldest first."""
        return sorted(self._pending.values(), key=lambda o: o.id or 0)

    def owed(self) -> list[Order]:
        """Terminal orders whose known trades add up to less than they executed."""
        return sorted(self._owed.values(), key=lambda o: o.id or 0)

    def get(self, order_id: int) -> Order | None:
        return self._pending.get(order_id) or self._owed.get(order_id)

    def by_client_id(self, client_order_id: str) -> Order | None:
        order_id = self._by_client_id.get(client_order_id)
        return None if order_id is None else self.get(order_id)

    def symbols(self) -> list[str]:
        """Symbols with pending orders (what one openOrders call per symbol covers)."""
        return sorted({o.symbol for o in self._pending.values()})

    def has_fast(self, notional_limit: Decimal) -> bool:
        """Whether a pending order's notional reaches ``notional_limit``."""
        return any(
            (n := o.notional) is not None and n >= notional_limit for o in self._pending.values()
        )

    def in_doubt(self) -> bool:
        """Whether an order's fate is open: never acknowledged by the exchange (``pending``,
        e.g. left by a crash between saving and sending), or not found by a recent query.
        Such orders are polled at the user's interval even while the stream is healthy, so
        the vanish confirmations take seconds, not reconcile minutes."""
        return bool(self._missing) or any(
            o.status is OrderStatus.PENDING for o in self._pending.values()
        )

    def unsettled(self) -> int:
        """Pending orders a budget-short cycle left unasked (the next cycle pays for them)."""
        return len(self._unsettled & self._pending.keys())

    def covers(self, order: Order, executed: Decimal | None = None) -> bool:
        """Whether the known trades of ``order`` add up to ``executed`` (by default, what
        the order holds as executed); always, when trades are not tracked."""
        if not self._track_trades:
            return True
        target = order.filled_quantity if executed is None else executed
        return sum(self._trades.get(order.id or 0, {}).values(), Decimal(0)) >= target

    # ------------------------------------------------------------ loading and storing

    def load(self, orders: Iterable[Order], trades: dict[int, dict[int, Decimal]]) -> None:
        """Start from the store: the pending orders and the trades known of them."""
        for order in orders:
            if order.id is not None:
                self._trades[order.id] = dict(trades.get(order.id, {}))
                self.stored(order)

    def stored(self, order: Order) -> None:
        """``order`` is now what the store holds: keep it pending, owed, or forget it."""
        if order.id is None:
            return
        order_id = order.id
        self._by_client_id[order.client_order_id] = order_id
        if not order.status.terminal:
            self._pending[order_id] = order
            return
        self._pending.pop(order_id, None)
        self._missing.pop(order_id, None)
        self._unsettled.discard(order_id)
        if self.covers(order) or not self._track_trades:
            self._forget(order)
        else:
            self._owed[order_id] = order

    def _forget(self, order: Order) -> None:
        order_id = order.id or 0
        self._owed.pop(order_id, None)
        self._trades.pop(order_id, None)
        self._by_client_id.pop(order.client_order_id, None)

    # ------------------------------------------------------------ deciding

    def fold(self, updates: Iterable[ExchangeUpdate], *, now: int) -> Folded:
        """Merge ``updates`` in order, each onto the result of the previous one, and collect
        every trade not known yet. Updates of orders we don't hold are ignored."""
        folded = Folded()
        current: dict[int, Order] = {}
        for update in updates:
            known = self.by_client_id(update.client_order_id)
            if known is None or known.id is None:
                continue
            order = current.get(known.id, known)
            folded.fills.extend(self.new_trades(order, update.fills))
            change = merge(order, update, now=now)
            if change is None:
                continue
            current[known.id] = change.after
            if visible_change(change):
                folded.changes.append(change)
            elif not order.status.terminal:
                self._pending[known.id] = change.after  # newer timestamp only: memory
        return folded

    def new_trades(self, order: Order, fills: Sequence[Fill]) -> list[OrderFill]:
        """The trades among ``fills`` not recorded yet for ``order`` (now recorded here)."""
        if order.id is None:
            return []
        known = self._trades.setdefault(order.id, {})
        fresh = []
        for fill in fills:
            if fill.trade_id not in known:
                known[fill.trade_id] = fill.quantity
                fresh.append(OrderFill(self.user_id, order.id, fill))
        return fresh

    def trades_fetched(self, order: Order, fills: Sequence[Fill]) -> list[OrderFill]:
        """``userTrades`` of an owed order: the new ones; the order is settled once they add
        up to what it executed."""
        fresh = self.new_trades(order, fills)
        if order.id in self._owed and self.covers(order):
            self._forget(order)
        return fresh

    def settle_covered(self) -> None:
        """Forget owed orders whose trades now add up (a late stream event brought them)."""
        for order in list(self._owed.values()):
            if self.covers(order):
                self._forget(order)

    def seen_open(self, order: Order) -> None:
        """The exchange listed ``order`` as open: reset its vanish count."""
        self._missing.pop(order.id or 0, None)
        self._unsettled.discard(order.id or 0)

    def not_found(self, order: Order, *, now: int) -> OrderChange | None:
        """The exchange answered ``-2013`` for a pending order: once confirmed
        ``vanish_confirmations`` times in a row over at least ``vanish_after_ms``, it is
        expired."""
        key = order.id or 0
        count, first = self._missing.get(key, (0, now))
        count += 1
        self._missing[key] = (count, first)
        needed = self._vanish_confirmations
        if count < needed or now - first < self._vanish_after_ms:
            return None
        seconds = (now - first) / 1000
        reason = (
            f"the exchange no longer knows this order (-2013, {count} answers over {seconds:.0f} s)"
        )
        return mark_vanished(order, reason, now=now)

    def left_unsettled(self, order: Order) -> None:
        self._unsettled.add(order.id or 0)

    def settled(self, order: Order) -> None:
        self._unsettled.discard(order.id or 0)
        self._missing.pop(order.id or 0, None)


def missed_by_stream(
    changes: Iterable[OrderChange], healthy_since: int, now: int, grace: int = STREAM_GRACE_MS
) -> list[OrderChange]:
    """The changes a poll found that a healthy stream should have delivered: made on the
    exchange over ``grace`` ms after the stream became healthy (``healthy_since``, ms, our
    clock: a change made while it was down, or as it came up, is the reconcile's to find,
    even with the exchange's clock a little ahead) and over ``grace`` ms ago (an event merely
    in flight does not count). Evidence of a deaf (zombie) key."""
    return [
        c for c in changes if healthy_since + grace < c.after.exchange_update_time <= now - grace
    ]
