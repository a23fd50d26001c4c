"""ConnectionBudget: the process-wide budget of user-stream connection attempts.

Binance refuses more than 300 WebSocket handshakes per 5 minutes per IP (429), then bans the
IP (418). The budget sits beside the weight budget (:class:`~tradercoin.actors.governor.
RateGovernor`), one per process, and every handshake the stream hub makes first waits in
:meth:`ConnectionBudget.acquire`: attempts are paced (``spacing`` seconds apart) and at most
``attempts_per_window`` fall in any ``window`` seconds (sliding, default 100 per 5 minutes,
a third of the exchange's limit, leaving room for other processes on the IP and for
mistakes). A refusal pauses every attempt: 429 until its Retry-After, 418 until the ban ends.

Sync-coloured methods never block; only :meth:`acquire` waits.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import trio

__all__ = ["BudgetStatistics", "ConnectionBudget"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BudgetStatistics:
    attempts_in_window: int
    attempts_per_window: int
    attempts_total: int
    refusals: int  # 429 answers to our handshakes
    bans: int  # 418 answers
    paused_for: float  # seconds until attempts may resume (0 when not paused)
    waiting: int  # callers queued in acquire()


class ConnectionBudget:
    """Paced handshake attempts under a sliding window. One per process (per egress IP).

    Args:
        attempts_per_window: attempts allowed in any ``window`` seconds (default 100).
        window: the window's length in seconds (Binance: 300).
        spacing: the least time between two attempts (default 0.5 s).
    """

    def __init__(
        self, *, attempts_per_window: int = 100, window: float = 300.0, spacing: float = 0.5
    ) -> None:
        if attempts_per_window <= 0 or window <= 0 or spacing < 0:
            raise ValueError("attempts_per_window and window must be > 0, spacing >= 0")
        self.attempts_per_window = attempts_per_window
        self.window = window
        self.spacing = spacing
        self._times: deque[float] = deque()
        self._last = -math.inf
        self._paused_until = -math.inf
        self._total = self._refusals = self._bans = self._waiting = 0
        self._queue = trio.Lock()  # FIFO: one waiter watches the clock at a time

    async def acquire(self) -> None:
        """Wait until one attempt fits (pace, window, no pause), then record it.

        Waiters are served first come, first served. Cancellation records nothing.
        """
        self._waiting += 1
        try:
            async with self._queue:
                # a loop, not an Event: a refusal may extend the pause while we sleep
                while (when := self.next_slot()) > trio.current_time():  # noqa: ASYNC110
                    await trio.sleep_until(when)
                self._record(trio.current_time())
        finally:
            self._waiting -= 1

    def next_slot(self) -> float:
        """The trio time from which an attempt may be made (now, if now). Records nothing."""
        now = trio.current_time()
        self._expire(now)
        when = max(self._paused_until, self._last + self.spacing)
        if len(self._times) >= self.attempts_per_window:
            when = max(when, self._times[0] + self.window)
        return max(when, now)

    def refused(self, retry_after: float) -> None:
        """A handshake got 429: no attempt for ``retry_after`` seconds (at least 1)."""
        self._refusals += 1
        self._pause(max(retry_after, 1.0))
        log.warning("user stream: handshake refused (429); attempts paused %.0fs", retry_after)

    def banned(self, retry_after: float) -> None:
        """A handshake got 418: no attempt until the ban ends. Loud on purpose."""
        self._bans += 1
        self._pause(max(retry_after, 1.0))
        log.error("user stream: IP BANNED for handshakes (418); paused %.0fs", retry_after)

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, trio.current_time() + seconds)

    def _record(self, now: float) -> None:
        self._times.append(now)
        self._last = now
        self._total += 1

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] + self.window <= now:
            self._times.popleft()

    def statistics(self) -> BudgetStatistics:
        now = trio.current_time()
        self._expire(now)
        return BudgetStatistics(
            attempts_in_window=len(self._times),
            attempts_per_window=self.attempts_per_window,
            attempts_total=self._total,
            refusals=self._refusals,
            bans=self._bans,
            paused_for=max(0.0, self._paused_until - now),
            waiting=self._waiting,
        )
