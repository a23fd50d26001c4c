"""Order routes: reads from the store (through the per-user cache), writes through the actor."""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import trio
from quart import Quart, Response, request
from quart_schema import document_querystring, document_request, tag

from tradercoin.actors.messages import (
    ActorUnavailable,
    NoExchangeKeys,
    OrderNotFoundError,
    OrderRejected,
    PlaceOrderRequest,
)
from tradercoin.exchange.protocol import SymbolInfo
from tradercoin.http.auth import authenticate
from tradercoin.http.context import HttpContext, context
from tradercoin.http.errors import ApiError, json_response
from tradercoin.http.guards import ascii_int
from tradercoin.http.schemas import MAX_DECIMALS, OrdersQuery, PlaceOrderBody, read_body
from tradercoin.orders import (
    MAX_ID,
    Order,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    fill_to_wire,
    order_to_wire,
)

__all__ = ["parse_orders_query", "register_routes", "unavailable", "validate_order"]

_SYMBOL = re.compile(r"^[A-Z0-9]{2,20}$")
_QUERY_KEYS = frozenset({"page", "page_size", "status", "symbol", "q", "side", "from", "to"})
_STATUSES = {s.value: s for s in OrderStatus}
MAX_PAGE = 1_000_000
MAX_DIGITS = 20  # digits of a quantity or price as written: more is never a real amount
ACTOR_TIMEOUT = 30.0


def _int_arg(name: str, raw: str | None, default: int, low: int, high: int) -> int:
    if raw is None:
        return default
    number = ascii_int(raw, max_digits=len(str(high)))
    if number is None or not low <= number <= high:
        raise ApiError(400, "invalid_query", f"{name} must be an integer from {low} to {high}")
    return number


def parse_orders_query(args: Any) -> dict[str, Any]:
    """The validated ``GET /api/orders`` query as keyword arguments of ``list_orders``.

    Raises:
        ApiError: 400 for an unknown parameter or a bad value (named in the message).
    """
    unknown = set(args) - _QUERY_KEYS
    if unknown:
        raise ApiError(400, "invalid_query", f"unknown parameter {sorted(unknown)[0]!r}")
    status = _status(args["status"]) if args.get("status") else None
    symbol = args.get("symbol") or None
    if symbol is not None and not _SYMBOL.match(symbol.upper()):
        raise ApiError(400, "invalid_query", "symbol must be 2-20 letters or digits")
    q = args.get("q") or None
    if q is not None and len(q) > 64:
        raise ApiError(400, "invalid_query", "q must be at most 64 characters")
    return {
        "status": status,
        "symbol": None if symbol is None else symbol.upper(),
        "q": q,
        "page": _int_arg("page", args.get("page"), 1, 1, MAX_PAGE),
        "page_size": _int_arg("page_size", args.get("page_size"), 20, 1, 100),
        **_side_and_span(args),
    }


def _side_and_span(args: Any) -> dict[str, Any]:
    """``side`` (BUY or SELL) and ``from``/``to`` (epoch ms, ASCII digits) as ``side``,
    ``since`` and ``until`` of ``list_orders``; an empty value is no filter.

    Raises:
        ApiError: 400 with a sentence for a bad side, a bad time, or from later than to.
    """
    side = (args.get("side") or "").strip().upper() or None
    if side is not None and side not in ("BUY", "SELL"):
        raise ApiError(400, "invalid_query", "Side must be BUY or SELL.")
    since, until = (
        _epoch_ms(label, args.get(key)) for key, label in (("from", "From"), ("to", "To"))
    )
    if since is not None and until is not None and since > until:
        raise ApiError(400, "invalid_query", "From must not be later than To.")
    return {"side": None if side is None else Side(side), "since": since, "until": until}


def _epoch_ms(label: str, raw: str | None) -> int | None:
    if not raw:
        return None
    number = ascii_int(raw, max_digits=19)
    if number is None or number > MAX_ID:
        raise ApiError(
            400,
            "invalid_query",
            f"{label} must be a time in milliseconds since 1970 (digits only, e.g. 1764720000000).",
        )
    return number


