"""PriceFeed: the exchange's mark prices, read once for the whole process and fanned out.

Sessions that want prices subscribe with the symbols they show; the feed reads
``GET /fapi/v1/premiumIndex`` once per ``interval`` for the union of those symbols (one call
per symbol, weight 1, or one call for all, weight 10, when that is cheaper), only while
someone is subscribed, and only when the shared weight budget has room (prices never wait
for the budget: a tick without room is skipped). Each subscriber gets
``{"type": "price", "symbol", "mark_price", "index_price", "time"}`` for every symbol whose
price changed, at most once per interval per symbol (the throttle), on its own bounded
channel: a subscriber that is behind misses that tick (a price is superseded by the next),
and never slows the feed or the others.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import trio

from tradercoin.exchange.account_data import MarkPrice
from tradercoin.exchange.errors import ExchangeError

__all__ = ["PRICE_MESSAGE", "PriceFeed", "PriceFeedStatistics", "Subscription"]

log = logging.getLogger(__name__)

PRICE_MESSAGE = "price"
ALL_SYMBOLS_WEIGHT = 10
CHANNEL_SIZE = 16
MAX_SYMBOLS = 20


class MarkPriceSource(Protocol):
    async def mark_prices(self, symbol: str | None = None) -> list[MarkPrice]: ...


class Budget(Protocol):
    def try_spend(self, weight: int) -> bool: ...


@dataclass(frozen=True, slots=True)
class PriceFeedStatistics:
    subscribers: int
    symbols: int
    reads: int
    skipped_for_budget: int
    errors: int
    sent: int
    dropped: int


class Subscription:
    """One subscriber: the symbols it wants and the channel its prices arrive on."""

    __slots__ = ("receive", "send", "symbols")

    def __init__(self, symbols: frozenset[str]) -> None:
        self.symbols = symbols
        self.send, self.receive = trio.open_memory_channel[dict[str, Any]](CHANNEL_SIZE)


def price_message(mark: MarkPrice) -> dict[str, Any]:
    return {
        "type": PRICE_MESSAGE,
        "symbol": mark.symbol,
        "mark_price": format(mark.mark_price, "f"),
        "index_price": None if mark.index_price is None else format(mark.index_price, "f"),
        "time": mark.time,
    }


class PriceFeed:
    """Owns the read loop (:meth:`run`) and the subscribers' send channels.

    Args:
        source: has ``mark_prices(symbol=None)`` (the process-wide exchange client).
        budget: the rate governor (``try_spend``).
        known: the symbols that exist (others are ignored when subscribing).
        interval: seconds between reads, so the most a symbol's price is sent per second.
    """

    def __init__(
        self,
        source: MarkPriceSource,
        budget: Budget,
        *,
        known: Iterable[str] = (),
        interval: float = 1.0,
    ) -> None:
        self._source = source
        self._budget = budget
        self._known = frozenset(known)
        self.interval = interval
        self._subscribers: set[Subscription] = set()
        self._latest: dict[str, MarkPrice] = {}
        self._wanted = trio.Event()
        self._reads = self._skipped = self._errors = self._sent = self._dropped = 0

    # ------------------------------------------------------------------ subscribers

    @contextmanager
    def subscribe(self, symbols: Iterable[str]) -> Iterator[Subscription]:
        """Receive price messages for ``symbols`` (unknown ones ignored, at most 20) while
        inside the ``with``; the latest known price of each is queued at once."""
        sub = Subscription(self._usable(symbols))
        self._subscribers.add(sub)
        self._wanted.set()
        try:
            for symbol in sub.symbols:
                if symbol in self._latest:
                    self._offer(sub, price_message(self._latest[symbol]))
            yield sub
        finally:
            self._subscribers.discard(sub)
            sub.send.close()

    def _usable(self, symbols: Iterable[str]) -> frozenset[str]:
        wanted = [s.upper() for s in symbols if isinstance(s, str)]
        return frozenset(s for s in wanted if not self._known or s in self._known)

    def latest(self, symbol: str) -> MarkPrice | None:
        """The last mark price read for ``symbol`` (``None`` if never). Sync-coloured."""
        return self._latest.get(symbol)

    def statistics(self) -> PriceFeedStatistics:
        return PriceFeedStatistics(
            subscribers=len(self._subscribers),
            symbols=len(self._symbols()),
            reads=self._reads,
            skipped_for_budget=self._skipped,
            errors=self._errors,
            sent=self._sent,
            dropped=self._dropped,
        )

    def _symbols(self) -> set[str]:
        wanted: set[str] = set()
        for sub in self._subscribers:
            wanted |= sub.symbols
        return wanted

    # ------------------------------------------------------------------ the loop

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Read and fan out every ``interval`` while anyone subscribes; idle otherwise.

        Returns: runs until cancelled. Error handling: an exchange error is counted and
        logged; the next tick tries again.
        """
        task_status.started()
        next_at = trio.current_time()
        while True:
            if not self._symbols():
                self._wanted = trio.Event()
                await self._wanted.wait()
                next_at = trio.current_time()
            await trio.sleep_until(next_at)
            next_at = max(next_at + self.interval, trio.current_time())
            await self.tick()

    async def tick(self) -> None:
        """One read of the wanted symbols and the fan-out of what changed."""
        symbols = sorted(self._symbols())
        if not symbols:
            return
        try:
            marks = await self._read(symbols)
        except ExchangeError as error:
            self._errors += 1
            log.info("mark prices unavailable: %s", error)
            return
        for mark in marks:
            self._publish(mark)

    async def _read(self, symbols: list[str]) -> list[MarkPrice]:
        if len(symbols) >= ALL_SYMBOLS_WEIGHT:
            if not self._budget.try_spend(ALL_SYMBOLS_WEIGHT):
                self._skipped += 1
                return []
            self._reads += 1
            wanted = set(symbols)
            return [m for m in await self._source.mark_prices() if m.symbol in wanted]
        marks: list[MarkPrice] = []
        for symbol in symbols:
            if not self._budget.try_spend(1):
                self._skipped += 1
                break
            self._reads += 1
            marks.extend(await self._source.mark_prices(symbol))
        return marks

    def _publish(self, mark: MarkPrice) -> None:
        before = self._latest.get(mark.symbol)
        self._latest[mark.symbol] = mark
        if before is not None and before.mark_price == mark.mark_price:
            return
        message = price_message(mark)
        for sub in list(self._subscribers):
            if mark.symbol in sub.symbols:
                self._offer(sub, message)

    def _offer(self, sub: Subscription, message: dict[str, Any]) -> None:
        try:
            sub.send.send_nowait(message)
            self._sent += 1
        except trio.WouldBlock:
            self._dropped += 1
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._subscribers.discard(sub)
