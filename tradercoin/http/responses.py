"""The documented responses of every operation in ``/openapi.json``: status codes and JSON
Schemas of the bodies (checked by schemathesis in tests/reliability/test_schema_fuzz.py).

quart-schema documents request bodies from the routes' decorators; the responses are listed
here in one table and added by :class:`DocumentedResponses`, the app's OpenAPI provider.
"""

from __future__ import annotations

from typing import Any

from quart_schema.openapi import OpenAPIProvider

__all__ = ["RESPONSES", "DocumentedResponses"]

_STR = {"type": "string"}
_INT = {"type": "integer"}
_NUM = {"type": "number"}
_BOOL = {"type": "boolean"}
_DEC = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(**props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": list(props)}


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


ERROR = _object(status={"const": "error"}, error=_object(code=_STR, message=_STR))
USER = _object(id=_INT, username=_STR, role={"enum": ["user", "operator"]})
ORDER = _object(
    order_id=_INT,
    timestamp=_INT,
    id=_INT,
    symbol=_STR,
    side={"enum": ["BUY", "SELL"]},
    type={"enum": ["MARKET", "LIMIT"]},
    status={
        "enum": ["pending", "new", "partially_filled", "filled", "canceled", "expired", "rejected"]
    },
    quantity=_DEC,
    price=_nullable(_DEC),
    filled_quantity=_DEC,
    avg_price=_nullable(_DEC),
    time_in_force=_nullable({"enum": ["GTC", "IOC", "FOK", "GTX"]}),
    client_order_id=_STR,
    exchange_order_id=_nullable(_INT),
    created_at=_INT,
    updated_at=_INT,
    exchange_update_time=_nullable(_INT),
    note=_nullable(_STR),
    reduce_only=_BOOL,
)
FILL = _object(
    trade_id=_INT,
    price=_DEC,
    quantity=_DEC,
    commission=_DEC,
    commission_asset=_STR,
    realized_pnl=_DEC,
    maker=_BOOL,
    time=_INT,
)
SYMBOL = _object(
    symbol=_STR,
    tick_size=_DEC,
    step_size=_DEC,
    min_qty=_DEC,
    max_qty=_DEC,
    min_notional=_DEC,
    price_precision=_INT,
    quantity_precision=_INT,
)
CREDENTIALS = _nullable(
    _object(key_last4=_STR, testnet=_BOOL, created_at=_INT, rotated_at=_nullable(_INT))
)
ACCOUNT = _object(
    totals=_object(
        wallet_balance=_DEC, unrealized_pnl=_DEC, margin_balance=_DEC, available_balance=_DEC
    ),
    balances=_list({"type": "object"}),
    positions=_list({"type": "object"}),
    time=_INT,
)
POLICY = _object(interval=_NUM, fast_interval=_NUM, fast_notional=_DEC, reconcile_interval=_NUM)


def _success(data: dict[str, Any] | None = None, **extra: dict[str, Any]) -> dict[str, Any]:
    props: dict[str, Any] = {"status": {"const": "success"}, **extra}
    if data is not None:
        props["data"] = data
    return _object(**props)


SESSION = _success(USER, token=_STR)
ORDERS_PAGE = _success(_list(ORDER), total=_INT, page=_INT, page_size=_INT)

#: the client errors any /api operation may answer (bad input, auth, origin, size, type)
_API_ERRORS = (400, 401, 403, 404, 408, 409, 413, 415, 429)

#: (method, path) -> {status: body schema} of the successful answers
RESPONSES: dict[tuple[str, str], dict[int, dict[str, Any]]] = {
    ("POST", "/api/auth/register"): {201: SESSION, 503: ERROR},
    ("POST", "/api/auth/login"): {200: SESSION},
    ("POST", "/api/auth/logout"): {200: _success()},
    ("GET", "/api/auth/me"): {200: _success(USER)},
    ("GET", "/api/credentials"): {200: _success(CREDENTIALS)},
    ("PUT", "/api/credentials"): {200: _success(CREDENTIALS)},
    ("DELETE", "/api/credentials"): {200: _success(CREDENTIALS)},
    ("GET", "/api/orders"): {200: ORDERS_PAGE},
    ("POST", "/api/orders"): {201: _success(ORDER), 200: _success(ORDER)},
    ("GET", "/api/orders/{order_id}"): {200: _success(ORDER)},
    ("DELETE", "/api/orders/{order_id}"): {200: _success(ORDER)},
    ("DELETE", "/api/orders"): {200: _success(_object(symbol=_STR, canceled=_INT))},
    ("GET", "/api/orders/{order_id}/fills"): {200: _success(_list(FILL))},
    ("GET", "/api/symbols"): {200: _success(_list(SYMBOL))},
    ("GET", "/api/account"): {200: _success(ACCOUNT)},
    ("GET", "/api/prices"): {200: _success({"type": "object"})},
    ("PUT", "/api/leverage"): {
        200: _success(_object(symbol=_STR, leverage=_INT, max_notional_value=_DEC)),
        503: ERROR,
        504: ERROR,
    },
    ("GET", "/api/admin/actors"): {
        200: _success(_list({"type": "object"}), statistics={"type": "object"})
    },
    ("GET", "/api/admin/governor"): {200: _success({"type": "object"})},
    ("GET", "/api/admin/streams"): {200: _success({"type": "object"})},
    ("GET", "/api/admin/cluster"): {200: _success({"type": "object"})},
    ("GET", "/api/admin/users/{user_id}/poll-policy"): {200: _success(POLICY)},
    ("PUT", "/api/admin/users/{user_id}/poll-policy"): {200: _success(POLICY)},
    ("GET", "/healthz"): {200: _object(status={"const": "ok"})},
    ("GET", "/readyz"): {200: _object(status={"const": "ready"}), 503: ERROR},
}


def _responses(method: str, path: str) -> dict[str, Any] | None:
    answers = RESPONSES.get((method, path))
    if answers is None:
        return None
    schemas = dict(answers)
    if path.startswith("/api/"):
        schemas.update({status: ERROR for status in _API_ERRORS})
    return {
        str(status): {
            "description": "success" if status < 300 else "error",
            "content": {"application/json": {"schema": schema}},
        }
        for status, schema in sorted(schemas.items())
    }


class DocumentedResponses(OpenAPIProvider):
    """quart-schema's provider, with :data:`RESPONSES` added to each operation."""

    def schema(self) -> dict[str, Any]:
        document: dict[str, Any] = super().schema()
        for path, operations in document.get("paths", {}).items():
            for method, operation in operations.items():
                responses = _responses(method.upper(), path)
                if responses is not None:
                    operation["responses"] = responses
        return document
