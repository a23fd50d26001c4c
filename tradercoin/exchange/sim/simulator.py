"""The simulator: one object owning the markets, accounts, the REST pipeline, the user
stream and the fault table; :meth:`Simulator.run` owns its tasks.

Everything runs on trio's clock and the injected :class:`~tradercoin.clock.WallClock`, so a
whole session runs under ``MockClock(autojump_threshold=0)``.
"""

from __future__ import annotations

import collections
import math
import random
import string
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import trio
import trio.testing
import trio_websocket
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tradercoin.clock import WallClock
from tradercoin.exchange.egress import raise_single
from tradercoin.exchange.sim.account import DEFAULT_STARTING_BALANCE, AccountView
from tradercoin.exchange.sim.account_api import account_update, current_view
from tradercoin.exchange.sim.admin import handle_admin
from tradercoin.exchange.sim.auth import check_api_key, check_signature, check_timestamp
from tradercoin.exchange.sim.connrules import ConnectionRuleStatistics
from tradercoin.exchange.sim.engine import Account, Engine, Match, SimOrder, Trade
from tradercoin.exchange.sim.errors import ApiError
from tradercoin.exchange.sim.events import order_trade_update
from tradercoin.exchange.sim.faults import (
    AFTER,
    BEFORE,
    GARBLED,
    IMMEDIATE,
    SERVER_ERRORS,
    Fault,
    FaultKind,
    FaultTable,
    garble,
    server_error,
)
from tradercoin.exchange.sim.market_data import Tape
from tradercoin.exchange.sim.markets import DEFAULT_SYMBOLS, PriceWalk, SymbolSpec
from tradercoin.exchange.sim.ratelimit import Limits, RateLimiter, order_count_headers
from tradercoin.exchange.sim.rest import Request, Response, RestApp, dropped, json_response
from tradercoin.exchange.sim.routes import ROUTES, Call, Route
from tradercoin.exchange.sim.scheduler import Scheduler
from tradercoin.exchange.sim.stream import StreamConfig, StreamHub
from tradercoin.exchange.sim.validate import OrderRequest

__all__ = ["OrderTruth", "SimStatistics", "Simulator"]

_ALNUM = string.ascii_letters + string.digits
_ANONYMOUS = Account(api_key="")
LOOKAHEAD_STEPS = 3600
DEFAULT_LIMITS = Limits()
DEFAULT_STREAM = StreamConfig()
_BEFORE_EXEMPT = BEFORE - {FaultKind.THROTTLED}
UNKNOWN_ERROR_MSG = "Unknown error, please check your request or try again later."
WAF_PAGE = (
    b"<html><head><title>403 Forbidden</title></head><body><center><h1>403 Forbidden"
    b"</h1></center><hr><center>CloudFront</center></body></html>"
)


@dataclass(frozen=True, slots=True)
class SimStatistics:
    requests_by_path: Mapping[str, int]
    weight_used: int
    accounts: int
    orders_created: int
    fills: int
    stream_connections: int
    stream_events_sent: int
    live_listen_keys: int
    faults_hit: int
    pending_timers: int
    connection_rules: ConnectionRuleStatistics
    weight_by_ip: Mapping[str, int]  # in the current minute, what the 429s judge
    weight_total_by_ip: Mapping[str, int]
    stream_connections_by_ip: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class OrderTruth:
    """The exchange's own view of one order, for tests to compare with."""

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal
    cum_quote: Decimal
    status: str
    time: int
    update_time: int
    avg_price: Decimal = Decimal(0)
    """As the exchange reports it (``avgPrice``, at the symbol's average precision)."""
    reduce_only: bool = False

    @classmethod
    def of(cls, order: SimOrder) -> OrderTruth:
        return cls(
            order.spec.symbol,
            order.order_id,
            order.client_order_id,
            order.side,
            order.type,
            order.time_in_force,
            order.price,
            order.orig_qty,
            order.executed_qty,
            order.cum_quote,
            order.status,
            order.time,
            order.update_time,
            Decimal(order.spec.fmt_avg(order.avg_price)),
            order.reduce_only,
        )


