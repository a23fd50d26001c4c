"""The ``/fapi/v1`` routes: one small handler per endpoint and the dispatch table with each
route's security and request weight (reference §1)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import trio

from tradercoin.exchange.sim import account_api, market_data
from tradercoin.exchange.sim.engine import Account, SimOrder
from tradercoin.exchange.sim.errors import ApiError, one_of_mandatory
from tradercoin.exchange.sim.events import ack_wire, order_wire, user_trade
from tradercoin.exchange.sim.validate import parse_int, parse_order, symbol_of

if TYPE_CHECKING:
    from tradercoin.exchange.sim.simulator import Simulator

__all__ = ["ROUTES", "Call", "Route"]

DAY_MS = 86_400_000
WEEK_MS = 7 * DAY_MS
Security = Literal["NONE", "USER_STREAM", "SIGNED"]


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated request as a handler sees it."""

    params: Mapping[str, str]
    account: Account
    now_ms: int
    visible_after: float = 0.0


Handler = Callable[["Simulator", Call], Any]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    security: Security
    weight: Callable[[Mapping[str, str]], int]
    is_order: bool = False


def _w(n: int) -> Callable[[Mapping[str, str]], int]:
    return lambda _params: n


# --- public ------------------------------------------------------------------------------


def ping(sim: Simulator, call: Call) -> Any:
    return {}


def server_time(sim: Simulator, call: Call) -> Any:
    return {"serverTime": call.now_ms}


def exchange_info(sim: Simulator, call: Call) -> Any:
    return sim.exchange_info(call.now_ms)


def ticker_price(sim: Simulator, call: Call) -> Any:
    """``/fapi/v1/ticker/price`` (and ``/fapi/v2``): one symbol, or all as a list."""
    if call.params.get("symbol"):
        return _ticker(sim, symbol_of(call.params, sim.specs).symbol, call.now_ms)
    return [_ticker(sim, symbol, call.now_ms) for symbol in sim.specs]


def _ticker(sim: Simulator, symbol: str, now_ms: int) -> dict[str, Any]:
    return {"symbol": symbol, "price": sim.specs[symbol].fmt_price(sim.mark(symbol)),
            "time": now_ms}  # fmt: skip


def premium_index(sim: Simulator, call: Call) -> Any:
    """``/fapi/v1/premiumIndex``: the mark price (the walk), index = mark, no funding."""
    if call.params.get("symbol"):
        return _premium(sim, symbol_of(call.params, sim.specs).symbol, call.now_ms)
    return [_premium(sim, symbol, call.now_ms) for symbol in sim.specs]


