"""Public market data: ``GET /fapi/v1/ticker/24hr``, ``/fapi/v1/ticker/bookTicker`` and
``/fapi/v1/depth``, from the mark price walk and the simulator's own trades.

The simulated market trades at the mark both ways (a MARKET order fills at the mark; a
LIMIT order fills when the mark reaches it), so:

- ``lastPrice`` is the mark; the 24-hour open, high and low come from the mark prices the
  simulator drew (kept per minute for 24 hours: at most 1,441 buckets per symbol), starting
  from the symbol's initial price; volume, quote volume, trade count and first/last trade id
  count the trades of simulator accounts in the window (a trade between two accounts once);
- the book is the market makers' quotes plus the accounts' resting LIMIT orders: the best
  bid sits at the mark and the best ask one tick above, each price level of the makers
  holding ``SymbolSpec.liquidity`` (the most one order fills per price step); resting
  orders add their remaining quantity at their price. ``lastUpdateId`` grows on every mark
  change and every order change of the symbol.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from tradercoin.exchange.sim.errors import ApiError
from tradercoin.exchange.sim.markets import SymbolSpec
from tradercoin.exchange.sim.validate import parse_int, symbol_of

if TYPE_CHECKING:
    from tradercoin.exchange.sim.engine import SimOrder
    from tradercoin.exchange.sim.routes import Call
    from tradercoin.exchange.sim.simulator import Simulator

__all__ = ["DEPTH_LIMITS", "Tape", "book_ticker", "depth", "depth_weight", "ticker_24hr"]

ZERO = Decimal(0)
MINUTE_MS = 60_000
DAY_MS = 86_400_000
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


@dataclass(slots=True)
class _Minute:
    start: int
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = ZERO
    quote: Decimal = ZERO
    count: int = 0
    first_id: int = -1
    last_id: int = -1


class Tape:
    """One symbol's last 24 hours of mark prices and trades, per minute (sync-coloured)."""

    def __init__(self, initial_price: Decimal) -> None:
        self._minutes: collections.deque[_Minute] = collections.deque()
        self._open = initial_price
        self._last_trade_id = -1
        self.last_qty = ZERO
        self.update_id = 1

    def observe(self, price: Decimal, now_ms: int) -> None:
        """Record the mark ``price`` seen at ``now_ms``."""
        minute = self._minute(now_ms, price)
        if price != minute.close:
            self.update_id += 1
        minute.high, minute.low = max(minute.high, price), min(minute.low, price)
        minute.close = price

    def trade(self, trade_id: int, price: Decimal, qty: Decimal, now_ms: int) -> None:
        """Count one trade (once per trade id: both sides of a trade share it)."""
        if trade_id <= self._last_trade_id:
            return
        self._last_trade_id = trade_id
        minute = self._minute(now_ms, price)
        minute.volume += qty
        minute.quote += qty * price
        minute.count += 1
        minute.first_id = trade_id if minute.first_id < 0 else minute.first_id
        minute.last_id = trade_id
        self.last_qty = qty
        self.touch()

    def touch(self) -> None:
        """The book changed (an order rested, filled, or left)."""
        self.update_id += 1

    def _minute(self, now_ms: int, price: Decimal) -> _Minute:
        start = now_ms - now_ms % MINUTE_MS
        if not self._minutes or self._minutes[-1].start != start:
            close = self._minutes[-1].close if self._minutes else self._open
            self._minutes.append(_Minute(start, close, close, close))
            self._prune(now_ms)
        return self._minutes[-1]

    def _prune(self, now_ms: int) -> None:
        while self._minutes and self._minutes[0].start + MINUTE_MS <= now_ms - DAY_MS:
            self._open = self._minutes.popleft().close

    def window(self, now_ms: int) -> list[_Minute]:
        self._prune(now_ms)
        return list(self._minutes)

    @property
    def open_price(self) -> Decimal:
        """The price at the start of the 24-hour window."""
        return self._open


# --- routes ------------------------------------------------------------------------------