class Simulator:
    """A Binance USDⓈ-M futures stand-in (see the package doc)."""

    def __init__(
        self,
        *,
        clock: WallClock,
        seed: int = 0,
        market_fill_latency: float = 2.0,
        symbols: Sequence[SymbolSpec] = DEFAULT_SYMBOLS,
        limits: Limits = DEFAULT_LIMITS,
        stream: StreamConfig = DEFAULT_STREAM,
        price_interval: float = 1.0,
        volatility_scale: float = 1.0,
        starting_balance: Decimal = DEFAULT_STARTING_BALANCE,
    ) -> None:
        self.clock = clock
        self.starting_balance = starting_balance
        self.specs: dict[str, SymbolSpec] = {s.symbol: s for s in symbols}
        self.market_fill_latency = market_fill_latency
        self._price_interval = price_interval
        self._prices_move = volatility_scale > 0
        self._walks = {
            s.symbol: PriceWalk(s, seed, price_interval, volatility_scale) for s in symbols
        }
        self.tapes = {s.symbol: Tape(s.initial_price) for s in symbols}
        self._rng = random.Random(f"{seed}:accounts")
        self._accounts: dict[str, Account] = {}
        self._skew_ms = 0
        self._t0 = 0.0
        self._work = trio.Event()
        self._nursery: trio.Nursery | None = None
        self._requests: collections.Counter[str] = collections.Counter()
        self.limiter = RateLimiter(limits)
        self.faults = FaultTable()
        self.scheduler = Scheduler()
        self.streams = StreamHub(stream, self.scheduler, self.faults, self.server_ms, seed)
        self.engine = Engine(
            self.specs, seed=seed, on_execution=self._on_execution, now_ms=self.server_ms
        )
        self.asgi_app = RestApp(self.handle_http, in_process=True)

    # --- running -------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the price walk, the scheduler and stream connections until cancelled.

        Resource handling: owns every task of the simulator, in-process stream connections
        included; they end with it.
        """
        self._t0 = trio.current_time()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.scheduler.run)
                nursery.start_soon(self._run_prices)
                task_status.started()
        finally:
            self._nursery = None

    @property
    def running(self) -> bool:
        return self._nursery is not None

    async def _run_prices(self) -> None:
        """Step prices and match while anything could fill; idle otherwise.

        With only resting LIMIT orders it sleeps straight to the first step (within
        ``LOOKAHEAD_STEPS``) whose drawn price crosses a best bid or ask, so long virtual
        sleeps stay cheap; a new best order or a price set by hand wakes it to look again.
        """
        while True:
            self._work = trio.Event()
            if not self.engine.has_work(prices_move=self._prices_move):
                await self._work.wait()
                continue
            step = self._next_fill_step()
            with trio.move_on_at(self._t0 + step * self._price_interval):
                await self._work.wait()
                continue
            for symbol in self.specs:
                self.mark(symbol)
                self.engine.step(symbol)

    def _next_fill_step(self) -> int:
        """The next grid step at which a price step can fill something."""
        current = self._current_step()
        if self.engine.has_work(prices_move=False):
            return current + 1
        first = current + LOOKAHEAD_STEPS
        for symbol, walk in self._walks.items():
            bid, ask = self.engine.best_prices(symbol)
            if bid is None and ask is None:
                continue
            walk.advance_to(current)
            for offset, price in enumerate(walk.ahead(first - current), start=1):
                if current + offset >= first:
                    break
                if (bid is not None and price <= bid) or (ask is not None and price >= ask):
                    first = current + offset
                    break
        return first

    def _current_step(self) -> int:
        return math.floor((trio.current_time() - self._t0) / self._price_interval)

    def _poke(self, order: SimOrder | None = None) -> None:
        """Wake the price loop when ``order`` may fill sooner than it planned for."""
        if order is None or (order.is_open and (order.type == "MARKET" or self._is_best(order))):
            self._work.set()

    def _is_best(self, order: SimOrder) -> bool:
        bid, ask = self.engine.best_prices(order.spec.symbol)
        return order.price == (bid if order.side == "BUY" else ask)

    def mark(self, symbol: str) -> Decimal:
        """The current mark price of ``symbol`` (the walk brought up to now)."""
        walk = self._walks[symbol]
        walk.advance_to(self._current_step())
        self.engine.marks[symbol] = walk.price
        self.tapes[symbol].observe(walk.price, self.server_ms())
        return walk.price

    def server_ms(self) -> int:
        return self.clock.now_ms() + self._skew_ms

    # --- accounts ------------------------------------------------------------------------

    def create_account(self, balance: Decimal | None = None) -> tuple[str, str]:
        """A new HMAC account: ``(api_key, api_secret)``, its wallet holding ``balance``
        USDT (default: the simulator's ``starting_balance``)."""
        api_key = self._new_api_key()
        secret = "".join(self._rng.choices(_ALNUM, k=64))
        self._accounts[api_key] = Account(
            api_key, secret=secret.encode(), balance=self._balance(balance)
        )
        return api_key, secret

    def create_ed25519_account(self) -> tuple[str, Ed25519PrivateKey]:
        """A new Ed25519 account: ``(api_key, private_key)`` (keys are random, not seeded)."""
        api_key = self._new_api_key()
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._accounts[api_key] = Account(
            api_key, ed25519_public=public, balance=self.starting_balance
        )
        return api_key, private

    def _balance(self, balance: Decimal | None) -> Decimal:
        if balance is None:
            return self.starting_balance
        if not balance.is_finite() or balance < 0:
            raise ValueError(f"balance must be finite and not negative, not {balance}")
        return balance

    def _new_api_key(self) -> str:
        while (key := "".join(self._rng.choices(_ALNUM, k=64))) in self._accounts:
            pass
        return key

    def account(self, api_key: str) -> Account:
        """Raises KeyError for an unknown key."""
        return self._accounts[api_key]

    # --- orders --------------------------------------------------------------------------

    def place(
        self, account: Account, request: OrderRequest, visible_after: float = 0.0
    ) -> SimOrder:
        """Place a validated order; MARKET orders start filling after the latency."""
        order = self.engine.place(account, request, visible_at=trio.current_time() + visible_after)
        if order.type == "MARKET" and order.is_open:
            self.scheduler.call_later(self.market_fill_latency, lambda: self._work_market(order))
        if order.good_till_date and order.is_open:
            delay = max(0.0, (order.good_till_date - self.server_ms()) / 1000)
            self.scheduler.call_later(delay, lambda: self.engine.expire(order, 6))
        if order.type == "LIMIT":
            self._poke(order)
        return order

    def _work_market(self, order: SimOrder) -> None:
        self.mark(order.spec.symbol)
        self.engine.work_market(order)
        self._poke(order)

    def _on_execution(
        self, order: SimOrder, execution: str, trade: Trade | None, expiry_reason: int
    ) -> None:
        symbol = order.spec.symbol
        tape = self.tapes[symbol]
        if trade is not None:
            tape.trade(trade.id, trade.price, trade.qty, trade.time)
        else:
            tape.touch()
        if not self.streams.wants(order.account):
            return
        now = self.server_ms()
        mark = self.engine.marks[symbol]
        event = order_trade_update(order, execution, trade, expiry_reason, now, mark)
        self.streams.publish(order.account, event)
        if trade is not None:
            update = account_update(self, order.account, symbol, now, order.update_time)
            self.streams.publish(order.account, update)

    def resting_orders(self, symbol: str) -> Iterator[SimOrder]:
        """Every account's open orders on ``symbol``."""
        for account in self._accounts.values():
            yield from account.open_in(symbol).values()

    # --- test and fault hooks ------------------------------------------------------------

    def set_price(self, symbol: str, price: Decimal) -> None:
        """Move ``symbol``'s mark now; crossed orders fill at once.

        Raises:
            KeyError: unknown symbol; ValueError: a price that is not finite and positive.
        """
        if not price.is_finite() or price <= 0:
            raise ValueError(f"price must be finite and positive, not {price}")
        self.mark(symbol)
        self._walks[symbol].set(price)
        self.engine.marks[symbol] = self._walks[symbol].price
        self.tapes[symbol].observe(self._walks[symbol].price, self.server_ms())
        self.engine.step(symbol)
        self._poke()

    def fill(self, symbol: str, order_id: int, quantity: Decimal | None = None) -> None:
        """Fill an open order now (all of it by default).

        Raises:
            KeyError: no such order; ApiError -2011: the order is not open.
        """
        self.engine.fill(self.engine.orders[(symbol, order_id)], quantity)

    def inject(
        self,
        fault: Fault,
        *,
        path: str | None = None,
        account: str | None = None,
        count: int | None = 1,
    ) -> None:
        """Arm ``fault`` for ``count`` hits (``None``: until :meth:`clear_faults`).

        LISTEN_KEY_EXPIRED and DISCONNECT act at once on ``account`` (all accounts when
        ``None``); CLOCK_SKEW sets the server clock ``fault.seconds`` ahead until cleared.
        """
        if fault.kind not in IMMEDIATE:
            self.faults.add(fault, path=path, account=account, count=count)
        elif fault.kind is FaultKind.CLOCK_SKEW:
            self._skew_ms = int(fault.seconds * 1000)
        else:
            targets = [self._accounts[account]] if account else list(self._accounts.values())
            for target in targets:
                if fault.kind is FaultKind.LISTEN_KEY_EXPIRED:
                    self.streams.expire_now(target)
                else:
                    self.streams.disconnect(target)

    def set_order_limits(self, api_key: str, *, per_10s: int, per_minute: int) -> None:
        """Give the account its own ORDERS limits (Binance's defaults, 300 per 10 s and 1200
        per minute, come from ``limits``). KeyError: unknown key; ValueError: below 1."""
        self.account(api_key)
        self.limiter.set_order_limits(api_key, per_10s, per_minute)

    def clear_faults(self) -> None:
        self.faults.clear()
        self.streams.flush_bursts()
        self._skew_ms = 0

    def orders(self, api_key: str) -> list[OrderTruth]:
        """Every order of the account, by symbol then orderId. KeyError: unknown key."""
        account = self._accounts[api_key]
        return [
            OrderTruth.of(order)
            for symbol in sorted(account.orders)
            for order in account.orders[symbol].values()
        ]

    def trades(
        self, api_key: str, *, symbol: str | None = None, order_id: int | None = None
    ) -> list[Trade]:
        """The account's trades (its side of each), by symbol then id; only ``symbol``'s and
        only ``order_id``'s when given. KeyError: unknown key."""
        return [
            t
            for s, ts in sorted(self._accounts[api_key].trades.items())
            if symbol is None or s == symbol
            for t in ts
            if order_id is None or t.order_id == order_id
        ]

    def matches(self) -> list[Match]:
        """Every trade between two accounts, oldest first (each side's fill has its id)."""
        return list(self.engine.matches)

    def account_view(self, api_key: str) -> AccountView:
        """The account's wallet, positions and margins at the current marks (the exchange's
        own record, for tests to compare with). KeyError: unknown key."""
        return current_view(self, self._accounts[api_key])

    def statistics(self) -> SimStatistics:
        by_ip = self.limiter.weight_by_ip(self.server_ms())
        return SimStatistics(
            requests_by_path=dict(self._requests),
            weight_used=self.limiter.weight_used,
            accounts=len(self._accounts),
            orders_created=self.engine.orders_created,
            fills=self.engine.fills,
            stream_connections=self.streams.connections,
            stream_events_sent=self.streams.events_sent,
            live_listen_keys=self.streams.live_keys(),
            faults_hit=self.faults.hits,
            pending_timers=self.scheduler.pending(),
            connection_rules=self.streams.rules.statistics(self.streams.streams_per_connection()),
            weight_by_ip={ip: minute for ip, (minute, _) in by_ip.items()},
            weight_total_by_ip={ip: total for ip, (_, total) in by_ip.items()},
            stream_connections_by_ip=self.streams.connections_by_ip(),
        )

    def exchange_info(self, now_ms: int) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": now_ms,
            "futuresType": "U_MARGINED",
            "rateLimits": self.limiter.limits.exchange_info(),
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": [spec.exchange_info() for spec in self.specs.values()],
        }

    # --- REST ----------------------------------------------------------------------------

    async def handle_http(self, request: Request) -> Response:
        """Answer one REST request; never raises for anything a client sends."""
        route = ROUTES.get((request.method, request.path))
        now = self.server_ms()
        if route is None:
            self._requests["(unrouted)"] += 1
            if request.path.startswith("/sim/admin/"):
                return handle_admin(self, request)
            response = _error(
                ApiError(-5000, f"Path {request.path}, Method {request.method} is invalid", 404)
            )
        else:
            self._requests[request.path] += 1
            try:
                response = await self._dispatch(route, request, now)
            except ApiError as exc:
                response = _error(exc)
        if response.drop:
            return response
        used = self.limiter.used(request.ip, now)
        response.headers.append((b"x-mbx-used-weight-1m", str(used).encode()))
        return response

    async def _dispatch(self, route: Route, request: Request, now: int) -> Response:
        params = parse_params(request)
        self.limiter.charge(request.ip, route.weight(params), now)
        api_key = request.header(b"x-mbx-apikey")
        if self.faults:
            early = await self._fault_before(request, params, api_key)
            if early is not None:
                return early
        account = self._authenticate(route, request, params, now)
        counted: list[tuple[bytes, bytes]] = []
        if route.is_order:
            counted = order_count_headers(self.limiter.count_order(account.api_key, now))
        visible_after = self._visibility_delay(route, request, api_key)
        try:
            payload = route.handler(self, Call(params, account, now, visible_after))
        except ApiError as exc:
            exc.headers += counted
            raise
        response = json_response(payload)
        response.headers += counted
        if self.faults:
            late = self.faults.take(AFTER, request.path, api_key)
            if late is not None and late.kind in GARBLED:
                return _garbled(late.kind, payload)
            if late is not None:
                return self._fault_response(late, request)
        return response

    def _authenticate(
        self, route: Route, request: Request, params: Mapping[str, str], now: int
    ) -> Account:
        if route.security == "NONE":
            return _ANONYMOUS
        account = check_api_key(request.header(b"x-mbx-apikey"), self._accounts)
        if route.security == "SIGNED":
            check_signature(account, request.query, request.body)
            check_timestamp(params, now)
        return account

    def _visibility_delay(self, route: Route, request: Request, api_key: str | None) -> float:
        if not route.is_order or not self.faults:
            return 0.0
        fault = self.faults.take(frozenset({FaultKind.VISIBILITY_DELAY}), request.path, api_key)
        return fault.seconds if fault else 0.0

    async def _fault_before(
        self, request: Request, params: Mapping[str, str], api_key: str | None
    ) -> Response | None:
        exempt = params.get("reduceOnly", "").lower() == "true"
        fault = self.faults.take(_BEFORE_EXEMPT if exempt else BEFORE, request.path, api_key)
        if fault is None:
            return None
        if fault.kind is FaultKind.LATENCY:
            await trio.sleep(fault.seconds)
            return None
        return self._fault_response(fault, request)

    def _fault_response(self, fault: Fault, request: Request) -> Response:
        kind = fault.kind
        if kind in (FaultKind.DROP_REQUEST, FaultKind.DROP_RESPONSE):
            return dropped()
        if kind is FaultKind.WAF_HTML:
            return Response(403, WAF_PAGE, [(b"content-type", b"text/html")])
        if kind in SERVER_ERRORS:
            status, content_type, body = server_error(kind)
            return Response(status, body, [(b"content-type", content_type)])
        if kind is FaultKind.RATE_LIMITED:
            seconds = max(1, math.ceil(fault.seconds))
            return _error(ApiError(-1003, "Too many requests.", 429, retry_after=seconds))
        if kind is FaultKind.BANNED:
            until = self.server_ms() + int(fault.seconds * 1000)
            message = f"Way too many requests; IP({request.ip}) banned until {until}."
            retry = max(1, math.ceil(fault.seconds))
            return _error(ApiError(-1003, message, 418, retry_after=retry))
        if kind is FaultKind.NO_CODE_5XX:
            return json_response(
                {"timestamp": self.server_ms(), "path": request.path, "msg": UNKNOWN_ERROR_MSG}, 503
            )
        return _error(_FAULT_ERRORS[kind])

    # --- user stream ---------------------------------------------------------------------

    async def handle_websocket(self, request: trio_websocket.WebSocketRequest) -> None:
        """Serve one user-stream connection (the real server's handler)."""
        remote = request.remote
        ip = remote.address if isinstance(remote, trio_websocket.Endpoint) else str(remote)
        await self.streams.handle(request, str(ip))

    @asynccontextmanager
    async def open_websocket(
        self, url: str, *, ip: str = "127.0.0.1"
    ) -> AsyncIterator[trio_websocket.WebSocketConnection]:
        """An in-process user-stream connection from client address ``ip``: a real
        trio-websocket client over memory streams, the server side run in the simulator's
        nursery. Needs :meth:`run` started.

        Raises:
            trio_websocket.ConnectionRejected: for an unknown route or listenKey, too many
                keys (400), or the connection rules (429, 418).
        """
        assert self._nursery is not None, "Simulator.run must be started first"
        parts = urlsplit(url)
        resource = parts.path + (f"?{parts.query}" if parts.query else "")
        client_stream, server_stream = trio.testing.memory_stream_pair()
        self._nursery.start_soon(self._serve_memory, server_stream, ip)
        try:
            async with trio.open_nursery() as nursery:
                ws = await trio_websocket.wrap_client_stream(
                    nursery,
                    client_stream,  # type: ignore[arg-type]  # any trio Stream works
                    parts.hostname or "sim",
                    resource,
                )
                try:
                    yield ws
                finally:
                    await ws.aclose()
        except BaseExceptionGroup as group:
            raise_single(group)
            raise

    async def _serve_memory(self, stream: trio.abc.Stream, ip: str = "127.0.0.1") -> None:
        async with trio.open_nursery() as nursery:
            request = await trio_websocket.wrap_server_stream(nursery, stream)
            await self.streams.handle(request, ip)
            nursery.cancel_scope.cancel()