def _premium(sim: Simulator, symbol: str, now_ms: int) -> dict[str, Any]:
    mark = f"{sim.mark(symbol):.8f}"
    return {
        "symbol": symbol, "markPrice": mark, "indexPrice": mark, "estimatedSettlePrice": mark,
        "lastFundingRate": "0.00000000", "interestRate": "0.00000000",
        "nextFundingTime": (now_ms // 28_800_000 + 1) * 28_800_000, "time": now_ms,
    }  # fmt: skip


# --- orders ------------------------------------------------------------------------------


def new_order(sim: Simulator, call: Call) -> Any:
    spec = symbol_of(call.params, sim.specs)
    request = parse_order(call.params, sim.specs, sim.mark(spec.symbol), call.now_ms)
    account_api.check_margin(sim, call.account, request)
    order = sim.place(call.account, request, call.visible_after)
    return order_wire(order, placed=True) if request.respond_result else ack_wire(order)


def get_order(sim: Simulator, call: Call) -> Any:
    return order_wire(_queryable(sim, call), placed=False)


def get_open_order(sim: Simulator, call: Call) -> Any:
    order = _queryable(sim, call)
    if not order.is_open:
        raise ApiError(-2013, "Order does not exist.")
    return order_wire(order, placed=False)


def cancel_order(sim: Simulator, call: Call) -> Any:
    order = _lookup(sim, call)
    if order is None or not _visible(order):
        raise ApiError(-2011, "Unknown order sent.")
    sim.engine.cancel(order)
    return order_wire(order, placed=True)


def cancel_all(sim: Simulator, call: Call) -> Any:
    spec = symbol_of(call.params, sim.specs)
    for order in list(call.account.open_in(spec.symbol).values()):
        sim.engine.cancel(order)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def open_orders(sim: Simulator, call: Call) -> Any:
    if call.params.get("symbol"):
        orders: Iterable[SimOrder] = call.account.open_in(
            symbol_of(call.params, sim.specs).symbol
        ).values()
    else:
        orders = call.account.all_open()
    return [order_wire(o, placed=False) for o in orders if _visible(o)]


def all_orders(sim: Simulator, call: Call) -> Any:
    spec = symbol_of(call.params, sim.specs)
    from_id = parse_int(call.params, "orderId")
    start, end = _window(call.params, call.now_ms)
    orders = [
        o
        for o in call.account.orders.get(spec.symbol, {}).values()
        if _visible(o)
        and not _purged(o, call.now_ms)
        and (o.order_id >= from_id if from_id is not None else start <= o.time <= end)
    ]
    return [order_wire(o, placed=False) for o in _page(orders, call.params, from_id)]


def user_trades(sim: Simulator, call: Call) -> Any:
    spec = symbol_of(call.params, sim.specs)
    from_id = parse_int(call.params, "fromId")
    order_id = parse_int(call.params, "orderId")
    if from_id is not None and ("startTime" in call.params or "endTime" in call.params):
        raise ApiError(-1128, "Combination of optional parameters invalid.")
    start, end = _window(call.params, call.now_ms)
    trades = [
        t
        for t in call.account.trades.get(spec.symbol, [])
        if (order_id is None or t.order_id == order_id)
        and (t.id >= from_id if from_id is not None else start <= t.time <= end)
    ]
    return [user_trade(t, spec) for t in _page(trades, call.params, from_id)]


def _page(items: list[Any], params: Mapping[str, str], from_id: int | None) -> list[Any]:
    limit = parse_int(params, "limit") or 500
    limit = min(limit, 1000)
    return items[:limit] if from_id is not None else items[-limit:]


def _window(params: Mapping[str, str], now_ms: int) -> tuple[int, int]:
    start = parse_int(params, "startTime")
    end = parse_int(params, "endTime")
    if start is not None and end is not None:
        if end - start > WEEK_MS:
            raise ApiError(-1127, "More than 168 hours between startTime and endTime.")
        return start, end
    if start is not None:
        return start, start + WEEK_MS
    if end is not None:
        return end - WEEK_MS, end
    return now_ms - WEEK_MS, now_ms


def _lookup(sim: Simulator, call: Call) -> SimOrder | None:
    spec = symbol_of(call.params, sim.specs)
    order_id = parse_int(call.params, "orderId")
    client_id = call.params.get("origClientOrderId")
    if order_id is not None:
        return call.account.orders.get(spec.symbol, {}).get(order_id)
    if client_id:
        return call.account.by_client_id.get((spec.symbol, client_id))
    raise one_of_mandatory("origClientOrderId", "orderId")


def _queryable(sim: Simulator, call: Call) -> SimOrder:
    order = _lookup(sim, call)
    if order is None or not _visible(order) or _purged(order, call.now_ms):
        raise ApiError(-2013, "Order does not exist.")
    return order


def _visible(order: SimOrder) -> bool:
    return order.visible_at <= trio.current_time()


def _purged(order: SimOrder, now_ms: int) -> bool:
    """The doc's rule: canceled/expired with no fill after 3 days; anything after 90 days."""
    if order.time + 90 * DAY_MS < now_ms:
        return True
    return (
        order.status in ("CANCELED", "EXPIRED", "EXPIRED_IN_MATCH")
        and not order.executed_qty
        and order.time + 3 * DAY_MS < now_ms
    )


def order_rate_limit(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v1/rateLimit/order``: the account's own ORDERS limits."""
    per_10s, per_minute = sim.limiter.order_limits(call.account.api_key)
    return [
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": per_10s},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": per_minute},
    ]


# --- listenKey ---------------------------------------------------------------------------


def listen_key_create(sim: Simulator, call: Call) -> Any:
    return {"listenKey": sim.streams.create_key(call.account)}


def listen_key_keepalive(sim: Simulator, call: Call) -> Any:
    return {"listenKey": sim.streams.keepalive(call.account, call.params.get("listenKey"))}


def listen_key_close(sim: Simulator, call: Call) -> Any:
    sim.streams.close_key(call.account, call.params.get("listenKey"))
    return {}


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/ping"): Route(ping, "NONE", _w(1)),
    ("GET", "/fapi/v1/time"): Route(server_time, "NONE", _w(1)),
    ("GET", "/api/v3/ping"): Route(ping, "NONE", _w(1)),
    ("GET", "/api/v3/time"): Route(server_time, "NONE", _w(1)),
    ("GET", "/fapi/v1/exchangeInfo"): Route(exchange_info, "NONE", _w(1)),
    ("GET", "/fapi/v1/ticker/price"): Route(
        ticker_price, "NONE", lambda p: 1 if p.get("symbol") else 2
    ),
    ("GET", "/fapi/v2/ticker/price"): Route(
        ticker_price, "NONE", lambda p: 1 if p.get("symbol") else 2
    ),
    ("GET", "/fapi/v1/premiumIndex"): Route(
        premium_index, "NONE", lambda p: 1 if p.get("symbol") else 10
    ),
    ("GET", "/fapi/v1/ticker/24hr"): Route(
        market_data.ticker_24hr, "NONE", lambda p: 1 if p.get("symbol") else 40
    ),
    ("GET", "/fapi/v1/ticker/bookTicker"): Route(
        market_data.book_ticker, "NONE", lambda p: 2 if p.get("symbol") else 5
    ),
    ("GET", "/fapi/v1/depth"): Route(market_data.depth, "NONE", market_data.depth_weight),
    ("GET", "/fapi/v3/account"): Route(account_api.futures_account, "SIGNED", _w(5)),
    ("GET", "/fapi/v2/account"): Route(account_api.futures_account_v2, "SIGNED", _w(5)),
    ("GET", "/fapi/v3/balance"): Route(account_api.balance, "SIGNED", _w(5)),
    ("GET", "/fapi/v3/positionRisk"): Route(account_api.position_risk, "SIGNED", _w(5)),
    ("GET", "/fapi/v1/leverageBracket"): Route(account_api.leverage_bracket, "SIGNED", _w(1)),
    ("GET", "/fapi/v1/symbolConfig"): Route(account_api.symbol_config, "SIGNED", _w(5)),
    ("POST", "/fapi/v1/leverage"): Route(account_api.change_leverage, "SIGNED", _w(1)),
    ("POST", "/fapi/v1/order"): Route(new_order, "SIGNED", _w(0), is_order=True),
    ("GET", "/fapi/v1/order"): Route(get_order, "SIGNED", _w(1)),
    ("DELETE", "/fapi/v1/order"): Route(cancel_order, "SIGNED", _w(1)),
    ("GET", "/fapi/v1/openOrder"): Route(get_open_order, "SIGNED", _w(1)),
    ("GET", "/fapi/v1/openOrders"): Route(
        open_orders, "SIGNED", lambda p: 1 if p.get("symbol") else 40
    ),
    ("GET", "/fapi/v1/allOrders"): Route(all_orders, "SIGNED", _w(5)),
    ("DELETE", "/fapi/v1/allOpenOrders"): Route(cancel_all, "SIGNED", _w(1)),
    ("GET", "/fapi/v1/userTrades"): Route(user_trades, "SIGNED", _w(5)),
    ("GET", "/fapi/v1/rateLimit/order"): Route(order_rate_limit, "SIGNED", _w(1)),
    ("POST", "/fapi/v1/listenKey"): Route(listen_key_create, "USER_STREAM", _w(1)),
    ("PUT", "/fapi/v1/listenKey"): Route(listen_key_keepalive, "USER_STREAM", _w(1)),
    ("DELETE", "/fapi/v1/listenKey"): Route(listen_key_close, "USER_STREAM", _w(1)),
}
KNOWN_PATHS = frozenset(path for _, path in ROUTES)
