"""``/sim/admin/...``: the simulator's unauthenticated control routes (JSON in, JSON out).

- ``POST /sim/admin/accounts`` ``{"balance"?, "orders_per_10s"?, "orders_per_minute"?}`` ->
  ``{"api_key", "api_secret"}`` (the wallet holds ``balance`` USDT, default the simulator's
  ``starting_balance``; the account's own ORDERS limits, counted per account, Binance's 300
  and 1200 unless given; ``GET /fapi/v1/rateLimit/order`` shows them)
- ``GET|POST /sim/admin/price`` ``{"symbol", "price"?}`` -> ``{"symbol", "price"}``
- ``POST /sim/admin/fill`` ``{"symbol", "orderId", "quantity"?}``
- ``POST /sim/admin/faults`` ``{"kind", "seconds"?, "path"?, "account"?, "count"?}``;
  ``DELETE /sim/admin/faults`` clears them
- ``GET /sim/admin/account?api_key=...``: wallet, positions and margins (account.py's
  ``AccountView``, decimals as strings)
- ``GET /sim/admin/orders?api_key=...``, ``GET /sim/admin/statistics`` (with
  ``connection_rules``: connections open, handshakes per IP in the 5-minute window and the
  most ever, refusals 429/418, bans, connections closed for >10 messages/s, streams per
  connection)
- ``GET /sim/admin/trades?api_key=...[&symbol=...][&orderId=...]``: the account's side of
  each trade; ``GET /sim/admin/matches``: the trades between two accounts
"""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from tradercoin.exchange.sim.errors import ApiError
from tradercoin.exchange.sim.faults import Fault
from tradercoin.exchange.sim.rest import Request, Response, json_response

if TYPE_CHECKING:
    from tradercoin.exchange.sim.simulator import Simulator

__all__ = ["handle_admin"]


def handle_admin(sim: Simulator, request: Request) -> Response:
    """Run one admin command; bad input gets a 400 with Binance's error shape."""
    handler = _ADMIN.get((request.method, request.path.removeprefix("/sim/admin/")))
    if handler is None:
        return json_response(
            {"code": -5000, "msg": f"Path {request.path}, Method {request.method} is invalid"}, 404
        )
    try:
        return json_response(handler(sim, _body(request)))
    except ApiError as exc:
        return json_response(exc.body(), exc.status)
    except (KeyError, ValueError, TypeError, InvalidOperation) as exc:
        return json_response({"code": -1102, "msg": f"Bad admin request: {exc!s:.100}"}, 400)


def _body(request: Request) -> dict[str, Any]:
    data: dict[str, Any] = dict(parse_qsl(request.query.decode("ascii", "replace")))
    if request.body:
        parsed = json.loads(request.body)
        if not isinstance(parsed, dict):
            raise ValueError("body must be a JSON object")
        data.update(parsed)
    return data


def _accounts(sim: Simulator, body: dict[str, Any]) -> Any:
    per_10s, per_minute = _order_limits(sim, body)
    balance = body.get("balance")
    api_key, api_secret = sim.create_account(None if balance is None else Decimal(str(balance)))
    sim.set_order_limits(api_key, per_10s=per_10s, per_minute=per_minute)
    return {"api_key": api_key, "api_secret": api_secret}


def _order_limits(sim: Simulator, body: dict[str, Any]) -> tuple[int, int]:
    """The requested ``(per 10 s, per minute)`` limits. ValueError: not whole numbers >= 1."""
    defaults = sim.limiter.limits
    limits = (
        body.get("orders_per_10s", defaults.orders_per_10s),
        body.get("orders_per_minute", defaults.orders_per_minute),
    )
    if not all(type(n) is int and n >= 1 for n in limits):
        raise ValueError(f"order limits must be whole numbers >= 1, not {limits}")
    return limits[0], limits[1]


def _get_price(sim: Simulator, body: dict[str, Any]) -> Any:
    symbol = str(body["symbol"])
    spec = sim.specs[symbol]
    return {"symbol": symbol, "price": spec.fmt_price(sim.mark(symbol))}


def _set_price(sim: Simulator, body: dict[str, Any]) -> Any:
    sim.set_price(str(body["symbol"]), Decimal(str(body["price"])))
    return _get_price(sim, body)


def _fill(sim: Simulator, body: dict[str, Any]) -> Any:
    quantity = body.get("quantity")
    sim.fill(
        str(body["symbol"]),
        int(body["orderId"]),
        None if quantity is None else Decimal(str(quantity)),
    )
    return {}


def _inject(sim: Simulator, body: dict[str, Any]) -> Any:
    count = body.get("count", 1)
    sim.inject(
        Fault.parse(str(body["kind"]), float(body.get("seconds", 0.0))),
        path=body.get("path"),
        account=body.get("account"),
        count=None if count is None else int(count),
    )
    return {}


def _clear(sim: Simulator, body: dict[str, Any]) -> Any:
    sim.clear_faults()
    return {}


def _orders(sim: Simulator, body: dict[str, Any]) -> Any:
    return [_plain(order) for order in sim.orders(str(body["api_key"]))]


def _trades(sim: Simulator, body: dict[str, Any]) -> Any:
    order_id = body.get("orderId")
    trades = sim.trades(
        str(body["api_key"]),
        symbol=body.get("symbol"),
        order_id=None if order_id is None else int(order_id),
    )
    return [_plain(trade) for trade in trades]


def _matches(sim: Simulator, body: dict[str, Any]) -> Any:
    return [_plain(match) for match in sim.matches()]


def _plain(record: Any) -> dict[str, Any]:
    """A dataclass as JSON: Decimals as strings."""
    return {
        k: str(v) if isinstance(v, Decimal) else v for k, v in dataclasses.asdict(record).items()
    }


def _account(sim: Simulator, body: dict[str, Any]) -> Any:
    return _jsonable(dataclasses.asdict(sim.account_view(str(body["api_key"]))))


def _jsonable(value: Any) -> Any:
    """Decimals as strings, all the way down."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def _statistics(sim: Simulator, body: dict[str, Any]) -> Any:
    return dataclasses.asdict(sim.statistics())


_ADMIN = {
    ("POST", "accounts"): _accounts,
    ("GET", "price"): _get_price,
    ("POST", "price"): _set_price,
    ("POST", "fill"): _fill,
    ("POST", "faults"): _inject,
    ("DELETE", "faults"): _clear,
    ("GET", "orders"): _orders,
    ("GET", "account"): _account,
    ("GET", "trades"): _trades,
    ("GET", "matches"): _matches,
    ("GET", "statistics"): _statistics,
}