_FAULT_ERRORS = {
    FaultKind.UNAVAILABLE: ApiError(-1001, "Service Unavailable.", 503),
    FaultKind.THROTTLED: ApiError(
        -1008,
        "Request throttled by system-level protection. Reduce-only/close-position "
        "orders are exempt. Please try again.",
        503,
    ),
    FaultKind.UNKNOWN_ERROR: ApiError(-1000, UNKNOWN_ERROR_MSG, 503),
    FaultKind.TIMEOUT: ApiError(
        -1007,
        "Timeout waiting for response from backend server. Send status unknown; "
        "execution status unknown.",
        408,
    ),
}


def _garbled(kind: FaultKind, payload: Any) -> Response:
    response = Response(200, garble(kind, payload))
    if kind is FaultKind.GARBLED_HTML:
        response.headers = [(b"content-type", b"text/html")]
    return response


def _error(exc: ApiError) -> Response:
    response = json_response(exc.body(), exc.status)
    response.headers += exc.headers
    if exc.retry_after is not None:
        response.headers.append((b"retry-after", str(exc.retry_after).encode()))
    return response


def parse_params(request: Request) -> dict[str, str]:
    """Query and form-body parameters; the query wins on duplicates.

    Raises:
        ApiError: -1100 for bytes that are not URL-encoded ASCII, -1101 for a parameter
            repeated within the query or within the body.
    """
    params: dict[str, str] = {}
    content_type = request.headers.get(b"content-type", b"")
    if request.body and not content_type.startswith(b"application/json"):
        params.update(_pairs(request.body))
    params.update(_pairs(request.query))
    return params


def _pairs(raw: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise ApiError(-1100, "Illegal characters found in a parameter.") from None
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        name = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise ApiError(-1101, f"Duplicate values for parameter '{name}'.")
    return result
