"""RateGovernor: the process-wide exchange weight budget, shared by every actor.

Two halves:

* **Spending.** Every request an actor makes first calls :meth:`RateGovernor.spend` with its
  weight. The governor keeps a sliding one-minute window of what was spent (on trio's clock),
  corrected upwards by the ``X-MBX-USED-WEIGHT-1M`` the client reports through
  :meth:`RateGovernor.on_usage` (other processes on the same IP spend too; the figure counts
  until the end of the exchange's calendar minute, read on the wall clock), and makes the
  caller wait while the window is full, while a 429 pause runs (:meth:`rate_limited`) or while
  the IP is banned (:meth:`banned`).
* **Planning.** Each actor declares its :class:`Demand` (weight per poll cycle, its interval,
  whether it has fast orders). When the total demand exceeds the budget, the governor
  stretches intervals by one common factor per class, fast orders served first: the normal
  class is stretched until the fast class fits, and the fast class only when it alone exceeds
  most of the budget. :meth:`effective_interval` is what an actor should sleep.

Sync-coloured methods never block; only :meth:`spend` and :meth:`wait_unpaused` wait.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import trio

from tradercoin.actors.messages import GovernorStatistics
from tradercoin.clock import WallClock
from tradercoin.exchange.protocol import Usage

__all__ = ["Demand", "RateGovernor"]

log = logging.getLogger(__name__)

#: share of the budget the fast class may take before it is stretched too
FAST_SHARE = 0.8
#: share of the limit that stretching plans for: the rest absorbs bursts (starts, fills,
#: listenKeys), so that at full demand requests rarely wait in :meth:`RateGovernor.spend`
PLAN_SHARE = 0.8
MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Demand:
    """One actor's polling plan: ``weight`` every ``interval`` seconds."""

    weight: float
    interval: float
    fast: bool = False

    @property
    def rate(self) -> float:
        """Weight per second."""
        return self.weight / self.interval


