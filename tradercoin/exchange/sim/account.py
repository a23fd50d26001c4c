"""The money side of a simulated account: wallet balance, positions, leverage, margins.

One-way position mode, cross margin, single-asset (USDT) mode, as a new Binance futures
account starts. All figures are :class:`~decimal.Decimal`; entry prices, break-even prices,
realized PnL, unrealized PnL and margins are kept to 8 decimal places (half-even), so a
client that recomputes them from the wire strings gets the same numbers.

The one place a fill changes an account is :func:`apply_fill` (the engine calls it once per
trade, with the trade's commission):

- opening or increasing a position: the entry price becomes the quantity-weighted average of
  the old entry and the fill price; nothing is realized;
- reducing: the entry price stays; realized PnL = (fill price - entry) x closed quantity
  (negated for a short);
- closing to zero: the same, and the entry price becomes 0;
- flipping (a fill larger than the position): the old position closes as above and the rest
  opens at the fill price;
- the wallet balance moves by realized PnL minus the commission.

Everything else is derived at the current mark price when asked (:func:`account_view`):
unrealized PnL = amount x (mark - entry); notional = amount x mark; position initial margin =
|notional| / leverage; maintenance margin = |notional| x rate - maintenance amount of the
notional's bracket (:mod:`~tradercoin.exchange.sim.brackets`); open orders' initial margin =
the larger of the buy side and sell side notional of open orders / leverage, where orders
that would only reduce the position count for nothing; available balance = wallet +
unrealized - position margin - open-order margin (never below 0).

The liquidation price is an **estimate**: Binance's published cross-margin formula for a
one-way position, with the maintenance bracket of the position's current notional and the
other positions' maintenance margin and unrealized PnL at their current marks. The
simulator never liquidates anyone; it only reports this figure ("0" when the position
cannot be liquidated, as Binance shows).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from tradercoin.exchange.sim.brackets import bracket_for, brackets_of
from tradercoin.exchange.sim.errors import ApiError

if TYPE_CHECKING:
    from tradercoin.exchange.sim.engine import Account, SimOrder

__all__ = [
    "DEFAULT_LEVERAGE",
    "DEFAULT_STARTING_BALANCE",
    "AccountView",
    "Position",
    "PositionView",
    "account_position",
    "account_view",
    "active_symbols",
    "apply_fill",
    "check_order_margin",
    "leverage_of",
    "max_notional",
    "open_notional",
    "plain",
    "position_view",
    "q8",
    "set_leverage",
]

ZERO = Decimal(0)
PLACES = Decimal("0.00000001")
DEFAULT_LEVERAGE = 20
"""Binance's initial leverage for a symbol the account never changed."""
DEFAULT_STARTING_BALANCE = Decimal("100000")
"""USDT in the wallet of every new simulator account (``Simulator(starting_balance=...)``)."""


def q8(value: Decimal) -> Decimal:
    """``value`` to 8 decimal places, half-even (how the simulator keeps account figures)."""
    return value.quantize(PLACES, ROUND_HALF_EVEN)


def plain(value: Decimal) -> str:
    """A decimal without padding or exponent: ``Decimal("490.000")`` -> ``"490"``."""
    return f"{value.normalize():f}"


@dataclass(slots=True)
class Position:
    """One symbol's one-way position (mutable: only :func:`apply_fill` changes it).

    ``open_fees`` is the commission paid by the part still open (for the break-even price);
    ``realized`` the symbol's accumulated pre-fee realized PnL (``cr`` on the stream).
    """

    amount: Decimal = ZERO
    entry_price: Decimal = ZERO
    open_fees: Decimal = ZERO
    realized: Decimal = ZERO
    update_time: int = 0

    @property
    def break_even(self) -> Decimal:
        """The price at which closing gives back the commission the open part paid."""
        if not self.amount:
            return ZERO
        per_unit = self.open_fees / abs(self.amount)
        return q8(self.entry_price + per_unit if self.amount > 0 else self.entry_price - per_unit)


def apply_fill(
    account: Account,
    symbol: str,
    side: str,
    qty: Decimal,
    price: Decimal,
    commission: Decimal,
    time_ms: int,
) -> Decimal:
    """Apply one fill of ``qty`` at ``price`` to the account; returns the realized PnL.

    The only function that moves a position or the wallet balance on a trade.
    """
    position = account.positions.get(symbol)
    if position is None:
        position = account.positions[symbol] = Position()
    signed = qty if side == "BUY" else -qty
    pnl = _trade(position, signed, price, commission)
    position.realized += pnl
    position.update_time = time_ms
    account.balance += pnl - commission
    account.balance_time = time_ms
    return pnl


