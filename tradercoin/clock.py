"""The one injected wall clock.

Scheduling inside the service uses trio's clock only (``trio.current_time``, ``trio.sleep``,
cancel-scope deadlines). Timestamps that leave the process (exchange ``timestamp`` parameters,
``created_at`` columns, the seed's ``timestamp`` key) come from a :class:`WallClock`: epoch
milliseconds anchored once and advanced by trio's clock, so under
``trio.testing.MockClock`` the whole system, simulator included, sees the same repeatable time.
"""

from __future__ import annotations

import time
from typing import Protocol

import trio

__all__ = ["FixedEpochClock", "WallClock", "system_clock"]


class WallClock(Protocol):
    def now_ms(self) -> int:
        """Epoch milliseconds. Sync-coloured: never blocks."""
        ...


class FixedEpochClock:
    """Epoch milliseconds = ``epoch_ms`` + trio's elapsed time since construction.

    Must be constructed and used inside ``trio.run``.
    """

    def __init__(self, epoch_ms: int) -> None:
        self._epoch_ms = epoch_ms
        self._trio_start = trio.current_time()

    def now_ms(self) -> int:
        return self._epoch_ms + int((trio.current_time() - self._trio_start) * 1000)


def system_clock() -> FixedEpochClock:
    """A clock anchored to the real wall clock now: the only place the service reads it."""
    return FixedEpochClock(int(time.time() * 1000))
