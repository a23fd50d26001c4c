"""The matching engine: accounts, orders, trades, positions, and how orders fill.

Sync-coloured throughout: the simulator calls it from request handlers and from its
scheduler and tick loop. Every change of an order is reported to ``on_execution`` (which the
simulator turns into user-stream events) in the order it happened.

Fill model: one book per symbol holds every account's resting LIMIT orders. An incoming
LIMIT order first trades against the resting orders of other accounts it crosses, best price
then oldest first, at each resting order's price: both fills carry one trade id, the resting
side is the maker (:class:`Match` records each such trade). Its own resting orders it meets
go through self-trade prevention instead (:meth:`Engine._prevent_self_trade`). What is left
then trades against the rest of the market, which stands at the mark price: a LIMIT order
that crosses the mark when placed takes liquidity at the mark at once; a resting one fills at
its own price, one step of liquidity per price step, while the mark is at or through it. A
MARKET order fills at the mark once its latency has passed (immediately with
``newOrderRespType=RESULT``), at most ``spec.liquidity`` per step, the rest on later steps;
it meets resting orders of other accounts only where they are at least as good as the mark
(the market's depth is at the mark, so a resting order priced worse is never reached).
"""

from __future__ import annotations

import heapq
import random
import string
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from tradercoin.exchange.sim.account import DEFAULT_STARTING_BALANCE, Position, apply_fill
from tradercoin.exchange.sim.errors import ApiError
from tradercoin.exchange.sim.markets import SymbolSpec
from tradercoin.exchange.sim.validate import OrderRequest

__all__ = ["Account", "Engine", "Match", "Position", "SimOrder", "Trade"]

ZERO = Decimal(0)
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})
FEE_PLACES = Decimal("0.00000001")
_ALNUM = string.ascii_letters + string.digits


@dataclass(eq=False, slots=True)
class SimOrder:
    """The exchange's own record of one order (mutable: the engine owns it)."""

    account: Account
    spec: SymbolSpec
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    price: Decimal
    orig_qty: Decimal
    reduce_only: bool
    good_till_date: int
    time: int
    update_time: int
    visible_at: float
    stp_mode: str = "EXPIRE_MAKER"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"

    @property
    def remaining(self) -> Decimal:
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO


@dataclass(frozen=True, slots=True)
class Trade:
    id: int
    symbol: str
    order_id: int
    side: str
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    maker: bool
    time: int
    realized_pnl: Decimal
    commission_asset: str = "USDT"


@dataclass(frozen=True, slots=True)
class Match:
    """One trade between two accounts' orders; each side's :class:`Trade` has ``trade_id``."""

    trade_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    maker_api_key: str
    maker_order_id: int
    taker_api_key: str
    taker_order_id: int
    time: int


@dataclass(eq=False)
class Account:
    """One API key pair and everything the exchange holds for it."""

    api_key: str
    secret: bytes | None = None
    ed25519_public: bytes | None = None
    balance: Decimal = DEFAULT_STARTING_BALANCE  # USDT wallet balance (account.py)
    balance_time: int = 0
    orders: dict[str, dict[int, SimOrder]] = field(default_factory=dict)
    open_orders: dict[str, dict[int, SimOrder]] = field(default_factory=dict)
    by_client_id: dict[tuple[str, str], SimOrder] = field(default_factory=dict)
    trades: dict[str, list[Trade]] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)

    def open_in(self, symbol: str) -> dict[int, SimOrder]:
        return self.open_orders.setdefault(symbol, {})

    def all_open(self) -> Iterator[SimOrder]:
        for orders in self.open_orders.values():
            yield from orders.values()

    def __repr__(self) -> str:
        return f"Account(api_key=...{self.api_key[-4:]})"


ExecutionSink = Callable[[SimOrder, str, "Trade | None", int], None]
"""``(order, execution_type, trade, expiry_reason)`` after each change."""