def _status(text: str) -> OrderStatus:
    status = _STATUSES.get(text.strip().lower())
    if status is None:
        raise ApiError(400, "invalid_query", f"status must be one of {', '.join(_STATUSES)}")
    return status


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _canonical(
    name: str, value: Decimal, precision: int, step: Decimal | None, symbol: str
) -> Decimal:
    """``value`` checked against the symbol's rules and written with at most ``precision``
    decimals (trailing zeros beyond them dropped): what is sent to the exchange and stored.

    Raises:
        ApiError: 400 for more than :data:`MAX_DIGITS` digits as written, or a value the
            symbol's step, tick or precision does not allow (a sentence naming the field).
    """
    _, digits, exponent = value.as_tuple()
    decimals = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    if len(digits) > MAX_DIGITS or decimals > MAX_DIGITS:
        raise ApiError(
            400,
            "too_many_digits",
            f"{name.capitalize()} has more digits than any symbol allows.",
            field=name,
        )
    _check_amount(name, value, precision, step, symbol)
    return value.quantize(Decimal(1).scaleb(-precision)) if decimals > precision else value


def _plain(value: Decimal) -> str:
    """``value`` without trailing zeros or exponent, with thousands separators."""
    return format(value.normalize(), ",f")


def _check_amount(
    name: str, value: Decimal, precision: int, step: Decimal | None, symbol: str
) -> None:
    label = name.capitalize()
    if value <= 0:
        raise ApiError(400, f"invalid_{name}", f"{label} must be greater than zero.", field=name)
    if value >= Decimal("1e12"):
        raise ApiError(400, f"invalid_{name}", f"{label} is too large.", field=name)
    if step and step > 0 and value % step != 0:
        what = "tick size" if name == "price" else "step size"
        raise ApiError(
            400,
            "too_many_decimals",
            f"{label} must be a multiple of {_plain(step)} (the {what} of {symbol}).",
            field=name,
        )
    if _decimals(value) > precision:
        raise ApiError(
            400,
            "too_many_decimals",
            f"{label} may have at most {precision} decimals for {symbol}.",
            field=name,
        )


def validate_order(
    body: PlaceOrderBody,
    symbols: dict[str, SymbolInfo] | Any,
    mark: Decimal | None = None,
) -> PlaceOrderRequest:
    """The request to give the actor, checked against the symbol's rules.

    ``mark`` (the symbol's mark price, when known) prices a MARKET order for the minimum
    notional check; a LIMIT order is checked at its own price.

    Raises:
        ApiError: 400 with a sentence and the field at fault (unknown symbol, zero/negative
            amounts, off-step amounts, below the minimum notional, a price on a MARKET order
            or none on a LIMIT order).
    """
    symbol = body.symbol.upper()
    info: SymbolInfo | None = symbols.get(symbol) if symbols else None
    if symbols and (info is None or info.status != "TRADING"):
        raise ApiError(
            400, "unknown_symbol", f"{symbol} is not a symbol you can trade here.", field="symbol"
        )
    quantity = _canonical(
        "quantity",
        body.quantity,
        info.quantity_precision if info else MAX_DECIMALS,
        info.step_size if info else None,
        symbol,
    )
    if info and not info.min_qty <= quantity <= info.max_qty:
        raise ApiError(
            400,
            "invalid_quantity",
            f"Quantity must be from {_plain(info.min_qty)} to {_plain(info.max_qty)} for {symbol}.",
            field="quantity",
        )
    price, tif = _price_rules(body, info, symbol)
    if info is not None and not body.reduce_only:  # Binance: "unless you choose reduce only"
        _check_notional(quantity, price if price is not None else mark, info)
    return PlaceOrderRequest(
        symbol=symbol,
        side=Side(body.side),
        type=OrderType(body.type),
        quantity=quantity,
        price=price,
        time_in_force=tif,
        reduce_only=body.reduce_only,
        client_order_id=body.client_order_id,
    )


