"""The trader's account and market context: balances and positions (through the user's
actor, which holds the keys), and the latest mark prices (from the process-wide feed)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from quart import Quart, Response, request
from quart_schema import document_request, tag

from tradercoin.actors.messages import ActorUnavailable, NoExchangeKeys, OrderRejected
from tradercoin.http.auth import authenticate
from tradercoin.http.context import context
from tradercoin.http.errors import ApiError, json_response
from tradercoin.http.orders import unavailable
from tradercoin.http.schemas import LeverageBody, read_body

__all__ = ["register_routes"]

ACCOUNT_TIMEOUT = 20.0
MAX_SYMBOLS = 20


@tag(["account"])
async def get_account() -> Response:
    """Balances (wallet, available, unrealized PnL) and open positions, read from the
    exchange now; kept current on the page by ``{"type": "account"}`` on ``/ws``."""
    user = await authenticate()
    data = await _ask_actor(user.id, lambda actor: actor.get_account(), "to see your account")
    return json_response({"status": "success", "data": data})


@tag(["account"])
@document_request(LeverageBody)
async def put_leverage() -> Response:
    """Set a symbol's initial leverage at the exchange, through the user's actor (which holds
    the keys): ``{"symbol", "leverage", "max_notional_value"}`` as the exchange answered.
    A refusal (leverage above the symbol's maximum, a position too large for it) is a 400
    with the exchange's reason."""
    user = await authenticate()
    body = await read_body(LeverageBody)
    symbol = body.symbol.upper()
    if symbol not in context().symbols:
        raise ApiError(400, "invalid_symbol", f"{symbol} is not a symbol you can trade.")

    def change(actor: Any) -> Awaitable[dict[str, Any]]:
        return actor.change_leverage(symbol, body.leverage)  # type: ignore[no-any-return]

    try:
        data = await _ask_actor(user.id, change, "to change leverage")
    except OrderRejected as error:
        raise ApiError(
            400, "leverage_rejected", f"The exchange refused the leverage: {error.message}"
        ) from None
    return json_response({"status": "success", "data": data})


async def _ask_actor(user_id: int, ask: Callable[[Any], Awaitable[Any]], purpose: str) -> Any:
    """Ask the user's actor (its handle: here, or the owning instance's), waiting at most
    :data:`ACCOUNT_TIMEOUT`.

    Raises:
        ApiError: 409 without exchange keys, 503 when the actor cannot take it, 504 when the
            exchange is too slow.
        OrderRejected: as the actor answered it.
    """
    ctx = context()
    handle = ctx.supervisor.actor(user_id) if ctx.supervisor is not None else None
    no_keys = ApiError(409, "no_exchange_keys", f"Store your exchange keys first {purpose}.")
    if handle is None:
        raise no_keys
    try:
        with trio.fail_after(ACCOUNT_TIMEOUT):
            return await ask(handle)
    except NoExchangeKeys:
        raise no_keys from None
    except ActorUnavailable as error:
        raise unavailable(error) from None
    except trio.TooSlowError:
        raise ApiError(504, "timeout", "The exchange did not answer in time.") from None


@tag(["market"])
async def get_prices() -> Response:
    """The latest mark price of each symbol in ``symbols`` (comma-separated), ``null`` when
    none was read yet. Live prices come over ``/ws`` (``{"type": "subscribe", "prices"}``)."""
    await authenticate()
    ctx = context()
    names = [s for s in request.args.get("symbols", "").upper().split(",") if s]
    if len(names) > MAX_SYMBOLS:
        raise ApiError(400, "invalid_query", "Ask for at most 20 symbols at once.")
    data = {}
    for name in names:
        mark = ctx.prices.latest(name) if ctx.prices is not None else None
        data[name] = None if mark is None else format(mark.mark_price, "f")
    return json_response({"status": "success", "data": data})


def register_routes(app: Quart) -> None:
    app.add_url_rule("/api/account", view_func=get_account, methods=["GET"])
    app.add_url_rule("/api/prices", view_func=get_prices, methods=["GET"])
    app.add_url_rule("/api/leverage", view_func=put_leverage, methods=["PUT"])
