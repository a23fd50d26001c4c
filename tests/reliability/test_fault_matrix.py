"""The fault matrix: the trading scenario (tests/reliability/scenario.py) under each exchange
fault the simulator can inject, on trio's MockClock (autojump).

For every fault, after the scenario's last action:
- our database equals the simulator's truth within ``bound`` seconds of trio time, where
  ``bound = POLL_INTERVAL + FILL_LATENCY + recovery`` (``recovery``: what the fault may add,
  stated per case);
- every session got each change exactly once, in seq order, as stored;
- the exchange holds only orders the service accepted, each once (nothing placed twice);
- every actor is running and never restarted;
- the fault really fired: every armed fault hit at least once (the simulator's own count),
  or for the immediate ones (skew, stream closes, the purge) its trace in what the exchange
  saw;
and nothing changes any more during a further quiet period (no late duplicate, no undo).
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable

import pytest
import trio

from tests.reliability.scenario import (
    OPEN_ORDERS,
    ORDER,
    RECONCILE,
    RESOLVE,
    VANISH,
    Arm,
    Case,
    Trader,
    both,
    fault,
    run_case,
    skew,
)
from tradercoin.exchange.sim import Fault, FaultKind, StreamConfig
from tradercoin.testing import TestSystem, TestUser

THREE_DAYS = 3 * 86_400
LISTEN_KEY = "/fapi/v1/listenKey"


_ARMED: weakref.WeakKeyDictionary[TestSystem, float] = weakref.WeakKeyDictionary()


def closing(kind: FaultKind) -> Arm:
    """Arm an immediate stream fault (DISCONNECT, LISTEN_KEY_EXPIRED), noting when."""
    arm = fault(kind)

    def note_and_arm(system: TestSystem, user: TestUser) -> None:
        _ARMED.setdefault(system, trio.current_time())
        arm(system, user)

    return note_and_arm


def reconnected(system: TestSystem) -> bool:
    """The fault closed a stream: the service opened a connection after it was armed (one
    per user, or one hub connection for all, alike)."""
    armed = _ARMED.get(system, math.inf)
    return any(t >= armed for t, _ in system.stream_connects)


def new_listen_key(system: TestSystem) -> bool:
    """The fault killed a listenKey: the service created one after it was armed."""
    armed = _ARMED.get(system, math.inf)
    return any(
        r.method == "POST" and r.path == LISTEN_KEY and r.time >= armed for r in system.requests
    )


def skewed(seconds: float) -> Callable[[TestSystem], bool]:
    """The server's clock really ran ``seconds`` ahead of ours (the skew is still armed)."""
    return lambda system: system.sim.server_ms() - system.clock.now_ms() == int(seconds * 1000)


def answered_2013(system: TestSystem) -> bool:
    """The exchange answered a query for an order with -2013 (400): it had purged it."""
    return any(r.method == "GET" and r.path == ORDER and r.status == 400 for r in system.requests)


async def _blackout(system: TestSystem, trader: Trader) -> None:
    """Cancel the user's first LIMIT order on the exchange's own site during a 3-day ban: when
    the ban ends the exchange has purged it (canceled, no fill, > 3 days) and answers -2013."""
    system.sim.inject(Fault(FaultKind.BANNED, THREE_DAYS + 60), path=OPEN_ORDERS, count=1)
    system.supervisor.wake(trader.user.user_id)
    await trio.sleep(0.5)
    assert system.governor.paused_until > trio.current_time() + THREE_DAYS
    gone = trader.accepted[3]
    engine = system.sim.engine
    engine.cancel(engine.orders[("BTCUSDT", trader.exchange_id(gone))])
    trader.skip_cancel.add(gone.id or 0)  # canceled by the user, outside the service
    await trio.sleep_until(system.governor.paused_until + 0.1)


