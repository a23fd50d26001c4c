"""``AccountClient``: one account's view of the exchange, the only object holding its keys.

Made by :meth:`tradercoin.exchange.client.BinanceFutures.for_account`; every request goes
through the shared client (pool, time offset, usage reports). Implements
:class:`~tradercoin.exchange.protocol.ExchangeClient`.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from tradercoin.exchange import account_data as acct
from tradercoin.exchange import parsing
from tradercoin.exchange.protocol import OrderCounts, PlaceOrder, SymbolInfo, Usage
from tradercoin.exchange.signing import Signer, encode_query
from tradercoin.orders import ExchangeUpdate, Fill

if TYPE_CHECKING:
    from tradercoin.exchange.client import BinanceFutures

__all__ = ["AccountClient"]

T = TypeVar("T")


def _decimal_text(value: Decimal) -> str:
    return format(value, "f")


def _id_params(order_id: int | None, client_order_id: str | None) -> list[tuple[str, str]]:
    params = []
    if order_id is not None:
        params.append(("orderId", str(order_id)))
    if client_order_id is not None:
        params.append(("origClientOrderId", client_order_id))
    return params


def _order_params(order: PlaceOrder) -> list[tuple[str, str]]:
    params = [
        ("symbol", order.symbol),
        ("side", order.side.value),
        ("type", order.type.value),
        ("quantity", _decimal_text(order.quantity)),
        ("newClientOrderId", order.client_order_id),
    ]
    if order.price is not None:
        params.append(("price", _decimal_text(order.price)))
    if order.time_in_force is not None:
        params.append(("timeInForce", order.time_in_force.value))
    if order.reduce_only:  # Binance: "true" or "false", default "false"; sent only when set
        params.append(("reduceOnly", "true"))
    return params


def _any(payload: Any) -> Any:
    return payload


def _order_list(payload: Any) -> list[ExchangeUpdate]:
    return [parsing.update_from_order(o) for o in parsing.listed(payload)]


def _trade_list(payload: Any) -> list[Fill]:
    return [parsing.fill_from_trade(t) for t in parsing.listed(payload)]


def _listen_key_of(payload: Any) -> str:
    return parsing.text(payload, "listenKey")


def _optional(**values: int | None) -> list[tuple[str, str]]:
    return [(k, str(v)) for k, v in values.items() if v is not None]


class AccountClient:
    """One account's :class:`~tradercoin.exchange.protocol.ExchangeClient` (keys inside)."""

    __slots__ = ("_api_key", "_exchange", "_order_counts", "_signer")

    def __init__(self, exchange: BinanceFutures, api_key: str, signer: Signer) -> None:
        self._exchange = exchange
        self._api_key = api_key
        self._signer = signer
        self._order_counts: OrderCounts | None = None

    def order_counts(self) -> OrderCounts | None:
        """The account's new-order counts from the last answer that stated them."""
        return self._order_counts

    def _observe(self, usage: Usage) -> None:
        if usage.order_count_10s is not None or usage.order_count_1m is not None:
            self._order_counts = OrderCounts(
                usage.order_count_10s, usage.order_count_1m, self._exchange.timestamp()
            )

    def __repr__(self) -> str:
        return f"AccountClient(api_key=...{self._api_key[-4:]})"

    @property
    def exchange(self) -> BinanceFutures:
        return self._exchange

    async def _signed(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]],
        parse: Callable[[Any], T],
        weight: int,
        write: bool = False,
    ) -> T:
        return await self._exchange.signed(
            method,
            path,
            params,
            parse,
            api_key=self._api_key,
            signer=self._signer,
            weight=weight,
            write=write,
            observe=self._observe,
        )

    async def _order(
        self, method: str, params: list[tuple[str, str]], weight: int, write: bool = False
    ) -> ExchangeUpdate:
        return await self._signed(
            method, "/fapi/v1/order", params, parsing.update_from_order, weight, write
        )

    async def _orders(
        self, path: str, params: list[tuple[str, str]], weight: int
    ) -> list[ExchangeUpdate]:
        return await self._signed("GET", path, params, _order_list, weight)

    async def place_order(self, order: PlaceOrder) -> ExchangeUpdate:
        """``POST /fapi/v1/order`` (ACK: ``NEW`` whatever happens next; nothing may take it as
        final). A timeout or a 5xx -> UnknownOutcome; -1015 -> OrderRateLimited."""
        return await self._order("POST", _order_params(order), 0, write=True)

    async def get_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> ExchangeUpdate:
        """``GET /fapi/v1/order`` by exchange id or client id. -2013 -> OrderNotFound."""
        return await self._order(
            "GET", [("symbol", symbol), *_id_params(order_id, client_order_id)], 1
        )

    async def cancel_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> ExchangeUpdate:
        """``DELETE /fapi/v1/order``. -2011 (not open) -> OrderNotFound."""
        params = [("symbol", symbol), *_id_params(order_id, client_order_id)]
        return await self._order("DELETE", params, 1, write=True)

    async def cancel_all_orders(self, symbol: str) -> None:
        """``DELETE /fapi/v1/allOpenOrders`` (weight 1): every open order of ``symbol``.
        Binance answers ``{"code": 200, "msg": ...}``; the orders' new states come by query
        or stream. A 5xx or timeout -> UnknownOutcome."""
        await self._signed("DELETE", "/fapi/v1/allOpenOrders", [("symbol", symbol)], _any, 1, True)

    async def account(self) -> acct.AccountSummary:
        """``GET /fapi/v3/account`` (weight 5): totals and the positions' margins."""
        return await self._signed("GET", "/fapi/v3/account", [], acct.account_summary, 5)

    async def balances(self) -> list[acct.Balance]:
        """``GET /fapi/v3/balance`` (weight 5): one row per asset."""
        return await self._signed("GET", "/fapi/v3/balance", [], acct.balances, 5)

    async def position_risk(self, symbol: str | None = None) -> list[acct.Position]:
        """``GET /fapi/v3/positionRisk`` (weight 5): positions with mark and liquidation."""
        params = [] if symbol is None else [("symbol", symbol)]
        return await self._signed("GET", "/fapi/v3/positionRisk", params, acct.positions, 5)

    async def leverage_brackets(
        self, symbol: str | None = None
    ) -> dict[str, tuple[acct.Bracket, ...]]:
        """``GET /fapi/v1/leverageBracket`` (weight 1): notional brackets per symbol."""
        params = [] if symbol is None else [("symbol", symbol)]
        return await self._signed(
            "GET", "/fapi/v1/leverageBracket", params, acct.leverage_brackets, 1
        )

    async def change_leverage(self, symbol: str, leverage: int) -> acct.LeverageChange:
        """``POST /fapi/v1/leverage`` (weight 1): the initial leverage of ``symbol``."""
        params = [("symbol", symbol), ("leverage", str(leverage))]
        return await self._signed(
            "POST", "/fapi/v1/leverage", params, acct.leverage_change, 1, True
        )

    async def open_orders(self, symbol: str | None = None) -> list[ExchangeUpdate]:
        """``GET /fapi/v1/openOrders`` for one symbol (weight 1) or all (weight 40)."""
        params = [] if symbol is None else [("symbol", symbol)]
        return await self._orders("/fapi/v1/openOrders", params, 40 if symbol is None else 1)

    async def all_orders(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        start_time: int | None = None,
        end_time: int | None = None,
        limit: int | None = None,
    ) -> list[ExchangeUpdate]:
        """``GET /fapi/v1/allOrders`` (weight 5): orders with id >= ``order_id``, <= 7 days."""
        params = [
            ("symbol", symbol),
            *_optional(orderId=order_id, startTime=start_time, endTime=end_time, limit=limit),
        ]
        return await self._orders("/fapi/v1/allOrders", params, 5)

    async def user_trades(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        from_id: int | None = None,
        start_time: int | None = None,
        limit: int | None = None,
    ) -> list[Fill]:
        """``GET /fapi/v1/userTrades`` (weight 5) as fills."""
        params = [
            ("symbol", symbol),
            *_optional(orderId=order_id, fromId=from_id, startTime=start_time, limit=limit),
        ]
        return await self._signed("GET", "/fapi/v1/userTrades", params, _trade_list, 5)

    async def server_time(self) -> int:
        return await self._exchange.server_time()

    async def exchange_info(self) -> list[SymbolInfo]:
        return await self._exchange.exchange_info()

    async def _listen_key(self, method: str, query: str, parse: Callable[[Any], T]) -> T:
        return await self._exchange.request(
            method, "/fapi/v1/listenKey", query, parse, weight=1, api_key=self._api_key
        )

    async def create_listen_key(self) -> str:
        """``POST /fapi/v1/listenKey``: the account's key (the same one while it is active)."""
        return await self._listen_key("POST", "", _listen_key_of)

    async def keepalive_listen_key(self, listen_key: str) -> None:
        """``PUT /fapi/v1/listenKey``: extend by 60 min. Expired/unknown -> InvalidRequest
        with ``code == -1125`` (recreate with :meth:`create_listen_key`)."""
        await self._listen_key("PUT", encode_query([("listenKey", listen_key)]), _any)

    async def close_listen_key(self, listen_key: str) -> None:
        """``DELETE /fapi/v1/listenKey``: the stream stops."""
        await self._listen_key("DELETE", encode_query([("listenKey", listen_key)]), _any)
