"""Malformed exchange answers never crash an actor: the trading scenario runs while the
simulator answers 200 with garbage (an HTML page, JSON cut in half, strings and numbers
swapped, fields missing) on each path the actors use, and while the user stream sends order
events of the wrong shape. Every check of the fault matrix holds: our database ends equal
to the exchange's truth within the stated bound, sessions get each change once in order,
nothing is placed twice, and no actor ever restarts.
"""

from __future__ import annotations

import pytest
import trio

from tests.reliability.scenario import (
    ORDER,
    POLL_INTERVAL,
    RECONCILE,
    RESOLVE,
    Case,
    both,
    fault,
    run_case,
    skew,
)
from tradercoin.exchange.sim import FaultKind

GARBLED = [
    FaultKind.GARBLED_HTML,
    FaultKind.TRUNCATED_JSON,
    FaultKind.WRONG_TYPES,
    FaultKind.MISSING_FIELDS,
]
HITS = 2  # garbled answers per user and path


def _cases() -> list[Case]:
    cases = []
    for kind in GARBLED:
        name = kind.value
        garbage = fault(kind, path=ORDER, count=HITS)
        cases += [
            # a place answered with garbage may have happened: resolved by client order id
            Case(f"{name}-place", RESOLVE, at_start=garbage),
            # a cancel answered with garbage: "try again", and the retry finds it canceled
            Case(f"{name}-cancel", RESOLVE, before_cancels=garbage),
            # a poll, or its fill fetch, answered with garbage: tried again next interval
            Case(f"{name}-openOrders", HITS * POLL_INTERVAL,
                 at_start=fault(kind, path="/fapi/v1/openOrders", count=HITS)),
            Case(f"{name}-userTrades", HITS * POLL_INTERVAL,
                 at_start=fault(kind, path="/fapi/v1/userTrades", count=HITS)),
            # the listenKey, recreated after it expired: the stream is retried, and polls run
            # at the user's interval meanwhile
            Case(f"{name}-listenKey", RECONCILE, stream=True,
                 at_start=both(fault(kind, path="/fapi/v1/listenKey", count=HITS),
                               fault(FaultKind.LISTEN_KEY_EXPIRED))),
            # the server time (unsigned), fetched to recover from -1021: requests fail until
            # it parses
            Case(f"{name}-time", HITS * POLL_INTERVAL + RESOLVE, at_start=skew(-3.0),
                 once=fault(kind, path="/fapi/v1/time", count=HITS, anyone=True)),
        ]  # fmt: skip
    stream = fault(FaultKind.STREAM_GARBLED, count=20)
    return [*cases, Case("stream-garbled", RECONCILE, stream=True, at_start=stream)]


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
async def test_garbage_never_crashes_an_actor(case: Case, autojump_clock: trio.abc.Clock) -> None:
    await run_case(case)
