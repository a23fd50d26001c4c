"""What the actors need of an exchange: a small protocol over domain types.

:class:`~tradercoin.exchange.client.BinanceFutures` implements it over HTTP; the simulator is
reached through the same implementation. Every method raises only
:class:`~tradercoin.exchange.errors.ExchangeError` subclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from tradercoin.orders import ExchangeUpdate, Fill, OrderType, Side, TimeInForce

if TYPE_CHECKING:
    from tradercoin.exchange import account_data as acct

__all__ = [
    "AccountView",
    "Credentials",
    "ExchangeClient",
    "OrderCounts",
    "PlaceOrder",
    "SymbolInfo",
    "Usage",
    "UsageCallback",
]


@dataclass(frozen=True, slots=True)
class Credentials:
    """One user's exchange keys, decrypted. ``repr`` never shows them."""

    api_key: str
    api_secret: str

    def __repr__(self) -> str:
        return f"Credentials(api_key=...{self.api_key[-4:]})"


@dataclass(frozen=True, slots=True)
class PlaceOrder:
    symbol: str
    side: Side
    type: OrderType
    quantity: Decimal
    client_order_id: str
    price: Decimal | None = None
    time_in_force: TimeInForce | None = None
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    symbol: str
    status: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    min_notional: Decimal
    price_precision: int
    quantity_precision: int


@dataclass(frozen=True, slots=True)
class Usage:
    """What one response said of the rate limits (``None`` where a header was absent)."""

    path: str
    weight: int
    used_weight_1m: int | None
    order_count_10s: int | None
    order_count_1m: int | None


UsageCallback = Callable[[Usage], None]


@dataclass(frozen=True, slots=True)
class OrderCounts:
    """An account's new-order counts as the exchange last stated them
    (``X-MBX-ORDER-COUNT-10S`` / ``-1M``), at exchange time ``at_ms``."""

    count_10s: int | None
    count_1m: int | None
    at_ms: int


class ExchangeClient(Protocol):
    """One account's view of the exchange."""

    async def place_order(self, order: PlaceOrder) -> ExchangeUpdate: ...

    async def get_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> ExchangeUpdate: ...

    async def open_orders(self, symbol: str | None = None) -> list[ExchangeUpdate]: ...

    async def cancel_order(
        self, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> ExchangeUpdate: ...

    async def user_trades(
        self,
        symbol: str,
        *,
        order_id: int | None = None,
        from_id: int | None = None,
        start_time: int | None = None,
        limit: int | None = None,
    ) -> list[Fill]: ...

    async def cancel_all_orders(self, symbol: str) -> None: ...

    def order_counts(self) -> OrderCounts | None: ...

    async def server_time(self) -> int: ...

    async def exchange_info(self) -> list[SymbolInfo]: ...

    async def create_listen_key(self) -> str: ...

    async def keepalive_listen_key(self, listen_key: str) -> None: ...

    async def close_listen_key(self, listen_key: str) -> None: ...


class AccountView(Protocol):
    """One account's balances, positions and per-symbol settings (the trader's page)."""

    async def account(self) -> acct.AccountSummary: ...

    async def balances(self) -> list[acct.Balance]: ...

    async def position_risk(self, symbol: str | None = None) -> list[acct.Position]: ...

    async def leverage_brackets(
        self, symbol: str | None = None
    ) -> dict[str, tuple[acct.Bracket, ...]]: ...

    async def change_leverage(self, symbol: str, leverage: int) -> acct.LeverageChange: ...