CASES = [
    # the governor pauses every actor until Retry-After; places are refused meanwhile
    # (a place's 429 each, and one poll's, which pauses everyone once more after the last action)
    Case("429", 30.0, at_start=fault(FaultKind.RATE_LIMITED, 30, ORDER),
         once=fault(FaultKind.RATE_LIMITED, 30, OPEN_ORDERS, anyone=True)),
    Case("418", 120.0, at_start=fault(FaultKind.BANNED, 120, ORDER),
         once=fault(FaultKind.BANNED, 120, OPEN_ORDERS, anyone=True)),
    # processed, then 503 "Unknown error": resolved by client order id, never sent again
    Case("503-unknown-on-place", RESOLVE, at_start=fault(FaultKind.UNKNOWN_ERROR, path=ORDER)),
    Case("503-unknown-on-cancel", RESOLVE,
         before_cancels=fault(FaultKind.UNKNOWN_ERROR, path=ORDER)),
    Case("503-unavailable", RESOLVE, at_start=fault(FaultKind.UNAVAILABLE, count=3)),
    Case("-1008", RESOLVE, at_start=fault(FaultKind.THROTTLED, count=3)),
    Case("408", RESOLVE, at_start=fault(FaultKind.TIMEOUT, path=ORDER, count=2)),
    # the server 3 s ahead: our timestamps are 3 s old, inside recvWindow (5 s): accepted as
    # they are (no -1021, no resync); 6 s ahead, or 3 s behind (ours 1 s+ in its future):
    # -1021, one resync of the offset, the request sent once more
    Case("skew+3s", 0.0, at_start=skew(3.0),
         hit=lambda system: system.exchange.statistics().resync_retries == 0
         and skewed(3.0)(system)),
    Case("skew+6s", 0.0, at_start=skew(6.0),
         hit=lambda system: system.exchange.statistics().resync_retries > 0),
    Case("skew-3s", 0.0, at_start=skew(-3.0),
         hit=lambda system: system.exchange.statistics().resync_retries > 0),
    Case("403-html", RESOLVE, at_start=fault(FaultKind.WAF_HTML, count=3)),
    Case("latency", 3 * 20.0, at_start=fault(FaultKind.LATENCY, 20.0, count=3)),
    Case("drop-request", VANISH + RESOLVE,
         at_start=fault(FaultKind.DROP_REQUEST, path=ORDER, count=2)),
    Case("drop-response", RESOLVE, at_start=fault(FaultKind.DROP_RESPONSE, path=ORDER, count=2)),
    Case("visibility-delay", RESOLVE,
         at_start=both(fault(FaultKind.VISIBILITY_DELAY, 3.0, ORDER, count=5),
                       fault(FaultKind.UNKNOWN_ERROR, path=ORDER))),
    # stream faults: a missed event is found by the reconciliation poll
    Case("stream-duplicate", RECONCILE, stream=True,
         at_start=fault(FaultKind.STREAM_DUPLICATE, count=20)),
    Case("stream-delay", RECONCILE, stream=True,
         at_start=fault(FaultKind.STREAM_DELAY, 5.0, count=20)),
    Case("stream-drop", RECONCILE, stream=True, at_start=fault(FaultKind.STREAM_DROP, count=20)),
    Case("stream-silent", RECONCILE, stream=True,
         at_start=fault(FaultKind.STREAM_SILENT, count=20)),
    Case("listen-key-expired", RECONCILE, stream=True,
         before_cancels=closing(FaultKind.LISTEN_KEY_EXPIRED), hit=new_listen_key),
    # the exchange's lifetime close (24 h, here 10 min: the same 1001 close) with our own
    # rotation pushed past it, so the exchange's close is what happens
    Case("lifetime-disconnect", RECONCILE, stream=True, sim_options={
        "stream": StreamConfig(lifetime=600.0)}, stream_options={"rotate_after": 86_400.0},
        fills_at=600.0, hit=lambda system: any(t >= 600.0 for t, _ in system.stream_connects)),
    Case("stream-disconnect", RECONCILE, stream=True,
         before_cancels=closing(FaultKind.DISCONNECT), hit=reconnected),
    # a 3-day ban, during which one order is canceled on the exchange's own site: purged
    Case("purge", VANISH, purge=True, during=_blackout, hit=answered_2013),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_fault(case: Case, autojump_clock: trio.abc.Clock) -> None:
    await run_case(case)
