"""The simulated markets: symbol specifications, their filters, decimal formatting and the
seeded random-walk price of each symbol.

Filter values follow the live USDⓈ-M contracts closely enough for clients to meet the same
rules (tick size, step size, min quantity, min notional, percent-price band).
"""

from __future__ import annotations

import collections
import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from tradercoin.exchange.sim.errors import DECIMAL_RANGE, bad_precision, illegal_chars

__all__ = ["DEFAULT_SYMBOLS", "PriceWalk", "SymbolSpec", "parse_decimal"]

_DECIMAL_RE = re.compile(DECIMAL_RANGE, re.ASCII)


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One perpetual contract: its precisions, filters and the walk's starting point.

    ``liquidity`` is the most one order fills per matching step, so large orders fill in
    parts; ``volatility`` is the standard deviation of the log price per second.
    """

    symbol: str
    base_asset: str
    price_precision: int
    quantity_precision: int
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    initial_price: Decimal
    liquidity: Decimal
    multiplier_up: Decimal = Decimal("1.0500")
    multiplier_down: Decimal = Decimal("0.9500")
    volatility: float = 0.0002
    quote_asset: str = "USDT"

    @property
    def quote_precision(self) -> int:
        return self.price_precision + self.quantity_precision

    def fmt_price(self, value: Decimal) -> str:
        return _fmt(value, self.price_precision)

    def fmt_qty(self, value: Decimal) -> str:
        return _fmt(value, self.quantity_precision)

    def fmt_quote(self, value: Decimal) -> str:
        return _fmt(value, self.quote_precision)

    def fmt_avg(self, value: Decimal) -> str:
        return _fmt(value, max(self.price_precision, 5))

    def round_price(self, value: Decimal) -> Decimal:
        """The nearest valid tick, never below one tick."""
        ticks = (value / self.tick_size).to_integral_value(ROUND_HALF_EVEN)
        return max(ticks, Decimal(1)) * self.tick_size

    def exchange_info(self) -> dict[str, Any]:
        """This symbol's entry in ``GET /fapi/v1/exchangeInfo``."""
        return {
            "symbol": self.symbol,
            "pair": self.symbol,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": self.base_asset,
            "quoteAsset": self.quote_asset,
            "marginAsset": self.quote_asset,
            "pricePrecision": self.price_precision,
            "quantityPrecision": self.quantity_precision,
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": [],
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": self._filters(),
            "orderTypes": [
                "LIMIT",
                "MARKET",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
                "TRAILING_STOP_MARKET",
            ],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
        }

    def _filters(self) -> list[dict[str, Any]]:
        return [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": str(self.min_price),
                "maxPrice": str(self.max_price),
                "tickSize": str(self.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": str(self.min_qty),
                "maxQty": str(self.max_qty),
                "stepSize": str(self.step_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": str(self.min_qty),
                "maxQty": str(self.market_max_qty),
                "stepSize": str(self.step_size),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MIN_NOTIONAL", "notional": str(self.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": str(self.multiplier_up),
                "multiplierDown": str(self.multiplier_down),
                "multiplierDecimal": "4",
            },
        ]


def _fmt(value: Decimal, places: int) -> str:
    return f"{value:.{places}f}"


def parse_decimal(name: str, raw: str, places: int | None = None) -> Decimal:
    """A decimal parameter as Binance reads it.

    Raises:
        ApiError: -1100 for anything but digits with an optional fraction; -1111 when it has
            more decimals than ``places``.
    """
    if not _DECIMAL_RE.fullmatch(raw):
        raise illegal_chars(name, DECIMAL_RANGE)
    value = Decimal(raw)
    if places is not None:
        exponent = value.normalize().as_tuple().exponent
        assert isinstance(exponent, int)
        if -exponent > places:
            raise bad_precision()
    return value


def _spec(
    symbol: str,
    base: str,
    pp: int,
    qp: int,
    tick: str,
    step: str,
    min_qty: str,
    max_qty: str,
    market_max: str,
    notional: str,
    price: str,
    liquidity: str,
    min_price: str,
    max_price: str,
) -> SymbolSpec:
    return SymbolSpec(
        symbol=symbol,
        base_asset=base,
        price_precision=pp,
        quantity_precision=qp,
        tick_size=Decimal(tick),
        min_price=Decimal(min_price),
        max_price=Decimal(max_price),
        step_size=Decimal(step),
        min_qty=Decimal(min_qty),
        max_qty=Decimal(max_qty),
        market_max_qty=Decimal(market_max),
        min_notional=Decimal(notional),
        initial_price=Decimal(price),
        liquidity=Decimal(liquidity),
    )


DEFAULT_SYMBOLS: tuple[SymbolSpec, ...] = (
    _spec(
        "BTCUSDT",
        "BTC",
        2,
        3,
        "0.10",
        "0.001",
        "0.001",
        "1000",
        "120",
        "100",
        "50000.00",
        "2",
        "261.10",
        "809484",
    ),
    _spec(
        "ETHUSDT",
        "ETH",
        2,
        3,
        "0.01",
        "0.001",
        "0.001",
        "10000",
        "2000",
        "20",
        "3000.00",
        "40",
        "39.86",
        "306177",
    ),
    _spec(
        "BNBUSDT",
        "BNB",
        3,
        2,
        "0.010",
        "0.01",
        "0.01",
        "100000",
        "2000",
        "5",
        "600.000",
        "200",
        "6.600",
        "100000",
    ),
    _spec(
        "SOLUSDT",
        "SOL",
        4,
        0,
        "0.0100",
        "1",
        "1",
        "1000000",
        "5000",
        "5",
        "150.0000",
        "1000",
        "0.4200",
        "6857",
    ),
    _spec(
        "XRPUSDT",
        "XRP",
        4,
        1,
        "0.0001",
        "0.1",
        "0.1",
        "10000000",
        "2000000",
        "5",
        "0.6000",
        "200000",
        "0.0143",
        "100000",
    ),
)


class PriceWalk:
    """A seeded geometric random walk on a fixed step grid, advanced lazily.

    The price at step ``k`` depends only on the seed and on how the walk was sampled, so a
    scripted run is repeatable. Steps that nobody looked at are folded into one draw with
    the summed variance (the same distribution), so hours of idle virtual time cost nothing;
    :meth:`ahead` draws future steps one by one and keeps them, so the simulator can sleep
    straight to the next step that fills something.
    """

    def __init__(
        self, spec: SymbolSpec, seed: int, step_seconds: float, volatility_scale: float = 1.0
    ) -> None:
        self._spec = spec
        self._rng = random.Random(f"{seed}:{spec.symbol}")
        self._sigma = spec.volatility * volatility_scale * math.sqrt(step_seconds)
        self._step = 0
        self._path: collections.deque[Decimal] = collections.deque()
        self.price = spec.initial_price

    @property
    def moves(self) -> bool:
        return self._sigma > 0

    def advance_to(self, step: int) -> None:
        """Move the walk to ``step`` (a step already passed is a no-op)."""
        count = step - self._step
        if count <= 0:
            return
        self._step = step
        while count and self._path:
            self.price = self._path.popleft()
            count -= 1
        if count:
            self.price = self._draw(self.price, count)

    def ahead(self, steps: int) -> collections.deque[Decimal]:
        """The prices of the next ``steps`` steps (at least), drawn now and kept."""
        while len(self._path) < steps:
            self._path.append(self._draw(self._path[-1] if self._path else self.price, 1))
        return self._path

    def set(self, price: Decimal) -> None:
        """Jump to ``price`` now; the future is drawn afresh from there."""
        self.price = self._spec.round_price(price)
        self._path.clear()

    def _draw(self, price: Decimal, steps: int) -> Decimal:
        if not self._sigma:
            return price
        shock = self._rng.gauss(0.0, self._sigma * math.sqrt(steps))
        return self._spec.round_price(price * Decimal(repr(math.exp(shock))))


def symbols_by_name(specs: Sequence[SymbolSpec]) -> dict[str, SymbolSpec]:
    return {spec.symbol: spec for spec in specs}
