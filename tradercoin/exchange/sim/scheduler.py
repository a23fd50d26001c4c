"""One task that runs callbacks at times on trio's clock (market fills, listenKey expiry,
delayed stream events, GTD expiry), so the simulator needs no task per pending action."""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable

import trio

__all__ = ["Scheduler"]


class Scheduler:
    """A heap of ``(when, callback)`` run by :meth:`run`; callbacks are sync and must not raise."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._wake = trio.Event()

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        """Run ``callback`` once trio's clock reaches ``when`` (sync-coloured, never blocks)."""
        heapq.heappush(self._heap, (when, next(self._seq), callback))
        if self._heap[0][0] == when:
            self._wake.set()

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.call_at(trio.current_time() + delay, callback)

    def pending(self) -> int:
        return len(self._heap)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Runs due callbacks until cancelled; sleeps until the earliest one otherwise."""
        task_status.started()
        while True:
            self._wake = trio.Event()
            deadline = self._heap[0][0] if self._heap else math.inf
            with trio.move_on_at(deadline):
                await self._wake.wait()
            self._run_due(trio.current_time())

    def _run_due(self, now: float) -> None:
        while self._heap and self._heap[0][0] <= now:
            _, _, callback = heapq.heappop(self._heap)
            callback()