class Engine:
    """Order books of all symbols; see the module doc for the fill model."""

    def __init__(
        self,
        specs: Mapping[str, SymbolSpec],
        *,
        seed: int,
        on_execution: ExecutionSink,
        now_ms: Callable[[], int],
        taker_fee: Decimal = Decimal("0.0005"),
        maker_fee: Decimal = Decimal("0.0002"),
    ) -> None:
        self._specs = specs
        self._rng = random.Random(f"{seed}:engine")
        self._on_execution = on_execution
        self._now_ms = now_ms
        self._taker_fee = taker_fee
        self._maker_fee = maker_fee
        self.marks: dict[str, Decimal] = {s.symbol: s.initial_price for s in specs.values()}
        self._next_order_id = {s: 8_300_000_000 + i * 1_000_000_000 for i, s in enumerate(specs)}
        self._next_trade_id = {s: 5_000_000_000 + i * 1_000_000_000 for i, s in enumerate(specs)}
        self._bids: dict[str, list[tuple[Decimal, int, SimOrder]]] = {s: [] for s in specs}
        self._asks: dict[str, list[tuple[Decimal, int, SimOrder]]] = {s: [] for s in specs}
        self._working: dict[str, dict[int, SimOrder]] = {s: {} for s in specs}
        self._resting: set[SimOrder] = set()
        self.orders: dict[tuple[str, int], SimOrder] = {}
        self.matches: list[Match] = []
        self._live = {(s, side): 0 for s in specs for side in ("BUY", "SELL")}
        self.orders_created = 0
        self.fills = 0

    # --- placing -------------------------------------------------------------------------

    def place(self, account: Account, req: OrderRequest, *, visible_at: float) -> SimOrder:
        """Record a validated order and do what its type does at once.

        Raises:
            ApiError: -4116 for a client id already open, -5021/-5022 for a FOK/GTX order
                that cannot execute as required, -2022 for a reduce-only order with no
                position to reduce (nothing recorded then).
        """
        symbol = req.spec.symbol
        client_id = req.client_order_id or self._auto_client_id()
        existing = account.by_client_id.get((symbol, client_id))
        if existing is not None and existing.is_open:
            raise ApiError(-4116, "clientOrderId is duplicated")
        crossing = req.type == "LIMIT" and self._crosses(req.side, req.price, self.marks[symbol])
        self._check_fok_gtx(req, crossing, self._book_depth(account, req))
        if req.reduce_only and not _reduces(account.positions.get(symbol), req.side):
            raise ApiError(-2022, "ReduceOnly Order is rejected.")
        order = self._record(account, req, client_id, visible_at)
        self._on_execution(order, "NEW", None, 0)
        if req.type == "LIMIT":
            self._start_limit(order, crossing)
        elif req.respond_result:
            self.work_market(order, until_done=True)
        return order

    def _check_fok_gtx(self, req: OrderRequest, crossing: bool, depth: Decimal | None) -> None:
        """``depth``: what resting orders of other accounts offer to ``req`` (None: the book
        holds nothing it crosses)."""
        if req.time_in_force == "GTX" and (crossing or depth is not None):
            raise ApiError(
                -5022,
                "Due to the order could not be executed as maker, the Post "
                "Only order will be rejected.",
            )
        available = (depth or ZERO) + (req.spec.liquidity if crossing else ZERO)
        if req.time_in_force == "FOK" and req.quantity > available:
            raise ApiError(
                -5021,
                "Due to the order could not be filled immediately, the FOK "
                "order has been rejected.",
            )

    def _record(
        self, account: Account, req: OrderRequest, client_id: str, visible_at: float
    ) -> SimOrder:
        symbol = req.spec.symbol
        order_id = self._next_order_id[symbol]
        self._next_order_id[symbol] = order_id + 1
        now = self._now_ms()
        order = SimOrder(account, req.spec, order_id, client_id, req.side, req.type,
                         req.time_in_force, req.price, req.quantity, req.reduce_only,
                         req.good_till_date, now, now, visible_at, req.stp_mode)  # fmt: skip
        account.orders.setdefault(symbol, {})[order_id] = order
        self.orders[(symbol, order_id)] = order
        account.open_in(symbol)[order_id] = order
        account.by_client_id[(symbol, client_id)] = order
        self.orders_created += 1
        return order

    def _start_limit(self, order: SimOrder, crossing: bool) -> None:
        self._take_book(order, order.price)
        if crossing and order.is_open:
            self._fill_step(order, self.marks[order.spec.symbol], maker=False)
        if order.is_open and order.time_in_force in ("IOC", "FOK"):
            self._close(order, "EXPIRED", expiry_reason=2)
        elif order.is_open:
            book = self._bids if order.side == "BUY" else self._asks
            key = -order.price if order.side == "BUY" else order.price
            heapq.heappush(book[order.spec.symbol], (key, order.order_id, order))
            self._resting.add(order)
            self._live[(order.spec.symbol, order.side)] += 1

    def _auto_client_id(self) -> str:
        return "".join(self._rng.choices(_ALNUM, k=22))

    @staticmethod
    def _crosses(side: str, price: Decimal, mark: Decimal) -> bool:
        return price >= mark if side == "BUY" else price <= mark

    # --- the book across accounts -------------------------------------------------------

    def _take_book(self, taker: SimOrder, limit: Decimal) -> None:
        """Trade ``taker`` against the opposite resting orders priced up to ``limit``, best
        price then oldest (lowest orderId) first, until it is done or nothing crosses."""
        book = (self._asks if taker.side == "BUY" else self._bids)[taker.spec.symbol]
        kept: list[tuple[Decimal, int, SimOrder]] = []
        while taker.is_open and book:
            entry = book[0]
            maker = entry[2]
            if maker.is_open and not self._crosses(taker.side, limit, maker.price):
                break
            heapq.heappop(book)
            if maker.is_open and maker is not taker:
                self._meet(taker, maker)
            if maker.is_open:
                kept.append(entry)
        for entry in kept:
            heapq.heappush(book, entry)

    def _meet(self, taker: SimOrder, maker: SimOrder) -> None:
        if maker.account is not taker.account:
            self._cross_trade(taker, maker)
        elif _stp_applies(taker):
            self._prevent_self_trade(taker, maker)

    def _cross_trade(self, taker: SimOrder, maker: SimOrder) -> None:
        """One trade between two accounts at the maker's price, under one trade id."""
        qty = min(taker.remaining, maker.remaining)
        trade_id = self._new_trade_id(taker)
        self.matches.append(
            Match(trade_id, taker.spec.symbol, maker.price, qty, maker.account.api_key,
                  maker.order_id, taker.account.api_key, taker.order_id, self._now_ms())
        )  # fmt: skip
        self._execute(maker, qty, maker.price, True, trade_id)
        self._execute(taker, qty, maker.price, False, trade_id)

    def _prevent_self_trade(self, taker: SimOrder, maker: SimOrder) -> None:
        """Binance's STP, decided by the taker's mode (EXPIRE_MAKER by default): the resting
        order, the taker, or both expire as EXPIRED_IN_MATCH (``er`` 1) instead of trading.

        Per the USDⓈ-M STP FAQ (developers.binance.com/docs/derivatives/usds-margined-futures/
        faq/stp-faq): "The STP event will occur depending on the STP mode of the taker order";
        the New Order doc: "selfTradePreventionMode is only effective when timeInForce set to
        IOC or GTC or GTD" (see :func:`_stp_applies`). With NONE Binance lets the account
        trade with itself; the simulator skips its own order instead (no self-trades).
        """
        if taker.stp_mode in ("EXPIRE_MAKER", "EXPIRE_BOTH"):
            self._close(maker, "EXPIRED_IN_MATCH", expiry_reason=1)
        if taker.stp_mode in ("EXPIRE_TAKER", "EXPIRE_BOTH"):
            self._close(taker, "EXPIRED_IN_MATCH", expiry_reason=1)

    def _book_depth(self, account: Account, req: OrderRequest) -> Decimal | None:
        """What resting orders cross ``req`` (``None``: none do): their remaining quantity,
        other accounts' only (FOK/GTX orders are outside STP, so they never take their own)."""
        if req.type != "LIMIT" or req.time_in_force not in ("FOK", "GTX"):
            return None
        book = (self._asks if req.side == "BUY" else self._bids)[req.spec.symbol]
        crossed = [
            o for _, _, o in book if o.is_open and self._crosses(req.side, req.price, o.price)
        ]
        if not crossed:
            return None
        return sum((o.remaining for o in crossed if o.account is not account), ZERO)

    # --- market orders -------------------------------------------------------------------

    def work_market(self, order: SimOrder, *, until_done: bool = False) -> None:
        """Fill one step of a MARKET order (all of it with ``until_done``); keeps the rest
        working for the next price steps."""
        symbol = order.spec.symbol
        self._take_book(order, self.marks[symbol])
        while order.is_open:
            self._fill_step(order, self.marks[symbol], maker=False)
            if not until_done:
                break
        if order.is_open:
            self._working[symbol][order.order_id] = order
        else:
            self._working[symbol].pop(order.order_id, None)

    def has_work(self, *, prices_move: bool = True) -> bool:
        """True while a price step could fill something: working MARKET orders, or resting
        LIMIT orders when prices move."""
        return (prices_move and bool(self._resting)) or any(self._working.values())

    # --- price steps ---------------------------------------------------------------------

    def step(self, symbol: str) -> None:
        """Match ``symbol``'s working MARKET orders and crossed resting LIMIT orders."""
        mark = self.marks[symbol]
        for order in list(self._working[symbol].values()):
            self.work_market(order)
        self._match_book(self._bids[symbol], lambda key: -key >= mark)
        self._match_book(self._asks[symbol], lambda key: key <= mark)
        self._compact(symbol, "BUY", self._bids[symbol])
        self._compact(symbol, "SELL", self._asks[symbol])

    def best_prices(self, symbol: str) -> tuple[Decimal | None, Decimal | None]:
        """The highest resting bid and lowest resting ask of ``symbol`` (None: none)."""
        bids, asks = self._bids[symbol], self._asks[symbol]
        while bids and not bids[0][2].is_open:
            heapq.heappop(bids)
        while asks and not asks[0][2].is_open:
            heapq.heappop(asks)
        return (-bids[0][0] if bids else None), (asks[0][0] if asks else None)

    def _compact(self, symbol: str, side: str, book: list[tuple[Decimal, int, SimOrder]]) -> None:
        """Drop canceled entries once they outnumber the live ones (they are removed lazily)."""
        if len(book) > 2 * self._live[(symbol, side)] + 64:
            book[:] = [entry for entry in book if entry[2].is_open]
            heapq.heapify(book)

    def _match_book(
        self, book: list[tuple[Decimal, int, SimOrder]], crossed: Callable[[Decimal], bool]
    ) -> None:
        again = []
        while book and (not book[0][2].is_open or crossed(book[0][0])):
            entry = heapq.heappop(book)
            order = entry[2]
            if order.is_open:
                self._fill_step(order, order.price, maker=True)
                if order.is_open:
                    again.append(entry)
        for entry in again:
            heapq.heappush(book, entry)

    # --- fills, cancels, expiry ----------------------------------------------------------

    def fill(self, order: SimOrder, quantity: Decimal | None = None) -> None:
        """Test hook: fill ``quantity`` (default: all that remains) now, at the order's limit
        price or, for MARKET, at the mark.

        Raises:
            ApiError: -2011 when the order is not open.
        """
        if not order.is_open:
            raise ApiError(-2011, "Unknown order sent.")
        qty = order.remaining if quantity is None else min(quantity, order.remaining)
        maker = order.type == "LIMIT"
        price = order.price if maker else self.marks[order.spec.symbol]
        self._execute(order, qty, price, maker)

    def cancel(self, order: SimOrder) -> None:
        """Cancel an open order. Raises ApiError -2011 when it is not open."""
        if not order.is_open:
            raise ApiError(-2011, "Unknown order sent.")
        self._close(order, "CANCELED", expiry_reason=0)

    def expire(self, order: SimOrder, expiry_reason: int) -> None:
        if order.is_open:
            self._close(order, "EXPIRED", expiry_reason=expiry_reason)

    def _close(self, order: SimOrder, status: str, *, expiry_reason: int) -> None:
        order.status = status
        order.update_time = self._now_ms()
        self._forget_open(order)
        execution = "EXPIRED" if status == "EXPIRED_IN_MATCH" else status
        self._on_execution(order, execution, None, expiry_reason)

    def _forget_open(self, order: SimOrder) -> None:
        order.account.open_in(order.spec.symbol).pop(order.order_id, None)
        self._working[order.spec.symbol].pop(order.order_id, None)
        if order in self._resting:
            self._resting.remove(order)
            self._live[(order.spec.symbol, order.side)] -= 1

    def _fill_step(self, order: SimOrder, price: Decimal, *, maker: bool) -> None:
        self._execute(order, min(order.remaining, order.spec.liquidity), price, maker)

    def _execute(
        self, order: SimOrder, qty: Decimal, price: Decimal, maker: bool, trade_id: int = 0
    ) -> None:
        """One trade of ``qty`` at ``price`` (``trade_id``, or the next id when 0): the account
        settles, the order advances."""
        if qty <= 0:
            return
        trade = self._settle(order, qty, price, maker, trade_id or self._new_trade_id(order))
        order.account.trades.setdefault(trade.symbol, []).append(trade)
        order.executed_qty += qty
        order.cum_quote += trade.quote_qty
        order.update_time = trade.time
        order.status = "FILLED" if order.remaining <= 0 else "PARTIALLY_FILLED"
        if order.status == "FILLED":
            self._forget_open(order)
        self.fills += 1
        self._on_execution(order, "TRADE", trade, 0)

    def _new_trade_id(self, order: SimOrder) -> int:
        trade_id = self._next_trade_id[order.spec.symbol]
        self._next_trade_id[order.spec.symbol] = trade_id + 1
        return trade_id

    def _settle(
        self, order: SimOrder, qty: Decimal, price: Decimal, maker: bool, trade_id: int
    ) -> Trade:
        """Fee, position and balance of a trade; returns the trade."""
        symbol, account = order.spec.symbol, order.account
        quote = qty * price
        fee = (quote * (self._maker_fee if maker else self._taker_fee)).quantize(FEE_PLACES)
        now = self._now_ms()
        pnl = apply_fill(account, symbol, order.side, qty, price, fee, now)
        return Trade(trade_id, symbol, order.order_id, order.side, price, qty, quote, fee, maker,
                     now, pnl, order.spec.quote_asset)  # fmt: skip


def _stp_applies(taker: SimOrder) -> bool:
    """STP acts for IOC, GTC and GTD orders (MARKET orders are GTC) not sent with NONE."""
    return taker.stp_mode != "NONE" and taker.time_in_force not in ("FOK", "GTX")


def _reduces(position: Position | None, side: str) -> bool:
    """True when an order on ``side`` would reduce the one-way ``position``."""
    if position is None or position.amount == 0:
        return False
    return (position.amount > 0) == (side == "SELL")
