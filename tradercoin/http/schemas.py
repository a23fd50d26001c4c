"""Request bodies and query strings: strict pydantic models, and the one way bodies are read.

Bodies are parsed with :func:`json.loads` (``parse_float=Decimal``, so money is exact), then
validated strictly: unknown fields, wrong types and malformed decimals are refused with a 400
that names the field. Models double as the OpenAPI schema (quart-schema).
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema
from quart import request

from tradercoin.config import ConfigError, parse_duration
from tradercoin.http.errors import ApiError, validation_error

__all__ = [
    "CredentialsBody",
    "DecimalIn",
    "LeverageBody",
    "LoginBody",
    "OrdersQuery",
    "PlaceOrderBody",
    "PollPolicyBody",
    "RegisterBody",
    "read_body",
]

_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
MAX_DECIMALS = 8
CLIENT_ORDER_ID = r"^[.A-Z:/a-z0-9_-]{1,36}$"  # Binance's newClientOrderId


def _to_decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | Decimal):
        raise ValueError('must be a decimal number or string, e.g. "0.01"')
    if isinstance(value, str) and not _DECIMAL.match(value.strip()):
        raise ValueError('must be a decimal number or string, e.g. "0.01"')
    result = Decimal(value.strip()) if isinstance(value, str) else Decimal(value)
    if not result.is_finite():
        raise ValueError("must be finite")
    return result


DecimalIn = Annotated[
    Decimal,
    BeforeValidator(_to_decimal),
    WithJsonSchema({"type": "string", "pattern": r"^\d+(\.\d+)?$", "example": "0.01"}),
]


def _to_seconds(value: Any) -> float:
    if isinstance(value, str):
        try:
            return parse_duration(value)
        except ConfigError as error:
            raise ValueError(str(error)) from None
    return float(_to_decimal(value))


Seconds = Annotated[
    float,
    BeforeValidator(_to_seconds),
    WithJsonSchema({"oneOf": [{"type": "number"}, {"type": "string", "example": "2s"}]}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class LoginBody(_Strict):
    """Log in (usernames as ``tradercoin users add`` accepts them)."""

    username: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=1, max_length=128)


class RegisterBody(_Strict):
    """Create an account: a username of 3-64 letters, digits or ``. _ @ -``."""

    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")
    password: str = Field(min_length=8, max_length=128)
    invite: str | None = Field(
        default=None, max_length=64, description="with --registration invite"
    )


class PlaceOrderBody(_Strict):
    """A new order. ``price`` and ``time_in_force`` (default GTC) are for LIMIT orders only;
    ``reduce_only`` for either type."""

    symbol: str = Field(min_length=2, max_length=20, pattern=r"^[A-Za-z0-9]+$")
    side: Literal["BUY", "SELL"]
    type: Literal["MARKET", "LIMIT"]
    quantity: DecimalIn
    price: DecimalIn | None = None
    time_in_force: Literal["GTC", "IOC", "FOK", "GTX"] | None = None
    reduce_only: bool = Field(
        default=False,
        description="only reduce the position (refused by the exchange if it would grow it)",
    )
    client_order_id: str | None = Field(
        default=None,
        pattern=CLIENT_ORDER_ID,
        description=(
            "your id for this order (1-36 of A-Z a-z 0-9 . : / _ -, as Binance's "
            "newClientOrderId): placing again with an id you already used answers with that "
            "order instead of placing a second one, so a retry after a lost answer is safe; "
            "without it, one is made for you"
        ),
        examples=["my-order-42"],
    )


class LeverageBody(_Strict):
    """The initial leverage of one symbol at the exchange (1 to the symbol's maximum, at most
    125; the exchange refuses more than its brackets allow)."""

    symbol: str = Field(min_length=2, max_length=20, pattern=r"^[A-Za-z0-9]+$")
    leverage: int = Field(ge=1, le=125)


class CredentialsBody(_Strict):
    """The user's exchange keys (write-only: never shown again but for the last 4)."""

    api_key: str = Field(min_length=8, max_length=256, pattern=r"^[\x21-\x7e]+$")
    api_secret: str = Field(min_length=8, max_length=4096)
    testnet: bool = False


class PollPolicyBody(_Strict):
    """A user's poll policy; omitted fields keep their current value. Durations in seconds."""

    interval: Seconds | None = Field(default=None, gt=0, le=3600)
    fast_interval: Seconds | None = Field(default=None, gt=0, le=3600)
    fast_notional: DecimalIn | None = Field(default=None, ge=0)
    reconcile_interval: Seconds | None = Field(default=None, gt=0, le=86400)


class OrdersQuery(BaseModel):
    """``GET /api/orders`` query string (documentation; parsed by the route itself)."""

    page: int = Field(default=1, ge=1)
    page_size: int = Field(default=20, ge=1, le=100)
    status: str | None = Field(default=None, description="one status, e.g. filled")
    symbol: str | None = None
    q: str | None = Field(default=None, max_length=64, description="search text")
    side: Literal["BUY", "SELL"] | None = None
    from_: int | None = Field(
        default=None,
        alias="from",
        ge=0,
        description="orders created at or after this time (epoch milliseconds, digits only)",
    )
    to: int | None = Field(
        default=None, ge=0, description="orders created before this time (epoch milliseconds)"
    )


M = TypeVar("M", bound=BaseModel)


class DuplicateKey(ValueError):
    """A JSON object names one key twice (which of the values counts is ambiguous)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:40]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise DuplicateKey(key)
        result[key] = value
    return result


async def read_body(model: type[M]) -> M:
    """Parse the request's JSON body into ``model``.

    Error handling: a non-JSON content type is a 415, a malformed or non-object body a 400
    ``malformed_json``, a body that breaks the model a 400 ``invalid_request`` naming the
    fields (an oversized body was refused earlier with a 413).
    """
    if not request.is_json:
        raise ApiError(415, "unsupported_media_type", "send the body as application/json")
    raw = await request.get_data()
    try:
        data = json.loads(raw, parse_float=Decimal, object_pairs_hook=_unique_keys)
    except DuplicateKey as error:
        raise ApiError(400, "duplicate_key", f"the body names {error.key!r} twice") from None
    except (ValueError, RecursionError):  # not UTF-8; nested too deeply (RecursionError)
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "the body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise validation_error(error) from None