def _check_notional(quantity: Decimal, price: Decimal | None, info: SymbolInfo) -> None:
    """Refuse an order worth less than the symbol's minimum notional (the exchange would)."""
    if price is None or price <= 0 or not info.min_notional:
        return
    if quantity * price >= info.min_notional:
        return
    needed = -(-info.min_notional / price // info.step_size) * info.step_size
    raise ApiError(
        400,
        "below_min_notional",
        f"The order is worth {_plain((quantity * price).quantize(Decimal('0.01')))} USDT; "
        f"{info.symbol} needs at least {_plain(info.min_notional)} USDT "
        f"(a quantity of {_plain(needed)} or more at {_plain(price)}).",
        field="quantity",
    )


def _price_rules(
    body: PlaceOrderBody, info: SymbolInfo | None, symbol: str
) -> tuple[Decimal | None, TimeInForce | None]:
    if body.type == "MARKET":
        if body.price is not None or body.time_in_force is not None:
            raise ApiError(
                400,
                "invalid_price",
                "A market order takes no price and no time in force.",
                field="price",
            )
        return None, None
    if body.price is None:
        raise ApiError(400, "invalid_price", "A limit order needs a price.", field="price")
    price = _canonical(
        "price",
        body.price,
        info.price_precision if info else MAX_DECIMALS,
        info.tick_size if info else None,
        symbol,
    )
    return price, TimeInForce(body.time_in_force or "GTC")


def _actor(ctx: HttpContext, user_id: int) -> Any:
    handle = ctx.supervisor.actor(user_id) if ctx.supervisor is not None else None
    if handle is None:
        raise _no_keys()
    return handle


def _no_keys() -> ApiError:
    return ApiError(
        409,
        "no_exchange_keys",
        "Store your exchange keys first (Settings, or PUT /api/credentials).",
    )


def _order_answer(order: Order, status: int) -> Response:
    return json_response({"status": "success", "data": order_to_wire(order)}, status)


# ----------------------------------------------------------------------------- routes


@tag(["orders"])
@document_querystring(OrdersQuery)
async def list_orders() -> Response:
    """The user's orders, newest first: ``{"status","data","total","page","page_size"}``.

    Reads the store only (through a cache the user's actor keeps current); never the exchange.
    """
    user = await authenticate()
    query = parse_orders_query(request.args)
    ctx = context()

    async def render() -> bytes:
        page = await ctx.store.list_orders(user.id, **query)
        return _page_bytes(page)

    handle = ctx.supervisor.actor(user.id) if ctx.supervisor is not None else None
    body = await ctx.orders_cache.get(user.id, tuple(query.values()), handle, render)
    return Response(body, 200, content_type="application/json")


def _page_bytes(page: Any) -> bytes:
    answer = {
        "status": "success",
        "data": [order_to_wire(o) for o in page.items],
        "total": page.total,
        "page": page.page,
        "page_size": page.page_size,
    }
    return json.dumps(answer, separators=(",", ":")).encode()


@tag(["orders"])
async def get_order(order_id: int) -> Response:
    """One order of the user's (another user's order is a 404)."""
    user = await authenticate()
    order = None
    if order_id <= MAX_ID:
        order = await context().store.get_order(user.id, order_id)
    if order is None:
        raise ApiError(404, "order_not_found", f"no order {order_id}")
    return _order_answer(order, 200)


@tag(["orders"])
@document_request(PlaceOrderBody)
async def place_order() -> Response:
    """Place an order through the user's actor; 201 with the order as stored.

    With a ``client_order_id`` the user already used, the order placed with it is the answer
    and nothing is placed again (retrying after a lost answer is safe).
    """
    user = await authenticate()
    body = await read_body(PlaceOrderBody)
    ctx = context()
    mark = ctx.prices.latest(body.symbol.upper()) if ctx.prices is not None else None
    order_request = validate_order(body, ctx.symbols, None if mark is None else mark.mark_price)
    handle = _actor(ctx, user.id)
    try:
        with trio.fail_after(ACTOR_TIMEOUT):
            order = await handle.place(order_request)
    except OrderRejected as error:
        raise ApiError(
            400, "order_rejected", f"The exchange refused the order: {error.message}"
        ) from None
    except ActorUnavailable as error:
        raise unavailable(error) from None
    except trio.TooSlowError:
        raise ApiError(
            504, "timeout", "The exchange did not answer in time; check the orders list."
        ) from None
    return _order_answer(order, 201)


@tag(["orders"])
async def cancel_order(order_id: int) -> Response:
    """Cancel an open order through the user's actor; 200 with the order."""
    user = await authenticate()
    if not 0 < order_id <= MAX_ID:
        raise ApiError(404, "order_not_found", f"no order {order_id}")
    handle = _actor(context(), user.id)
    try:
        with _cancel_errors():
            order = await handle.cancel(order_id)
    except OrderNotFoundError:
        raise ApiError(404, "order_not_found", f"There is no order {order_id}.") from None
    return _order_answer(order, 200)


@tag(["orders"])
async def cancel_all_orders() -> Response:
    """Cancel every open order of one symbol (``?symbol=``) through the user's actor.

    200 with how many of the user's pending orders of that symbol the cancel covered; their
    new states follow on ``/ws`` as the exchange confirms them.
    """
    user = await authenticate()
    ctx = context()
    symbol = _cancel_all_symbol(request.args, ctx.symbols)
    handle = _actor(ctx, user.id)
    with _cancel_errors():
        covered = await handle.cancel_all(symbol)
    return json_response({"status": "success", "data": {"symbol": symbol, "canceled": covered}})


@contextlib.contextmanager
def _cancel_errors() -> Iterator[None]:
    """A cancel through the actor, bounded in time; its failures as API errors."""
    try:
        with trio.fail_after(ACTOR_TIMEOUT):
            yield
    except OrderRejected as error:
        raise ApiError(
            409, "cannot_cancel", f"The exchange refused the cancel: {error.message}"
        ) from None
    except ActorUnavailable as error:
        raise unavailable(error) from None
    except trio.TooSlowError:
        raise ApiError(504, "timeout", "The exchange did not answer in time.") from None


def _cancel_all_symbol(args: Any, known: Mapping[str, SymbolInfo]) -> str:
    if set(args) - {"symbol"}:
        raise ApiError(400, "invalid_query", "Only the symbol can be given to cancel all orders.")
    symbol = (args.get("symbol") or "").strip().upper()
    if not symbol:
        raise ApiError(400, "invalid_query", "Say which symbol's orders to cancel (?symbol=).")
    if symbol not in known:
        raise ApiError(400, "invalid_query", f"{symbol[:20]} is not a symbol you can trade.")
    return symbol


@tag(["orders"])
async def order_fills(order_id: int) -> Response:
    """The fills (trades) of one of the user's orders, oldest first, from the store (another
    user's order is a 404, exactly as a missing one)."""
    user = await authenticate()
    store = context().store
    order = await store.get_order(user.id, order_id) if 0 < order_id <= MAX_ID else None
    if order is None:
        raise ApiError(404, "order_not_found", f"no order {order_id}")
    fills = await store.order_fills(user.id, order_id)
    return json_response({"status": "success", "data": [fill_to_wire(f) for f in fills]})


def unavailable(error: ActorUnavailable) -> ApiError:
    """The 503 (with Retry-After) of an actor that cannot take a request, or the 409 of a
    user without keys found out by another instance."""
    if isinstance(error, NoExchangeKeys):  # found out by the instance that owns nobody's keys
        return _no_keys()
    retry = "2" if error.retry_after is None else str(max(1, math.ceil(error.retry_after)))
    return ApiError(503, "unavailable", error.reason, headers={"Retry-After": retry})


@tag(["orders"])
async def symbols() -> Response:
    """The symbols orders may be placed on, with their precision rules."""
    rows = [
        {
            "symbol": info.symbol,
            "tick_size": format(info.tick_size, "f"),
            "step_size": format(info.step_size, "f"),
            "min_qty": format(info.min_qty, "f"),
            "max_qty": format(info.max_qty, "f"),
            "min_notional": format(info.min_notional, "f"),
            "price_precision": info.price_precision,
            "quantity_precision": info.quantity_precision,
        }
        for info in sorted(context().symbols.values(), key=lambda i: i.symbol)
        if info.status == "TRADING"
    ]
    return json_response({"status": "success", "data": rows})


def register_routes(app: Quart) -> None:
    app.add_url_rule("/api/symbols", view_func=symbols, methods=["GET"])
    app.add_url_rule("/api/orders", view_func=list_orders, methods=["GET"])
    app.add_url_rule("/api/orders", view_func=place_order, methods=["POST"])
    app.add_url_rule("/api/orders", view_func=cancel_all_orders, methods=["DELETE"])
    app.add_url_rule("/api/orders/<int:order_id>", view_func=get_order, methods=["GET"])
    app.add_url_rule("/api/orders/<int:order_id>", view_func=cancel_order, methods=["DELETE"])
    app.add_url_rule("/api/orders/<int:order_id>/fills", view_func=order_fills, methods=["GET"])
