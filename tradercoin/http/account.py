"""The trader's account and market context: balances and positions (through the user's
actor, which holds the keys), and the latest mark prices (from the process-wide feed)."""

from __future__ import annotations

import trio
from quart import Quart, Response, request
from quart_schema import tag

from tradercoin.actors.messages import ActorUnavailable, GetAccount, ask
from tradercoin.http.auth import authenticate
from tradercoin.http.context import context
from tradercoin.http.errors import ApiError, json_response

__all__ = ["register_routes"]

ACCOUNT_TIMEOUT = 20.0
MAX_SYMBOLS = 20


@tag(["account"])
async def get_account() -> Response:
    """Balances (wallet, available, unrealized PnL) and open positions, read from the
    exchange now; kept current on the page by ``{"type": "account"}`` on ``/ws``."""
    user = await authenticate()
    ctx = context()
    handle = ctx.supervisor.actor(user.id) if ctx.supervisor is not None else None
    if handle is None:
        raise ApiError(
            409, "no_exchange_keys", "Store your exchange keys first to see your account."
        )
    try:
        with trio.fail_after(ACCOUNT_TIMEOUT):
            data = await ask(handle.mailbox, GetAccount)
    except ActorUnavailable as error:
        raise ApiError(503, "unavailable", error.reason, headers={"Retry-After": "2"}) from None
    except trio.TooSlowError:
        raise ApiError(504, "timeout", "The exchange did not answer in time.") from None
    return json_response({"status": "success", "data": data})


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
