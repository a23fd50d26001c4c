"""Account and market payloads of Binance USDⓈ-M futures -> frozen domain values (no I/O).

Shapes as documented by Binance (developers.binance.com, derivatives/usds-margined-futures):
``GET /fapi/v3/account`` (totals, ``assets``, ``positions``), ``GET /fapi/v3/balance`` (one row
per asset), ``GET /fapi/v3/positionRisk`` (positions with entry, mark and liquidation prices),
``GET /fapi/v1/leverageBracket`` (brackets per symbol; numbers arrive as JSON numbers),
``POST /fapi/v1/leverage``, ``GET /fapi/v1/premiumIndex``
(mark price), ``GET /fapi/v1/ticker/24hr``, and the user stream's ``ACCOUNT_UPDATE`` event.

Money stays :class:`~decimal.Decimal`. Anything off-shape raises
:class:`~tradercoin.exchange.parsing.PayloadError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from tradercoin.exchange.parsing import PayloadError, dec, integer, listed, text

__all__ = [
    "AccountSummary",
    "AccountUpdate",
    "Balance",
    "Bracket",
    "LeverageChange",
    "MarkPrice",
    "Position",
    "Ticker",
    "account_summary",
    "account_update",
    "balances",
    "leverage_brackets",
    "leverage_change",
    "mark_prices",
    "positions",
    "ticker",
]

ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset of the futures wallet (``/fapi/v3/balance`` or ``ACCOUNT_UPDATE``'s ``B``)."""

    asset: str
    wallet_balance: Decimal
    cross_wallet_balance: Decimal
    unrealized_pnl: Decimal | None
    available_balance: Decimal | None
    update_time: int | None


@dataclass(frozen=True, slots=True)
class Position:
    """One position. ``None`` where the source does not say (``ACCOUNT_UPDATE`` has no mark
    or liquidation price). ``leverage`` is the notional over the position's initial margin
    (the v3 endpoints no longer carry it)."""

    symbol: str
    position_side: str
    amount: Decimal
    entry_price: Decimal | None
    break_even_price: Decimal | None
    mark_price: Decimal | None
    unrealized_pnl: Decimal
    liquidation_price: Decimal | None
    notional: Decimal | None
    initial_margin: Decimal | None
    margin_type: str | None
    update_time: int | None

    @property
    def leverage(self) -> Decimal | None:
        if not self.notional or not self.initial_margin:
            return None
        return (abs(self.notional) / self.initial_margin).quantize(Decimal(1))


@dataclass(frozen=True, slots=True)
class AccountSummary:
    """``/fapi/v3/account`` totals (USDT only in single-asset mode)."""

    total_wallet_balance: Decimal
    total_unrealized_pnl: Decimal
    total_margin_balance: Decimal
    available_balance: Decimal
    can_trade: bool | None
    positions: tuple[Position, ...]


@dataclass(frozen=True, slots=True)
class AccountUpdate:
    """``ACCOUNT_UPDATE``: the balances and positions that changed, and why (``m``)."""

    reason: str
    event_time: int
    transaction_time: int
    balances: tuple[Balance, ...]
    positions: tuple[Position, ...]


@dataclass(frozen=True, slots=True)
class Bracket:
    bracket: int
    initial_leverage: int
    notional_cap: Decimal
    notional_floor: Decimal
    maint_margin_ratio: Decimal


@dataclass(frozen=True, slots=True)
class LeverageChange:
    symbol: str
    leverage: int
    max_notional_value: Decimal


@dataclass(frozen=True, slots=True)
class MarkPrice:
    symbol: str
    mark_price: Decimal
    index_price: Decimal | None
    time: int


@dataclass(frozen=True, slots=True)
class Ticker:
    symbol: str
    last_price: Decimal
    price_change_percent: Decimal
    high_price: Decimal
    low_price: Decimal
    volume: Decimal
    quote_volume: Decimal
    close_time: int


def _maybe(obj: dict[str, Any], key: str) -> Decimal | None:
    return dec(obj, key) if key in obj else None


def _number(obj: Any, key: str) -> Decimal:
    """A JSON number or decimal string (leverageBracket sends numbers) as a Decimal."""
    if not isinstance(obj, dict) or key not in obj:
        raise PayloadError(f"missing field {key!r}")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PayloadError(f"field {key!r} is not a number")
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise PayloadError(f"field {key!r} is not a number") from None


