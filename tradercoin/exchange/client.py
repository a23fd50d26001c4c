"""``BinanceFutures``: a trio-native Binance USDⓈ-M futures REST client over one shared pool.

Shape
-----
One :class:`BinanceFutures` per process holds the ``httpx.AsyncClient`` (its connection pool is
shared by every user), the server-time offset and the usage callback. Each user gets an
:class:`AccountClient` from :meth:`BinanceFutures.for_account`: the only object that holds that
user's keys; it implements :class:`~tradercoin.exchange.protocol.ExchangeClient`.

Base URLs
---------
The REST base is the explicit ``rest_url`` argument (default: live). Use
:meth:`BinanceFutures.live`, :meth:`BinanceFutures.testnet`, or pass any URL, e.g. the
simulator's ``SimAddress.rest_url``; for the in-process simulator give the http client an
``httpx.ASGITransport(app=sim.asgi_app)`` and any ``rest_url`` (``"http://sim"``). The
``http`` client's own ``base_url`` is not used. ``ws_url`` is kept beside it for the stream.

Errors, retries and timeouts
----------------------------
Every method raises only :class:`~tradercoin.exchange.errors.ExchangeError` subclasses (see
:func:`error_from_response`) and hides no retries, with one exception: a signed request refused
with ``-1021`` (timestamp outside recvWindow) resyncs the server-time offset and is sent once
more. That is safe: ``-1021`` is checked before anything is done, so the first attempt cannot
have had an effect, and the retry changes nothing but the timestamp.

Callers bound a call with ``trio.fail_after``. Transport timeouts belong to the ``httpx``
client (see :func:`http_client`): a ``TimeoutException`` or a dropped connection on a write
(placing or cancelling an order) after the request may have left raises
:class:`~tradercoin.exchange.errors.UnknownOutcome`; on reads, and when the connection could
not even be made, :class:`~tradercoin.exchange.errors.Unavailable`. A caller's own
``fail_after`` expiring around a write leaves the outcome just as unknown: resolve it by
querying the client order id.

Signing
-------
Parameters are percent-encoded (UTF-8, nothing left unescaped but ``A-Za-z0-9-._~``) into
the query string for every method, then signed over exactly those bytes; the signature is the
last parameter. No body is sent, so ``query + body`` is the query.
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, TypeVar
from urllib.parse import quote

import httpx
import trio

from tradercoin.clock import WallClock
from tradercoin.config import EXCHANGE_URLS
from tradercoin.exchange import account as acct
from tradercoin.exchange import parsing
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
    AccountView,
    Credentials,
    ExchangeClient,
    PlaceOrder,
    SymbolInfo,
    Usage,
    UsageCallback,
)
from tradercoin.exchange.signing import Signer, signer_for
from tradercoin.orders import ExchangeUpdate, Fill

__all__ = [
    "LIVE_REST_URL",
    "LIVE_WS_URL",
    "TESTNET_REST_URL",
    "TESTNET_WS_URL",
    "AccountClient",
    "BinanceFutures",
    "ClientStatistics",
    "error_from_response",
    "http_client",
]

log = logging.getLogger(__name__)

# One source for the venues' addresses: config.EXCHANGE_URLS (what --exchange accepts).
LIVE_REST_URL, LIVE_WS_URL = EXCHANGE_URLS["binance"]
TESTNET_REST_URL, TESTNET_WS_URL = EXCHANGE_URLS["binance-testnet"]

DEFAULT_RETRY_AFTER: Final = 60.0
DEFAULT_BAN_MS: Final = 120_000  # bans start at 2 minutes

_CREDENTIAL_CODES = frozenset({-2014, -2015, -1022})
_NOT_FOUND_CODES = frozenset({-2013, -2011})
_UNKNOWN_OUTCOME_CODES = frozenset({-1006, -1007})
_UNAVAILABLE_CODES = frozenset({-1001, -1008})
_RATE_CODES = frozenset({-1003, -1015})
_BANNED_UNTIL = re.compile(r"banned until (\d+)")

T = TypeVar("T")


def http_client(
    *,
    timeout: float = 10.0,
    max_connections: int = 16,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The shared pool: HTTP/1.1 keep-alive, ``timeout`` seconds per transport phase.

    Use as ``async with http_client() as http:``; one per process is enough for every user.
    Keep ``max_connections`` >= the ``max_in_flight`` of the :class:`BinanceFutures` on it.
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    return httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)


# --- error mapping --------------------------------------------------------------------------


def _error_body(text: str) -> tuple[int | None, str | None]:
    """``(code, msg)`` of a Binance error body; ``None`` for whatever is absent or odd."""
    try:
        obj = json.loads(text)
    except ValueError:
        return None, None
    if not isinstance(obj, dict):
        return None, None
    code, msg = obj.get("code"), obj.get("msg")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    return code, msg if isinstance(msg, str) else None


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        value = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _banned_until(msg: str) -> int | None:
    match = _BANNED_UNTIL.search(msg)
    return int(match.group(1)) if match else None


def _rate_limited(msg: str, headers: Mapping[str, str], now_ms: int, **kw: Any) -> RateLimited:
    after = _retry_after(headers)
    until = _banned_until(msg)
    if after is None and until is not None:
        after = max(0.0, (until - now_ms) / 1000)
    return RateLimited(msg, retry_after=DEFAULT_RETRY_AFTER if after is None else after, **kw)


def _ip_banned(msg: str, headers: Mapping[str, str], now_ms: int, **kw: Any) -> IPBanned:
    until = _banned_until(msg)
    if until is None:
        after = _retry_after(headers)
        until = now_ms + (DEFAULT_BAN_MS if after is None else int(after * 1000))
    return IPBanned(msg, until=until, **kw)


def _is_unknown_503(status: int, msg: str) -> bool:
    return status == 503 and msg.lower().startswith("unknown error")


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, *, write: bool, now_ms: int
) -> ExchangeError:
    """The typed error for a non-2xx answer; never raises.

    ``write`` says the request placed or cancelled an order: only then can "unknown error"
    (503, -1006, -1007) mean it may have happened (:class:`UnknownOutcome`); on a read those are
    :class:`Unavailable`. ``headers`` must look names up case-insensitively (httpx does).
    """
    text = body.decode("utf-8", "replace")
    code, msg = _error_body(text)
    kw: dict[str, Any] = {"status": status, "code": code}
    if code is None:
        kw["body"] = text
    message = msg if msg is not None else f"HTTP {status}: {text[:200]}"
    if status == 418:
        return _ip_banned(message, headers, now_ms, **kw)
    if status == 429 or code in _RATE_CODES:
        return _rate_limited(message, headers, now_ms, **kw)
    if code in _CREDENTIAL_CODES:
        return InvalidCredentials(message, **kw)
    if code in _NOT_FOUND_CODES:
        return OrderNotFound(message, **kw)
    if code in _UNKNOWN_OUTCOME_CODES or _is_unknown_503(status, msg or ""):
        return (UnknownOutcome if write else Unavailable)(message, **kw)
    if code in _UNAVAILABLE_CODES or status >= 500 or status in (403, 408):
        return Unavailable(message, **kw)
    if code is not None:
        return InvalidRequest(message, **kw)
    return ExchangeError(f"unexpected answer: {message}", **kw)


def _transport_error(exc: httpx.HTTPError, *, write: bool) -> ExchangeError:
    """A request that got no answer. Only the exception's class name is kept (no URL)."""
    name = type(exc).__name__
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    if write and not never_sent:
        return UnknownOutcome(f"no answer to a write ({name}): outcome unknown")
    return Unavailable(f"no answer ({name})")


