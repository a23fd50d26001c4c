"""One account's new-order rate: place no order the exchange would refuse with -1015.

Binance limits new orders per *account* (USDⓈ-M futures: 300 per 10 s and 1,200 per minute,
``rateLimits`` of type ``ORDERS`` in exchangeInfo) apart from the IP's request weight, and
states the account's counts in ``X-MBX-ORDER-COUNT-10S`` / ``-1M`` on every order answer.
Those are counts in the current window of each interval, so a place is refused here (and the
caller told when to try again) once the last stated count has reached the limit and that
window has not ended yet; a -1015 answer pauses the account's places for its Retry-After (or
the rest of the window) and teaches the limit the exchange stated. Only this account waits:
the IP's weight budget (and every other user) is untouched. No I/O, no trio: times are
exchange epoch milliseconds passed in.
"""

from __future__ import annotations

from dataclasses import dataclass

from tradercoin.exchange.protocol import OrderCounts

__all__ = ["DEFAULT_ORDER_LIMITS", "OrderRateGate"]

DEFAULT_ORDER_LIMITS = {10_000: 300, 60_000: 1200}  # window ms -> orders


@dataclass(slots=True)
class OrderRateGate:
    """When this account may place its next order.

    ``limits`` maps a window's length (ms) to the orders it allows.
    """

    limits: dict[int, int]
    paused_until_ms: int = 0
    refused: int = 0

    @classmethod
    def binance(cls) -> OrderRateGate:
        return cls(dict(DEFAULT_ORDER_LIMITS))

    def wait_ms(self, counts: OrderCounts | None, now_ms: int) -> int:
        """How long the next place must wait (0: send it now)."""
        wait = max(0, self.paused_until_ms - now_ms)
        if counts is None:
            return wait
        for window, count in ((10_000, counts.count_10s), (60_000, counts.count_1m)):
            limit = self.limits.get(window)
            if count is None or limit is None or count < limit:
                continue
            window_end = counts.at_ms - counts.at_ms % window + window
            wait = max(wait, window_end - now_ms)
        return wait

    def refused_by_exchange(
        self, retry_after: float, limit: int | None, window: float | None, now_ms: int
    ) -> None:
        """A -1015: pause places for ``retry_after`` s; remember a stated limit."""
        self.refused += 1
        self.paused_until_ms = max(self.paused_until_ms, now_ms + int(retry_after * 1000))
        if limit is not None and window is not None:
            self.limits[int(window * 1000)] = limit