def _object(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise PayloadError(f"expected an object, got {type(payload).__name__}")
    return payload


def balance(obj: Any) -> Balance:
    row = _object(obj)
    return Balance(
        asset=text(row, "asset"),
        wallet_balance=dec(row, "balance"),
        cross_wallet_balance=dec(row, "crossWalletBalance"),
        unrealized_pnl=_maybe(row, "crossUnPnl"),
        available_balance=_maybe(row, "availableBalance"),
        update_time=integer(row, "updateTime") if "updateTime" in row else None,
    )


def balances(payload: Any) -> list[Balance]:
    """``GET /fapi/v3/balance``."""
    return [balance(row) for row in listed(payload)]


def position(obj: Any) -> Position:
    """A row of ``/fapi/v3/positionRisk`` or of ``/fapi/v3/account``'s ``positions``."""
    row = _object(obj)
    pnl_key = "unRealizedProfit" if "unRealizedProfit" in row else "unrealizedProfit"
    initial = "positionInitialMargin" if "positionInitialMargin" in row else "initialMargin"
    return Position(
        symbol=text(row, "symbol"),
        position_side=text(row, "positionSide"),
        amount=dec(row, "positionAmt"),
        entry_price=_maybe(row, "entryPrice"),
        break_even_price=_maybe(row, "breakEvenPrice"),
        mark_price=_maybe(row, "markPrice"),
        unrealized_pnl=dec(row, pnl_key),
        liquidation_price=_maybe(row, "liquidationPrice"),
        notional=_maybe(row, "notional"),
        initial_margin=_maybe(row, initial),
        margin_type=("isolated" if _maybe(row, "isolatedWallet") else "cross")
        if "isolatedWallet" in row
        else None,
        update_time=integer(row, "updateTime") if "updateTime" in row else None,
    )


def positions(payload: Any) -> list[Position]:
    """``GET /fapi/v3/positionRisk`` (only symbols with a position or open orders)."""
    return [position(row) for row in listed(payload)]


def account_summary(payload: Any) -> AccountSummary:
    """``GET /fapi/v3/account``."""
    obj = _object(payload)
    can_trade = obj.get("canTrade")
    return AccountSummary(
        total_wallet_balance=dec(obj, "totalWalletBalance"),
        total_unrealized_pnl=dec(obj, "totalUnrealizedProfit"),
        total_margin_balance=dec(obj, "totalMarginBalance"),
        available_balance=dec(obj, "availableBalance"),
        can_trade=can_trade if isinstance(can_trade, bool) else None,
        positions=tuple(position(row) for row in listed(obj.get("positions", []))),
    )


def _bracket(obj: Any) -> Bracket:
    return Bracket(
        bracket=int(_number(obj, "bracket")),
        initial_leverage=int(_number(obj, "initialLeverage")),
        notional_cap=_number(obj, "notionalCap"),
        notional_floor=_number(obj, "notionalFloor"),
        maint_margin_ratio=_number(obj, "maintMarginRatio"),
    )


def leverage_brackets(payload: Any) -> dict[str, tuple[Bracket, ...]]:
    """``GET /fapi/v1/leverageBracket``: an array of symbols (one object when asked for one)."""
    rows = [payload] if isinstance(payload, dict) else listed(payload)
    result = {}
    for row in rows:
        brackets = listed(_object(row).get("brackets"))
        result[text(row, "symbol")] = tuple(_bracket(b) for b in brackets)
    return result


def leverage_change(payload: Any) -> LeverageChange:
    """``POST /fapi/v1/leverage``."""
    obj = _object(payload)
    return LeverageChange(
        symbol=text(obj, "symbol"),
        leverage=int(_number(obj, "leverage")),
        max_notional_value=_number(obj, "maxNotionalValue"),
    )


def mark_price(obj: Any) -> MarkPrice:
    row = _object(obj)
    return MarkPrice(
        symbol=text(row, "symbol"),
        mark_price=dec(row, "markPrice"),
        index_price=_maybe(row, "indexPrice"),
        time=integer(row, "time"),
    )


def mark_prices(payload: Any) -> list[MarkPrice]:
    """``GET /fapi/v1/premiumIndex``: one object for a symbol, an array for all."""
    rows = [payload] if isinstance(payload, dict) else listed(payload)
    return [mark_price(row) for row in rows]


def ticker(payload: Any) -> Ticker:
    """``GET /fapi/v1/ticker/24hr?symbol=``."""
    obj = _object(payload)
    return Ticker(
        symbol=text(obj, "symbol"),
        last_price=dec(obj, "lastPrice"),
        price_change_percent=dec(obj, "priceChangePercent"),
        high_price=dec(obj, "highPrice"),
        low_price=dec(obj, "lowPrice"),
        volume=dec(obj, "volume"),
        quote_volume=dec(obj, "quoteVolume"),
        close_time=integer(obj, "closeTime"),
    )


def _stream_balance(obj: Any) -> Balance:
    return Balance(
        asset=text(obj, "a"),
        wallet_balance=dec(obj, "wb"),
        cross_wallet_balance=dec(obj, "cw"),
        unrealized_pnl=None,
        available_balance=None,
        update_time=None,
    )


def _stream_position(obj: Any) -> Position:
    return Position(
        symbol=text(obj, "s"),
        position_side=text(obj, "ps"),
        amount=dec(obj, "pa"),
        entry_price=dec(obj, "ep"),
        break_even_price=_maybe(_object(obj), "bep"),
        mark_price=None,
        unrealized_pnl=dec(obj, "up"),
        liquidation_price=None,
        notional=None,
        initial_margin=None,
        margin_type=text(obj, "mt") if "mt" in obj else None,
        update_time=None,
    )


def account_update(event: Any) -> AccountUpdate:
    """The user stream's ``ACCOUNT_UPDATE`` event (``e`` already checked by the caller)."""
    data = _object(_object(event).get("a"))
    return AccountUpdate(
        reason=text(data, "m"),
        event_time=integer(event, "E"),
        transaction_time=integer(event, "T"),
        balances=tuple(_stream_balance(b) for b in listed(data.get("B", []))),
        positions=tuple(_stream_position(p) for p in listed(data.get("P", []))),
    )