def _unexpected(response: httpx.Response, why: str, *, write: bool) -> ExchangeError:
    """A 2xx whose body is not what the endpoint documents. On a write it may have worked."""
    text = response.content.decode("utf-8", "replace")
    kind = UnknownOutcome if write else ExchangeError
    return kind(f"unexpected answer: {why}", status=response.status_code, body=text)


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


def _encode(params: list[tuple[str, str]]) -> str:
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in params)


def _num(value: Decimal) -> str:
    return format(value, "f")


# --- the shared client ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientStatistics:
    requests: int
    in_flight: int
    queued: int
    errors: dict[str, int]
    time_offset_ms: int
    time_syncs: int
    resync_retries: int


class BinanceFutures:
    """The process-wide exchange client: the pool, the time offset, the usage reports.

    Holds no keys. Thread-unsafe, trio-only; safe for any number of concurrent tasks.

    At most ``max_in_flight`` requests are inside httpx at once; the others queue, first come
    first served, on a ``trio.CapacityLimiter`` (the wait counts against the caller's
    ``fail_after``). httpx's pool spends CPU per request in proportion to the requests it
    holds: on loopback with 200 callers, 200 in flight cost ~11 ms of CPU per request, 8 cost
    ~1.1 ms and serve more requests per second (bench/exchange.py). 8 requests in flight at
    ~50 ms round trip carry ~160 req/s, four times the exchange's weight budget per IP.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        clock: WallClock,
        on_usage: UsageCallback | None = None,
        recv_window: int = 5000,
        rest_url: str = LIVE_REST_URL,
        ws_url: str = LIVE_WS_URL,
        max_in_flight: int = 8,
    ) -> None:
        self._http = http
        self._in_flight = trio.CapacityLimiter(max_in_flight)
        self._clock = clock
        self._on_usage = on_usage
        self.recv_window = recv_window
        self.rest_url = rest_url.rstrip("/")
        self.ws_url = ws_url.rstrip("/")
        self._offset_ms = 0
        self._time_generation = 0
        self._sync_lock = trio.Lock()
        self._requests = 0
        self._errors: Counter[str] = Counter()
        self._resync_retries = 0

    @classmethod
    def live(cls, http: httpx.AsyncClient, **kw: Any) -> BinanceFutures:
        return cls(http, rest_url=LIVE_REST_URL, ws_url=LIVE_WS_URL, **kw)

    @classmethod
    def testnet(cls, http: httpx.AsyncClient, **kw: Any) -> BinanceFutures:
        return cls(http, rest_url=TESTNET_REST_URL, ws_url=TESTNET_WS_URL, **kw)

    def __repr__(self) -> str:
        return f"BinanceFutures({self.rest_url!r})"

    def for_account(self, creds: Credentials) -> AccountClient:
        """A view that signs with ``creds``; cheap, holds the keys, shares the pool.

        Raises:
            InvalidCredentials: the key is not printable ASCII (it could not be sent as a
                header), or the secret is a PEM block that is not a usable key.
        """
        key = creds.api_key
        if not key or not key.isascii() or not key.isprintable() or key != key.strip():
            raise InvalidCredentials("the API key must be printable ASCII without spaces")
        try:
            signer = signer_for(creds.api_secret)
        except ValueError as exc:
            raise InvalidCredentials(str(exc)) from None
        return AccountClient(self, creds.api_key, signer)

    def statistics(self) -> ClientStatistics:
        return ClientStatistics(
            requests=self._requests,
            in_flight=self._in_flight.borrowed_tokens,
            queued=self._in_flight.statistics().tasks_waiting,
            errors=dict(self._errors),
            time_offset_ms=self._offset_ms,
            time_syncs=self._time_generation,
            resync_retries=self._resync_retries,
        )

    def timestamp(self) -> int:
        """The exchange's idea of now, in epoch ms: our clock plus the synced offset."""
        return self._clock.now_ms() + self._offset_ms

    # --- unsigned endpoints -----------------------------------------------------------------

    async def server_time(self) -> int:
        """``GET /fapi/v1/time``: the server's epoch ms."""
        return await self.request(
            "GET", "/fapi/v1/time", "", lambda p: parsing.integer(p, "serverTime"), weight=1
        )

    async def sync_time(self) -> int:
        """Measure and keep the server-time offset (ms); returns it.

        Waits for one ``GET /fapi/v1/time``; the offset assumes a symmetric round trip.
        """
        before = self._clock.now_ms()
        server = await self.server_time()
        after = self._clock.now_ms()
        self._offset_ms = server - (before + after) // 2
        self._time_generation += 1
        return self._offset_ms

    async def resync_after(self, generation: int) -> None:
        """Resync once for every request that failed with -1021 under ``generation``.

        Concurrent callers that saw the same stale offset share one ``GET /fapi/v1/time``.
        """
        async with self._sync_lock:
            if self._time_generation == generation:
                await self.sync_time()

    async def exchange_info(self) -> list[SymbolInfo]:
        """``GET /fapi/v1/exchangeInfo``: every symbol with its filters."""
        return await self.request(
            "GET", "/fapi/v1/exchangeInfo", "", parsing.symbol_infos, weight=1
        )

    async def mark_prices(self, symbol: str | None = None) -> list[acct.MarkPrice]:
        """``GET /fapi/v1/premiumIndex``: the mark price of one symbol (weight 1) or all (10)."""
        query = "" if symbol is None else _encode([("symbol", symbol)])
        weight = 10 if symbol is None else 1
        return await self.request(
            "GET", "/fapi/v1/premiumIndex", query, acct.mark_prices, weight=weight
        )

    async def ticker_24hr(self, symbol: str) -> acct.Ticker:
        """``GET /fapi/v1/ticker/24hr`` for one symbol (weight 1)."""
        query = _encode([("symbol", symbol)])
        return await self.request("GET", "/fapi/v1/ticker/24hr", query, acct.ticker, weight=1)

    async def ping(self) -> None:
        await self.request("GET", "/fapi/v1/ping", "", _any, weight=1)

    # --- the one request path ---------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        query: str,
        parse: Callable[[Any], T],
        *,
        weight: int,
        api_key: str | None = None,
        write: bool = False,
    ) -> T:
        """Send one request, report its usage, and return ``parse`` of its decoded JSON.

        ``query`` is sent byte for byte (already encoded and, if needed, signed).

        Raises:
            ExchangeError: a subclass per :func:`error_from_response`, or for a 2xx body that
                is not JSON or that ``parse`` refuses (:class:`UnknownOutcome` on a write).
        """
        url = f"{self.rest_url}{path}?{query}" if query else f"{self.rest_url}{path}"
        headers = {"X-MBX-APIKEY": api_key} if api_key is not None else None
        self._requests += 1
        try:
            async with self._in_flight:
                response = await self._http.request(method, url, headers=headers)
        except httpx.HTTPError as exc:
            raise self._count(_transport_error(exc, write=write)) from None
        self._report_usage(path, weight, response.headers)
        if not response.is_success:
            raise self._count(
                error_from_response(
                    response.status_code,
                    response.headers,
                    response.content,
                    write=write,
                    now_ms=self._clock.now_ms(),
                )
            )
        try:
            payload = json.loads(response.content) if response.content else {}
        except ValueError:
            raise self._count(_unexpected(response, "not JSON", write=write)) from None
        try:
            return parse(payload)
        except (ValueError, TypeError, AttributeError) as exc:  # PayloadError is a ValueError
            raise self._count(_unexpected(response, str(exc), write=write)) from None

    def _count(self, error: ExchangeError) -> ExchangeError:
        self._errors[type(error).__name__] += 1
        return error

    def _report_usage(self, path: str, weight: int, headers: httpx.Headers) -> None:
        if self._on_usage is None:
            return
        self._on_usage(
            Usage(
                path=path,
                weight=weight,
                used_weight_1m=_header_int(headers, "x-mbx-used-weight-1m"),
                order_count_10s=_header_int(headers, "x-mbx-order-count-10s"),
                order_count_1m=_header_int(headers, "x-mbx-order-count-1m"),
            )
        )

    async def signed(
        self,
        method: str,
        path: str,
        params: list[tuple[str, str]],
        parse: Callable[[Any], T],
        *,
        api_key: str,
        signer: Signer,
        weight: int,
        write: bool = False,
    ) -> T:
        """A signed request; on -1021 resyncs the offset and sends it once more (see module)."""
        for attempt in (1, 2):
            generation = self._time_generation
            query = _encode(
                [
                    *params,
                    ("recvWindow", str(self.recv_window)),
                    ("timestamp", str(self.timestamp())),
                ]
            )
            query = f"{query}&signature={signer.sign(query)}"
            try:
                return await self.request(
                    method, path, query, parse, weight=weight, api_key=api_key, write=write
                )
            except InvalidRequest as exc:
                if exc.code != -1021 or attempt == 2:
                    raise
            self._resync_retries += 1
            await self.resync_after(generation)
        raise AssertionError("unreachable")  # pragma: no cover


