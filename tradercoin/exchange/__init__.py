"""The exchange: a trio-native Binance USDⓈ-M futures client and its user-data stream.

``client`` (REST over one shared httpx pool), ``signing``, ``parsing`` (payloads -> domain),
``stream`` (the user-data-stream reader), ``protocol`` and ``errors`` (what the actors see).
"""

from tradercoin.exchange.client import AccountClient, BinanceFutures, http_client
from tradercoin.exchange.errors import (
    ExchangeError,
    InvalidCredentials,
    InvalidRequest,
    IPBanned,
    OrderNotFound,
    RateLimited,
    Unavailable,
    UnknownOutcome,
)
from tradercoin.exchange.protocol import (
    Credentials,
    ExchangeClient,
    PlaceOrder,
    SymbolInfo,
    Usage,
    UsageCallback,
)

__all__ = [
    "AccountClient",
    "BinanceFutures",
    "Credentials",
    "ExchangeClient",
    "ExchangeError",
    "IPBanned",
    "InvalidCredentials",
    "InvalidRequest",
    "OrderNotFound",
    "PlaceOrder",
    "RateLimited",
    "SymbolInfo",
    "Unavailable",
    "UnknownOutcome",
    "Usage",
    "UsageCallback",
    "http_client",
]
