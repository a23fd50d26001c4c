"""``POST /fapi/v1/order`` parameters checked in Binance's order, with its codes and messages.

Pure functions over the request's parameters, the symbol's spec and the mark price; the
result is an :class:`OrderRequest` the engine can place without further checks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from tradercoin.exchange.sim.errors import ApiError, illegal_chars, mandatory
from tradercoin.exchange.sim.markets import SymbolSpec, parse_decimal

__all__ = ["OrderRequest", "parse_int", "parse_order", "require"]

CLIENT_ID_RE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
CONDITIONAL_TYPES = frozenset(
    {"STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"}
)
TIME_IN_FORCE = frozenset({"GTC", "IOC", "FOK", "GTX", "GTD"})
STP_MODES = frozenset({"NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"})
GTD_MIN_AHEAD_MS = 600_000


@dataclass(frozen=True, slots=True)
class OrderRequest:
    spec: SymbolSpec
    side: str
    type: str
    time_in_force: str
    quantity: Decimal
    price: Decimal
    client_order_id: str | None
    reduce_only: bool
    respond_result: bool
    good_till_date: int
    stp_mode: str = "EXPIRE_MAKER"


def require(params: Mapping[str, str], name: str) -> str:
    """The non-empty parameter ``name``, or -1102."""
    value = params.get(name)
    if not value:
        raise mandatory(name)
    return value


def parse_int(params: Mapping[str, str], name: str) -> int | None:
    """An optional integer parameter (-1100 when it is not digits)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or not raw.isascii() or len(raw) > 20:
        raise illegal_chars(name, r"^[0-9]{1,20}$")
    return int(raw)


def parse_order(
    params: Mapping[str, str], specs: Mapping[str, SymbolSpec], mark: Decimal, now_ms: int
) -> OrderRequest:
    """Validate a new order. Raises :class:`ApiError` with the first rule it breaks."""
    spec = symbol_of(params, specs)
    side = _side(params)
    order_type = _type(params)
    _position_side(params)
    tif = _time_in_force(params) if order_type == "LIMIT" else "GTC"
    quantity = _quantity(params, spec)
    price = _price(params, spec, order_type)
    client_id = _client_order_id(params)
    reduce_only = _bool(params, "reduceOnly")
    respond_result = _resp_type(params)
    gtd = _good_till_date(params, now_ms) if tif == "GTD" else 0
    stp_mode = params.get("selfTradePreventionMode") or "EXPIRE_MAKER"
    if stp_mode not in STP_MODES:
        raise mandatory("selfTradePreventionMode")
    _check_filters(spec, order_type, side, quantity, price, mark, reduce_only)
    return OrderRequest(spec, side, order_type, tif, quantity, price, client_id, reduce_only,
                        respond_result, gtd, stp_mode)  # fmt: skip


def symbol_of(params: Mapping[str, str], specs: Mapping[str, SymbolSpec]) -> SymbolSpec:
    spec = specs.get(require(params, "symbol"))
    if spec is None:
        raise ApiError(-1121, "Invalid symbol.")
    return spec


def _side(params: Mapping[str, str]) -> str:
    side = require(params, "side")
    if side not in ("BUY", "SELL"):
        raise ApiError(-1117, "Invalid side.")
    return side


def _type(params: Mapping[str, str]) -> str:
    order_type = require(params, "type")
    if order_type in CONDITIONAL_TYPES:
        raise ApiError(
            -4120,
            "Order type not supported for this endpoint. Please use the Algo "
            "Order API endpoints instead.",
        )
    if order_type not in ("LIMIT", "MARKET"):
        raise ApiError(-1116, "Invalid orderType.")
    return order_type


def _position_side(params: Mapping[str, str]) -> None:
    value = params.get("positionSide", "BOTH")
    if value in ("LONG", "SHORT"):
        raise ApiError(-4061, "Order's position side does not match user's setting.")
    if value != "BOTH":
        raise ApiError(-4006, "Invalid position side.")


