"""Exchange payloads -> domain values (no I/O).

Every function takes decoded JSON and returns domain types from :mod:`tradercoin.orders` or
:mod:`tradercoin.exchange.protocol`. Anything that does not have the documented shape raises
:class:`PayloadError` (a ``ValueError``); callers turn it into an ``ExchangeError`` carrying the
raw body. Numbers arrive as decimal strings and stay :class:`~decimal.Decimal`.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from tradercoin.exchange.protocol import SymbolInfo
from tradercoin.orders import ExchangeUpdate, Fill, OrderStatus

__all__ = [
    "PayloadError",
    "fill_from_stream",
    "fill_from_trade",
    "listed",
    "symbol_info",
    "symbol_infos",
    "update_from_order",
    "update_from_stream",
]


class PayloadError(ValueError):
    """A payload does not have the shape the exchange documents."""


def _field(obj: Any, key: str) -> Any:
    if not isinstance(obj, dict):
        raise PayloadError(f"expected an object, got {type(obj).__name__}")
    try:
        return obj[key]
    except KeyError:
        raise PayloadError(f"missing field {key!r}") from None


def dec(obj: Any, key: str) -> Decimal:
    """``obj[key]`` as a Decimal; accepts the documented strings (and ints)."""
    value = _field(obj, key)
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PayloadError(f"field {key!r} is not a decimal string")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise PayloadError(f"field {key!r} is not a decimal string") from None
    if not result.is_finite():
        raise PayloadError(f"field {key!r} is not finite")
    return result


def integer(obj: Any, key: str) -> int:
    """``obj[key]`` as an int; tolerates a digit string (``E`` in ``listenKeyExpired``)."""
    value = _field(obj, key)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise PayloadError(f"field {key!r} is not an integer")


def text(obj: Any, key: str) -> str:
    value = _field(obj, key)
    if not isinstance(value, str):
        raise PayloadError(f"field {key!r} is not a string")
    return value


def flag(obj: Any, key: str) -> bool:
    value = _field(obj, key)
    if not isinstance(value, bool):
        raise PayloadError(f"field {key!r} is not a boolean")
    return value


def _status(obj: Any, key: str) -> OrderStatus:
    try:
        return OrderStatus.from_exchange(text(obj, key))
    except ValueError as exc:
        raise PayloadError(str(exc)) from None


def _avg_price(avg: Decimal, executed: Decimal) -> Decimal | None:
    """Binance sends ``"0"`` / ``"0.00"`` before anything executed: that is no price."""
    return avg if executed and avg else None


def update_from_order(obj: Any) -> ExchangeUpdate:
    """An order object (POST/DELETE/GET order, openOrders, allOrders) as a snapshot.

    ``updateTime`` is the snapshot's time; ``time`` (creation) stands in if it is absent.
    """
    executed = dec(obj, "executedQty")
    return ExchangeUpdate(
        symbol=text(obj, "symbol"),
        exchange_order_id=integer(obj, "orderId"),
        client_order_id=text(obj, "clientOrderId"),
        status=_status(obj, "status"),
        executed_qty=executed,
        avg_price=_avg_price(dec(obj, "avgPrice"), executed),
        update_time=integer(obj, "updateTime" if "updateTime" in obj else "time"),
    )


def fill_from_trade(obj: Any) -> Fill:
    """One element of ``GET /fapi/v1/userTrades``."""
    return Fill(
        symbol=text(obj, "symbol"),
        trade_id=integer(obj, "id"),
        exchange_order_id=integer(obj, "orderId"),
        price=dec(obj, "price"),
        quantity=dec(obj, "qty"),
        commission=dec(obj, "commission"),
        commission_asset=text(obj, "commissionAsset"),
        time=integer(obj, "time"),
        realized_pnl=dec(obj, "realizedPnl") if "realizedPnl" in obj else Decimal(0),
        maker=flag(obj, "maker") if "maker" in obj else False,
    )


def fill_from_stream(o: Any, when: int) -> Fill | None:
    """The trade inside an ``ORDER_TRADE_UPDATE`` order block, if it carries one.

    Only ``x == "TRADE"`` with a non-zero trade id ``t`` is a fill; ``n``/``N`` are omitted
    when there is no commission.
    """
    if text(o, "x") != "TRADE" or integer(o, "t") == 0:
        return None
    has_commission = "n" in o
    return Fill(
        symbol=text(o, "s"),
        trade_id=integer(o, "t"),
        exchange_order_id=integer(o, "i"),
        price=dec(o, "L"),
        quantity=dec(o, "l"),
        commission=dec(o, "n") if has_commission else Decimal(0),
        commission_asset=text(o, "N") if "N" in o else "",
        time=when,
        realized_pnl=dec(o, "rp") if "rp" in o else Decimal(0),
        maker=flag(o, "m") if "m" in o else False,
    )


def update_from_stream(event: Any) -> ExchangeUpdate:
    """An ``ORDER_TRADE_UPDATE`` event as a snapshot, with its trade as a fill if any.

    The snapshot's time is the order block's trade time ``o.T``, else the event's ``T``,
    else ``E``: the same clock as the REST ``updateTime``.
    """
    o = _field(event, "o")
    when = integer(o, "T") if "T" in o else integer(event, "T" if "T" in event else "E")
    executed = dec(o, "z")
    fill = fill_from_stream(o, when)
    return ExchangeUpdate(
        symbol=text(o, "s"),
        exchange_order_id=integer(o, "i"),
        client_order_id=text(o, "c"),
        status=_status(o, "X"),
        executed_qty=executed,
        avg_price=_avg_price(dec(o, "ap"), executed),
        update_time=when,
        fills=() if fill is None else (fill,),
    )


def _filters(symbol: Any) -> dict[str, Any]:
    filters = _field(symbol, "filters")
    if not isinstance(filters, list):
        raise PayloadError("field 'filters' is not a list")
    return {text(f, "filterType"): f for f in filters}


def symbol_info(symbol: Any) -> SymbolInfo:
    """One ``symbols[]`` element of exchangeInfo; tick and step come from the filters."""
    filters = _filters(symbol)
    price, lot = _field(filters, "PRICE_FILTER"), _field(filters, "LOT_SIZE")
    notional = filters.get("MIN_NOTIONAL")
    return SymbolInfo(
        symbol=text(symbol, "symbol"),
        status=text(symbol, "status"),
        tick_size=dec(price, "tickSize"),
        step_size=dec(lot, "stepSize"),
        min_qty=dec(lot, "minQty"),
        max_qty=dec(lot, "maxQty"),
        min_notional=Decimal(0) if notional is None else dec(notional, "notional"),
        price_precision=integer(symbol, "pricePrecision"),
        quantity_precision=integer(symbol, "quantityPrecision"),
    )


def symbol_infos(info: Any) -> list[SymbolInfo]:
    """Every symbol of a ``GET /fapi/v1/exchangeInfo`` answer."""
    symbols = _field(info, "symbols")
    if not isinstance(symbols, list):
        raise PayloadError("field 'symbols' is not a list")
    return [symbol_info(s) for s in symbols]


def listed(payload: Any) -> list[Any]:
    """A JSON array answer (openOrders, allOrders, userTrades)."""
    if not isinstance(payload, list):
        raise PayloadError(f"expected an array, got {type(payload).__name__}")
    return payload