def _trade(position: Position, signed: Decimal, price: Decimal, commission: Decimal) -> Decimal:
    amount, entry = position.amount, position.entry_price
    if amount == 0 or (amount > 0) == (signed > 0):
        total = abs(amount) + abs(signed)
        position.entry_price = q8((abs(amount) * entry + abs(signed) * price) / total)
        position.amount = amount + signed
        position.open_fees += commission
        return ZERO
    closing = min(abs(signed), abs(amount))
    pnl = q8((price - entry) * closing * (1 if amount > 0 else -1))
    remaining = amount + signed
    if remaining == 0:
        position.entry_price = position.open_fees = ZERO
    elif (remaining > 0) != (amount > 0):
        position.entry_price = price
        position.open_fees = q8(commission * abs(remaining) / abs(signed))
    else:
        position.open_fees = q8(position.open_fees * abs(remaining) / abs(amount))
    position.amount = remaining
    return pnl


# --- leverage ----------------------------------------------------------------------------


def leverage_of(account: Account, symbol: str) -> int:
    return account.leverage.get(symbol, DEFAULT_LEVERAGE)


def max_notional(symbol: str, leverage: int) -> Decimal:
    """The largest position notional allowed at ``leverage`` (the cap of the highest
    bracket whose initial leverage is at least ``leverage``)."""
    caps = [b.cap for b in brackets_of(symbol) if b.initial_leverage >= leverage]
    return caps[-1] if caps else ZERO


def set_leverage(
    account: Account, symbol: str, leverage: int, marks: Mapping[str, Decimal]
) -> Decimal:
    """Change the symbol's initial leverage; returns the max notional it allows.

    Raises:
        ApiError: -4028 for a leverage outside 1..the symbol's maximum; -2027 when the
            position and open orders exceed what the new leverage allows; -2019 when the
            margin the new leverage needs exceeds the margin balance.
    """
    top = brackets_of(symbol)[0].initial_leverage
    if not 1 <= leverage <= top:
        raise ApiError(-4028, f"Leverage {leverage} is not valid")
    cap = max_notional(symbol, leverage)
    mark = marks[symbol]
    bid, ask = open_notional(account.open_in(symbol).values(), mark)
    exposure = abs(account_position(account, symbol).amount) * mark + max(bid, ask)
    if exposure > cap:
        raise ApiError(-2027, "Exceeded the maximum allowable position at current leverage.")
    previous = account.leverage.get(symbol)
    account.leverage[symbol] = leverage
    view = account_view(account, marks, liquidation=False)
    if leverage < (previous or DEFAULT_LEVERAGE) and view.margin_balance < view.initial_margin:
        if previous is None:
            del account.leverage[symbol]
        else:
            account.leverage[symbol] = previous
        raise ApiError(-2019, "Margin is insufficient.")
    return cap


def account_position(account: Account, symbol: str) -> Position:
    return account.positions.get(symbol) or Position()


# --- derived figures ---------------------------------------------------------------------


def open_notional(orders: Iterable[SimOrder], mark: Decimal) -> tuple[Decimal, Decimal]:
    """``(bids, asks)``: the notional of open BUY and SELL orders' remaining quantity, at
    their limit price (MARKET orders at ``mark``). The ``b``/``a`` of ORDER_TRADE_UPDATE and
    ``bidNotional``/``askNotional`` of positionRisk."""
    bids = asks = ZERO
    for order in orders:
        if not order.is_open:
            continue
        notional = order.remaining * (order.price if order.type == "LIMIT" else mark)
        if order.side == "BUY":
            bids += notional
        else:
            asks += notional
    return bids, asks


@dataclass(frozen=True, slots=True)
class PositionView:
    """One symbol's position and margins at a mark price (all Decimal, 8 places)."""

    symbol: str
    amount: Decimal
    entry_price: Decimal
    break_even: Decimal
    mark: Decimal
    unrealized: Decimal
    notional: Decimal
    leverage: int
    initial_margin: Decimal
    maint_margin: Decimal
    open_order_margin: Decimal
    bid_notional: Decimal
    ask_notional: Decimal
    liquidation_price: Decimal
    realized: Decimal
    max_notional: Decimal
    update_time: int


@dataclass(frozen=True, slots=True)
class AccountView:
    """The account's USDT totals and its positions (symbols with a position or open
    orders) at the marks given to :func:`account_view`."""

    wallet: Decimal
    unrealized: Decimal
    margin_balance: Decimal
    position_margin: Decimal
    open_order_margin: Decimal
    maint_margin: Decimal
    available: Decimal
    max_withdraw: Decimal
    positions: tuple[PositionView, ...]
    update_time: int

    @property
    def initial_margin(self) -> Decimal:
        return self.position_margin + self.open_order_margin

    def position(self, symbol: str) -> PositionView | None:
        return next((p for p in self.positions if p.symbol == symbol), None)


def active_symbols(account: Account) -> list[str]:
    """The symbols where the account holds a position or open orders, sorted."""
    return sorted(
        {s for s, p in account.positions.items() if p.amount}
        | {s for s, orders in account.open_orders.items() if orders}
    )


