"""``/sim/admin/...``: the simulator's unauthenticated control routes (JSON in, JSON out).

- ``POST /sim/admin/accounts`` -> ``{"api_key", "api_secret"}``
- ``GET|POST /sim/admin/price`` ``{"symbol", "price"?}`` -> ``{"symbol", "price"}``
- ``POST /sim/admin/fill`` ``{"symbol", "orderId", "quantity"?}``
- ``POST /sim/admin/faults`` ``{"kind", "seconds"?, "path"?, "account"?, "count"?}``;
  ``DELETE /sim/admin/faults`` clears them
- ``GET /sim/admin/orders?api_key=...``, ``GET /sim/admin/statistics`` (with
  ``connection_rules``: connections open, handshakes per IP in the 5-minute window and the
  most ever, refusals 429/418, bans, connections closed for >10 messages/s, streams per
  connection)
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
    api_key, api_secret = sim.create_account()
    return {"api_key": api_key, "api_secret": api_secret}


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
    return [
        {k: str(v) if isinstance(v, Decimal) else v for k, v in dataclasses.asdict(o).items()}
        for o in sim.orders(str(body["api_key"]))
    ]


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
    ("GET", "statistics"): _statistics,
}
