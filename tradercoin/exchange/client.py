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
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import trio

from tradercoin.clock import WallClock
from tradercoin.config import EXCHANGE_URLS
from tradercoin.exchange import account_data as acct
from tradercoin.exchange import parsing
from tradercoin.exchange.error_map import error_from_response, transport_error, unexpected_answer
from tradercoin.exchange.errors import (
    ExchangeError,
    InvalidCredentials,
    InvalidRequest,
)
from tradercoin.exchange.protocol import (
    AccountView,
    Credentials,
    ExchangeClient,
    SymbolInfo,
    Usage,
    UsageCallback,
)
from tradercoin.exchange.signing import Signer, encode_query, signer_for

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

T = TypeVar("T")


def http_client(
    *,
    timeout: float = 10.0,
    max_connections: int = 16,
    transport: httpx.AsyncBaseTransport | None = None,
    local_address: str | None = None,
) -> httpx.AsyncClient:
    """The shared pool: HTTP/1.1 keep-alive, ``timeout`` seconds per transport phase.

    Use as ``async with http_client() as http:``; one per process is enough for every user.
    Keep ``max_connections`` >= the ``max_in_flight`` of the :class:`BinanceFutures` on it.
    ``local_address`` binds every connection to that local IP (``--egress-address``: the
    exchange then counts this instance's weight apart from other instances').
    """
    limits = httpx.Limits(
        max_connections=max_connections, max_keepalive_connections=max_connections
    )
    if transport is None and local_address is not None:
        transport = httpx.AsyncHTTPTransport(local_address=local_address, limits=limits)
    return httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport)


def _header_int(headers: httpx.Headers, name: str) -> int | None:
    value = headers.get(name)
    return int(value) if value is not None and value.isdigit() else None


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
        query = "" if symbol is None else encode_query([("symbol", symbol)])
        weight = 10 if symbol is None else 1
        return await self.request(
            "GET", "/fapi/v1/premiumIndex", query, acct.mark_prices, weight=weight
        )

    async def ticker_24hr(self, symbol: str) -> acct.Ticker:
        """``GET /fapi/v1/ticker/24hr`` for one symbol (weight 1)."""
        query = encode_query([("symbol", symbol)])
        return await self.request("GET", "/fapi/v1/ticker/24hr", query, acct.ticker, weight=1)

    async def ping(self) -> None:
        await self.request("GET", "/fapi/v1/ping", "", lambda payload: payload, weight=1)

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
        observe: UsageCallback | None = None,
    ) -> T:
        """Send one request, report its usage (to the process's callback and to
        ``observe``), and return ``parse`` of its decoded JSON.

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
            raise self._count(transport_error(exc, write=write)) from None
        self._report_usage(path, weight, response.headers, observe)
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
            raise self._count(unexpected_answer(response, "not JSON", write=write)) from None
        try:
            return parse(payload)
        except (ValueError, TypeError, AttributeError) as exc:  # PayloadError is a ValueError
            raise self._count(unexpected_answer(response, str(exc), write=write)) from None

    def _count(self, error: ExchangeError) -> ExchangeError:
        self._errors[type(error).__name__] += 1
        return error

    def _report_usage(
        self, path: str, weight: int, headers: httpx.Headers, observe: UsageCallback | None
    ) -> None:
        if self._on_usage is None and observe is None:
            return
        usage = Usage(
            path=path,
            weight=weight,
            used_weight_1m=_header_int(headers, "x-mbx-used-weight-1m"),
            order_count_10s=_header_int(headers, "x-mbx-order-count-10s"),
            order_count_1m=_header_int(headers, "x-mbx-order-count-1m"),
        )
        for callback in (self._on_usage, observe):
            if callback is not None:
                callback(usage)

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
        observe: UsageCallback | None = None,
    ) -> T:
        """A signed request; on -1021 resyncs the offset and sends it once more (see module)."""
        for attempt in (1, 2):
            generation = self._time_generation
            query = encode_query(
                [
                    *params,
                    ("recvWindow", str(self.recv_window)),
                    ("timestamp", str(self.timestamp())),
                ]
            )
            query = f"{query}&signature={signer.sign(query)}"
            try:
                return await self.request(
                    method,
                    path,
                    query,
                    parse,
                    weight=weight,
                    api_key=api_key,
                    write=write,
                    observe=observe,
                )
            except InvalidRequest as exc:
                if exc.code != -1021 or attempt == 2:
                    raise
            self._resync_retries += 1
            await self.resync_after(generation)
        raise AssertionError("unreachable")  # pragma: no cover


from tradercoin.exchange.account import AccountClient  # noqa: E402 (it needs the above)

if TYPE_CHECKING:  # AccountClient implements the protocol the actors use
    _protocol_check: type[ExchangeClient] = AccountClient
    _account_check: type[AccountView] = AccountClient