class RateGovernor:
    """The exchange's per-IP weight budget for this process. One per process.

    Args:
        budget_per_minute: the exchange's REQUEST_WEIGHT limit (2,400 for USDⓈ-M futures).
        safety_margin: the share of the budget never planned or spent (default 10 %).
        clock: the wall clock, to convert a ban's end (epoch ms) to trio time.
        window: the accounting window in seconds (the exchange's is one minute).
    """

    def __init__(
        self,
        *,
        budget_per_minute: int = 2400,
        safety_margin: float = 0.10,
        clock: WallClock,
        window: float = 60.0,
    ) -> None:
        if budget_per_minute <= 0 or not (0 <= safety_margin < 1):
            raise ValueError("budget_per_minute must be > 0 and safety_margin in [0, 1)")
        self.budget_per_minute = budget_per_minute
        self.limit = max(1, int(budget_per_minute * (1 - safety_margin)))
        self._clock = clock
        self._window = window
        self._spent: deque[tuple[float, int]] = deque()
        self._window_sum = 0
        self._spent_total = 0
        # (trio time it stops counting, value, our spent_total when reported)
        self._reported: tuple[float, int, int] | None = None
        self._paused_until = -math.inf
        self._banned_until = -math.inf
        self._waits = 0
        self._queue = trio.Lock()  # FIFO: waiters wake one at a time, in order
        self._demands: dict[int, Demand] = {}
        self._rates = [0.0, 0.0]  # [normal, fast] weight per second
        self._reconcile_next = -math.inf  # where the next reconcile slot starts

    # ------------------------------------------------------------ spending

    async def spend(self, weight: int) -> None:
        """Wait until ``weight`` may be spent now, then record it.

        Waits through a 429 pause or a ban, then while the window (with the reported usage)
        has no room. A request heavier than the whole limit is let through on an empty window.
        Waiters are served first come, first served: only the oldest one watches the window.
        """
        async with self._queue:
            await self._spend_in_turn(weight)

    async def _spend_in_turn(self, weight: int) -> None:
        while True:
            now = trio.current_time()
            if self._paused_until > now:
                self._waits += 1
                await trio.sleep_until(self._paused_until)
                continue
            self._expire(now)
            used = self._used(now)
            if used + weight <= self.limit or used == 0:
                self._record(now, weight)
                return
            self._waits += 1
            await trio.sleep_until(self._next_room(now))

    def try_spend(self, weight: int) -> bool:
        """Record ``weight`` and return ``True`` if it may be spent now without waiting
        (nobody queued ahead, no pause); else record nothing and return ``False``."""
        # room_at reads the clock itself: with a real clock its "now" is later than one read
        # here before it, so it is compared with a reading taken after it
        if self._queue.locked() or self.room_at(weight) > (now := trio.current_time()):
            return False
        self._record(now, weight)
        return True

    def room_at(self, weight: int) -> float:
        """The trio time from which ``weight`` could be spent without waiting (now, if now).

        Sync-coloured and recording nothing: an actor asks before starting a poll, and while
        the answer is later it keeps serving its mailbox instead of queueing in :meth:`spend`.
        """
        now = trio.current_time()
        if self._paused_until > now:
            return self._paused_until
        self._expire(now)
        used = self._used(now)
        if used + weight <= self.limit or used == 0:
            return now
        return self._next_room(now)

    async def wait_unpaused(self) -> None:
        """Return once no 429 pause or ban is running (at once if none is)."""
        # a loop, not an Event: another 429 may extend the pause while we sleep
        while self._paused_until > trio.current_time():  # noqa: ASYNC110
            await trio.sleep_until(self._paused_until)

    def on_usage(self, usage: Usage) -> None:
        """The client's callback: note the exchange's own count of this minute's weight."""
        if usage.used_weight_1m is not None:
            # the exchange counts per calendar minute: the figure holds until the minute ends
            rest_ms = MINUTE_MS - self._clock.now_ms() % MINUTE_MS
            until = trio.current_time() + rest_ms / 1000
            self._reported = (until, usage.used_weight_1m, self._spent_total)

    def rate_limited(self, retry_after: float) -> None:
        """A 429 came back: pause all spending for ``retry_after`` seconds."""
        until = trio.current_time() + max(retry_after, 0.0)
        if until > self._paused_until:
            self._paused_until = until
            log.warning("rate limited by the exchange: all polling paused for %.1fs", retry_after)

    def banned(self, until_ms: int) -> None:
        """A 418 came back: the IP is banned until ``until_ms`` (epoch ms). Loud on purpose."""
        until = trio.current_time() + max(until_ms - self._clock.now_ms(), 0) / 1000
        if until <= self._banned_until:
            return  # the ban we know of (every actor in flight reports it)
        self._banned_until = until
        self._paused_until = max(self._paused_until, until)
        log.error(
            "IP BANNED BY THE EXCHANGE until %d (epoch ms, %.0fs from now): ALL polling paused",
            until_ms,
            until - trio.current_time(),
        )

    @property
    def paused_until(self) -> float:
        """Trio time at which the current pause ends (``-inf`` when none runs)."""
        return self._paused_until

    def _record(self, now: float, weight: int) -> None:
        self._spent.append((now, weight))
        self._window_sum += weight
        self._spent_total += weight

    def _expire(self, now: float) -> None:
        # ``t + window <= now``, the very sum _next_room waits for (``now - window`` rounds
        # differently and would leave an entry that _next_room says is gone: a busy loop)
        window = self._window
        while self._spent and self._spent[0][0] + window <= now:
            self._window_sum -= self._spent.popleft()[1]
        if self._reported is not None and self._reported[0] <= now:
            self._reported = None

    def _used(self, now: float) -> int:
        if self._reported is None:
            return self._window_sum
        _, value, spent_then = self._reported
        return max(self._window_sum, value + self._spent_total - spent_then)

    def _next_room(self, now: float) -> float:
        candidates = [now + self._window]
        if self._spent:
            candidates.append(self._spent[0][0] + self._window)
        if self._reported is not None:
            candidates.append(self._reported[0])
        return min(candidates)

    # ------------------------------------------------------------ planning

    def set_demand(self, user_id: int, demand: Demand | None) -> None:
        """Declare (or with ``None`` withdraw) one actor's polling plan. O(1)."""
        old = self._demands.pop(user_id, None)
        if old is not None:
            self._rates[old.fast] -= old.rate
        if demand is not None and demand.weight > 0:
            self._demands[user_id] = demand
            self._rates[demand.fast] += demand.rate
        if not self._demands:
            self._rates = [0.0, 0.0]

    def stretch(self) -> tuple[float, float]:
        """The factors ``(fast, normal)`` by which intervals are stretched now (>= 1)."""
        capacity = self.limit * PLAN_SHARE / self._window
        normal, fast = max(self._rates[0], 0.0), max(self._rates[1], 0.0)
        if fast + normal <= capacity:
            return 1.0, 1.0
        if fast <= capacity * FAST_SHARE:
            return 1.0, normal / (capacity - fast)
        fast_stretch = fast / (capacity * FAST_SHARE)
        normal_stretch = max(1.0, normal / (capacity * (1 - FAST_SHARE)))
        return fast_stretch, normal_stretch

    def reconcile_at(self, weight: float) -> float:
        """The trio time at which a reconcile poll of ``weight`` should run (now, if the
        slots are free), reserving that slot.

        Reconcile polls asked for together (a shared connection dropped, so its users' stream
        went down, then up; thousands of keys confirmed at start) run one after the other at
        the rate the plan leaves free: ``limit - min(demand, PLAN_SHARE * limit)`` weight a
        minute, never less than the ``1 - PLAN_SHARE`` share kept for bursts. ``N`` users of
        cycle weight ``w`` are so spread over ``60 * N * w / free`` seconds instead of one
        burst that would queue every place and cancel behind them: e.g. 1,000 users of
        weight 1 at the 2,160 limit with 500 a minute planned, over 36 s; 10,000 users at
        rest (demand above the plan) over ``60 * 10000 / 432``, 23 minutes, during which
        their ordinary polls run too.
        """
        now = trio.current_time()
        planned = min(sum(self._rates) * 60, self.limit * PLAN_SHARE)
        free = max(self.limit - planned, self.limit * (1 - PLAN_SHARE))
        start = max(now, self._reconcile_next)
        self._reconcile_next = start + weight * 60 / free
        return start

    def effective_interval(self, interval: float, *, fast: bool) -> float:
        """``interval`` stretched by the factor of its class."""
        fast_stretch, normal_stretch = self.stretch()
        return interval * (fast_stretch if fast else normal_stretch)

    # ------------------------------------------------------------ reporting

    def statistics(self) -> GovernorStatistics:
        now = trio.current_time()
        self._expire(now)
        fast_stretch, normal_stretch = self.stretch()
        return GovernorStatistics(
            budget_per_minute=self.budget_per_minute,
            limit_per_minute=self.limit,
            used_weight=self._used(now),
            reported_weight=None if self._reported is None else self._reported[1],
            paused_until=self._to_epoch(self._paused_until, now),
            banned_until=self._to_epoch(self._banned_until, now),
            demand_per_minute=sum(self._rates) * 60,
            stretch_fast=fast_stretch,
            stretch_normal=normal_stretch,
            effective_intervals={
                user: d.interval * (fast_stretch if d.fast else normal_stretch)
                for user, d in self._demands.items()
            },
            weight_spent=self._spent_total,
            waits=self._waits,
        )

    def _to_epoch(self, when: float, now: float) -> int | None:
        if when <= now:
            return None
        return self._clock.now_ms() + int((when - now) * 1000)