# --- one account's view ---------------------------------------------------------------------


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
        ("quantity", _num(order.quantity)),
        ("newClientOrderId", order.client_order_id),
    ]
    if order.price is not None:
        params.append(("price", _num(order.price)))
    if order.time_in_force is not None:
        params.append(("timeInForce", order.time_in_force.value))
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

    __slots__ = ("_api_key", "_exchange", "_signer")

    def __init__(self, exchange: BinanceFutures, api_key: str, signer: Signer) -> None:
        self._exchange = exchange
        self._api_key = api_key
        self._signer = signer

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
        """``POST /fapi/v1/order`` (ACK). A timeout or 503 "unknown" -> UnknownOutcome."""
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

    async def cancel_all_open_orders(self, symbol: str) -> None:
        """``DELETE /fapi/v1/allOpenOrders`` (weight 1): every open order of ``symbol``."""
        await self._signed(
            "DELETE",
            "/fapi/v1/allOpenOrders",
            [("symbol", symbol)],
            acct.cancel_all_done,
            1,
            write=True,
        )

    async def account(self) -> acct.AccountSummary:
        """``GET /fapi/v3/account`` (weight 5): totals and the positions' margins."""
        return await self._signed("GET", "/fapi/v3/account", [], acct.account_summary, 5)

    async def balances(self) -> list[acct.Balance]:
        """``GET /fapi/v3/balance`` (weight 5): one row per asset."""
        return await self._signed("GET", "/fapi/v3/balance", [], acct.balances, 5)

    async def position_risk(self, symbol: str | None = None) -> list[acct.Position]:
        """``GET /fapi/v3/positionRisk`` (weight 5): open positions with mark and liquidation."""
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
            "POST", "/fapi/v1/leverage", params, acct.leverage_change, 1, write=True
        )

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
        await self._listen_key("PUT", _encode([("listenKey", listen_key)]), _any)

    async def close_listen_key(self, listen_key: str) -> None:
        """``DELETE /fapi/v1/listenKey``: the stream stops."""
        await self._listen_key("DELETE", _encode([("listenKey", listen_key)]), _any)


if TYPE_CHECKING:  # AccountClient implements the protocol the actors use
    _protocol_check: type[ExchangeClient] = AccountClient
    _account_check: type[AccountView] = AccountClient