def _time_in_force(params: Mapping[str, str]) -> str:
    tif = require(params, "timeInForce")
    if tif not in TIME_IN_FORCE:
        raise ApiError(-1115, "Invalid timeInForce.")
    return tif


def _quantity(params: Mapping[str, str], spec: SymbolSpec) -> Decimal:
    quantity = parse_decimal("quantity", require(params, "quantity"), spec.quantity_precision)
    if quantity <= 0:
        raise ApiError(-4003, "Quantity less than or equal to zero.")
    return quantity


def _price(params: Mapping[str, str], spec: SymbolSpec, order_type: str) -> Decimal:
    if order_type == "MARKET":
        if params.get("price"):
            raise ApiError(-1106, "Parameter 'price' sent when not required.")
        return Decimal(0)
    price = parse_decimal("price", require(params, "price"), spec.price_precision)
    if price <= 0:
        raise ApiError(-4001, "Price less than 0.")
    return price


def _client_order_id(params: Mapping[str, str]) -> str | None:
    value = params.get("newClientOrderId")
    if value is None or value == "":
        return None
    if len(value) > 36 or not CLIENT_ID_RE.fullmatch(value):
        raise ApiError(-4015, "Client order id length should not be more than 36 chars")
    return value


def _bool(params: Mapping[str, str], name: str) -> bool:
    value = params.get(name, "false").lower()
    if value not in ("true", "false"):
        raise mandatory(name)
    return value == "true"


def _resp_type(params: Mapping[str, str]) -> bool:
    value = params.get("newOrderRespType", "ACK")
    if value not in ("ACK", "RESULT"):
        raise mandatory("newOrderRespType")
    return value == "RESULT"


def _good_till_date(params: Mapping[str, str], now_ms: int) -> int:
    value = parse_int(params, "goodTillDate")
    if value is None or value <= now_ms + GTD_MIN_AHEAD_MS:
        raise mandatory("goodTillDate")
    return value // 1000 * 1000


def _check_filters(
    spec: SymbolSpec,
    order_type: str,
    side: str,
    quantity: Decimal,
    price: Decimal,
    mark: Decimal,
    reduce_only: bool,
) -> None:
    max_qty = spec.market_max_qty if order_type == "MARKET" else spec.max_qty
    if order_type == "LIMIT":
        _check_price(spec, side, price, mark)
    if quantity < spec.min_qty:
        raise ApiError(-4004, "Quantity less than min quantity.")
    if quantity > max_qty:
        raise ApiError(-4005, "Quantity greater than max quantity.")
    if (quantity - spec.min_qty) % spec.step_size:
        raise ApiError(-4023, "Quantity not increased by step size.")
    notional = quantity * (price if order_type == "LIMIT" else mark)
    if notional < spec.min_notional and not reduce_only:
        raise ApiError(
            -4164,
            f"Order's notional must be no smaller than {spec.min_notional} "
            "(unless you choose reduce only).",
        )


def _check_price(spec: SymbolSpec, side: str, price: Decimal, mark: Decimal) -> None:
    if price < spec.min_price:
        raise ApiError(-4013, "Price less than min price.")
    if price > spec.max_price:
        raise ApiError(-4002, "Price greater than max price.")
    if (price - spec.min_price) % spec.tick_size:
        raise ApiError(-4014, "Price not increased by tick size.")
    if side == "BUY" and price > mark * spec.multiplier_up:
        cap = spec.fmt_price(spec.round_price(mark * spec.multiplier_up))
        raise ApiError(-4016, f"Limit price can't be higher than {cap}.")
    if side == "SELL" and price < mark * spec.multiplier_down:
        floor = spec.fmt_price(spec.round_price(mark * spec.multiplier_down))
        raise ApiError(-4024, f"Limit price can't be lower than {floor}.")