def account_view(
    account: Account, marks: Mapping[str, Decimal], *, liquidation: bool = True
) -> AccountView:
    """Every derived figure of ``account`` at ``marks`` (which must hold every symbol with
    a position or open orders); liquidation prices stay 0 without ``liquidation``."""
    symbols = active_symbols(account)
    rows = [position_view(account, s, marks[s]) for s in symbols]
    unrealized = sum((r.unrealized for r in rows), ZERO)
    position_margin = sum((r.initial_margin for r in rows), ZERO)
    order_margin = sum((r.open_order_margin for r in rows), ZERO)
    maint = sum((r.maint_margin for r in rows), ZERO)
    wallet = account.balance
    margin_balance = wallet + unrealized
    used = position_margin + order_margin
    available = max(ZERO, margin_balance - used)
    if liquidation:
        rows = [_with_liquidation(r, rows, wallet) for r in rows]
    return AccountView(
        wallet, unrealized, margin_balance, position_margin, order_margin, maint, available,
        max(ZERO, min(available, wallet - used)), tuple(rows), account.balance_time,
    )  # fmt: skip


def position_view(account: Account, symbol: str, mark: Decimal) -> PositionView:
    """One symbol's figures at ``mark`` (liquidation price 0: see :func:`account_view`)."""
    position = account_position(account, symbol)
    leverage = leverage_of(account, symbol)
    amount = position.amount
    notional = q8(amount * mark)
    bracket = bracket_for(symbol, abs(notional))
    bids, asks = open_notional(account.open_in(symbol).values(), mark)
    held = abs(notional)
    return PositionView(
        symbol, amount, position.entry_price, position.break_even, mark,
        q8(amount * (mark - position.entry_price)) if amount else ZERO, notional, leverage,
        q8(held / leverage), max(ZERO, q8(held * bracket.mmr - bracket.cum)) if amount else ZERO,
        _order_margin(amount, held, bids, asks, leverage), q8(bids), q8(asks), ZERO,
        position.realized, max_notional(symbol, leverage), position.update_time,
    )  # fmt: skip


def _order_margin(
    amount: Decimal, held: Decimal, bids: Decimal, asks: Decimal, leverage: int
) -> Decimal:
    """Open orders' initial margin: the larger side, less what only reduces the position
    (``held``: the position's absolute notional)."""
    opening_bids = bids if amount >= 0 else max(ZERO, bids - held)
    opening_asks = asks if amount <= 0 else max(ZERO, asks - held)
    return q8(max(opening_bids, opening_asks) / leverage)


def _with_liquidation(row: PositionView, rows: list[PositionView], wallet: Decimal) -> PositionView:
    """``row`` with Binance's cross-margin one-way liquidation price estimate:
    ``(WB - TMM1 + UPNL1 + cum - side*size*EP) / (size*MMR - side*size)``."""
    if not row.amount:
        return row
    others = [r for r in rows if r.symbol != row.symbol]
    tmm1 = sum((r.maint_margin for r in others), ZERO)
    upnl1 = sum((r.unrealized for r in others), ZERO)
    bracket = bracket_for(row.symbol, abs(row.notional))
    side = 1 if row.amount > 0 else -1
    size = abs(row.amount)
    numerator = wallet - tmm1 + upnl1 + bracket.cum - side * size * row.entry_price
    price = numerator / (size * bracket.mmr - side * size)
    return replace(row, liquidation_price=q8(price) if price > 0 else ZERO)


def check_order_margin(
    account: Account,
    symbol: str,
    side: str,
    qty: Decimal,
    price: Decimal,
    marks: Mapping[str, Decimal],
) -> None:
    """Binance's checks on a new (not reduce-only) order: the position plus open orders on
    the order's side must stay within the leverage's max notional, and the open-order
    margin the order adds must fit in the available balance.

    Raises:
        ApiError: -2027 over the max notional, -2019 when the margin is insufficient.
    """
    mark = marks[symbol]
    row = position_view(account, symbol, mark)
    notional = qty * price
    bids = row.bid_notional + (notional if side == "BUY" else ZERO)
    asks = row.ask_notional + (notional if side == "SELL" else ZERO)
    held = abs(row.amount) * mark
    same_side = bids if side == "BUY" else asks
    growing = (row.amount >= 0) == (side == "BUY")
    exposure = held + same_side if growing else max(ZERO, same_side - held)
    if exposure > row.max_notional:
        raise ApiError(-2027, "Exceeded the maximum allowable position at current leverage.")
    added = _order_margin(row.amount, held, bids, asks, row.leverage) - row.open_order_margin
    if added > 0 and added > account_view(account, marks, liquidation=False).available:
        raise ApiError(-2019, "Margin is insufficient.")