def ticker_24hr(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v1/ticker/24hr``: one symbol, or every symbol as a list."""
    if call.params.get("symbol"):
        return _ticker(sim, symbol_of(call.params, sim.specs), call.now_ms)
    return [_ticker(sim, spec, call.now_ms) for spec in sim.specs.values()]


def _ticker(sim: Simulator, spec: SymbolSpec, now_ms: int) -> dict[str, Any]:
    last = sim.mark(spec.symbol)
    tape = sim.tapes[spec.symbol]
    minutes = tape.window(now_ms)
    open_price = tape.open_price
    volume = sum((m.volume for m in minutes), ZERO)
    quote = sum((m.quote for m in minutes), ZERO)
    traded = [m for m in minutes if m.count]
    return {
        "symbol": spec.symbol,
        "priceChange": spec.fmt_price(last - open_price),
        "priceChangePercent": f"{(last - open_price) / open_price * 100:.3f}",
        "weightedAvgPrice": spec.fmt_price(quote / volume if volume else last),
        "lastPrice": spec.fmt_price(last),
        "lastQty": spec.fmt_qty(tape.last_qty if traded else ZERO),
        "openPrice": spec.fmt_price(open_price),
        "highPrice": spec.fmt_price(max([open_price, last, *(m.high for m in minutes)])),
        "lowPrice": spec.fmt_price(min([open_price, last, *(m.low for m in minutes)])),
        "volume": spec.fmt_qty(volume),
        "quoteVolume": f"{quote:.2f}",
        "openTime": now_ms - DAY_MS,
        "closeTime": now_ms,
        "firstId": traded[0].first_id if traded else -1,
        "lastId": traded[-1].last_id if traded else -1,
        "count": sum(m.count for m in traded),
    }


def book_ticker(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v1/ticker/bookTicker``: best bid and ask, one symbol or all."""
    if call.params.get("symbol"):
        return _book_ticker(sim, symbol_of(call.params, sim.specs), call.now_ms)
    return [_book_ticker(sim, spec, call.now_ms) for spec in sim.specs.values()]


def _book_ticker(sim: Simulator, spec: SymbolSpec, now_ms: int) -> dict[str, Any]:
    bids, asks = _book(sim, spec, 1)
    return {
        "symbol": spec.symbol,
        "bidPrice": spec.fmt_price(bids[0][0]),
        "bidQty": spec.fmt_qty(bids[0][1]),
        "askPrice": spec.fmt_price(asks[0][0]),
        "askQty": spec.fmt_qty(asks[0][1]),
        "time": now_ms,
    }


def depth_limit(params: Mapping[str, str]) -> int:
    """The ``limit`` parameter of ``/fapi/v1/depth`` (default 500).

    Raises:
        ApiError: -1100 when it is not one of :data:`DEPTH_LIMITS`.
    """
    limit = parse_int(params, "limit")
    if limit is None:
        return 500
    if limit not in DEPTH_LIMITS:
        raise ApiError(
            -1100,
            "Illegal characters found in parameter 'limit'; legal range is "
            "'5, 10, 20, 50, 100, 500, 1000'.",
        )
    return limit


def depth_weight(params: Mapping[str, str]) -> int:
    """2 for limit 5-50, 5 for 100, 10 for 500 (the default), 20 for 1000."""
    raw = params.get("limit") or "500"
    limit = int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 8 else 500
    return 2 if limit <= 50 else 5 if limit <= 100 else 10 if limit <= 500 else 20


def depth(sim: Simulator, call: Call) -> Any:
    """``GET /fapi/v1/depth``: ``limit`` price levels each side."""
    spec = symbol_of(call.params, sim.specs)
    limit = depth_limit(call.params)
    bids, asks = _book(sim, spec, limit)
    return {
        "lastUpdateId": sim.tapes[spec.symbol].update_id,
        "E": call.now_ms,
        "T": call.now_ms,
        "bids": [[spec.fmt_price(p), spec.fmt_qty(q)] for p, q in bids],
        "asks": [[spec.fmt_price(p), spec.fmt_qty(q)] for p, q in asks],
    }


Levels = list[tuple[Decimal, Decimal]]


def _book(sim: Simulator, spec: SymbolSpec, limit: int) -> tuple[Levels, Levels]:
    """The ``limit`` best levels each side: makers' quotes plus resting orders."""
    mark = sim.mark(spec.symbol)
    tick = spec.tick_size
    bids = {mark - i * tick: spec.liquidity for i in range(limit) if mark - i * tick > 0}
    asks = {mark + (i + 1) * tick: spec.liquidity for i in range(limit)}
    if limit > 1:
        _add_resting(sim.resting_orders(spec.symbol), bids, asks)
    best_bids = sorted(bids.items(), reverse=True)[:limit]
    best_asks = sorted(asks.items())[:limit]
    return best_bids, best_asks


def _add_resting(
    orders: Iterable[SimOrder], bids: dict[Decimal, Decimal], asks: dict[Decimal, Decimal]
) -> None:
    for order in orders:
        if order.type != "LIMIT" or not order.is_open:
            continue
        side = bids if order.side == "BUY" else asks
        side[order.price] = side.get(order.price, ZERO) + order.remaining
