"""The model-based test's vocabulary: the steps of a schedule and the strategies that draw
them (see tests/model/test_model.py for how they run and what is checked).

A step names users by index (0 or 1) and orders by index modulo what exists when it runs
(the exchange's open orders of that user, or the ids the service returned), so every list
of steps is runnable and hypothesis can shrink a schedule by deleting steps or lowering
numbers. Each step is a frozen dataclass whose ``repr`` is the Python that rebuilds it: a
failing schedule printed by hypothesis pastes straight into a regression test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hypothesis import strategies as st

from tradercoin.exchange.sim import FaultKind, Simulator
from tradercoin.testing import TestUser

__all__ = [
    "USERS",
    "Advance",
    "Attach",
    "Cancel",
    "CancelAll",
    "CrashActor",
    "Detach",
    "DropStream",
    "Fill",
    "Inject",
    "Mark",
    "Match",
    "OrderLimit",
    "Place",
    "Restart",
    "Resume",
    "Schedule",
    "Step",
    "schedules",
]

USERS = 2
SYMBOLS = ("BTCUSDT", "ETHUSDT")
# BTCUSDT fills at most 2 per step, ETHUSDT 40: the large sizes fill in parts
QUANTITIES = {"BTCUSDT": ("0.010", "0.500", "3.000"), "ETHUSDT": ("0.100", "50.000")}
ORDER = "/fapi/v1/order"
OPEN_ORDERS = "/fapi/v1/openOrders"
HAS_CANCEL_ALL = hasattr(TestUser, "cancel_all")
HAS_ORDER_LIMITS = hasattr(Simulator, "set_order_limits")


@dataclass(frozen=True)
class Place:
    """``user`` places through its actor; a LIMIT/IOC price is the mark moved by
    ``offset`` tenths of a percent (a BUY above the mark crosses it, and so on)."""

    user: int
    symbol: str
    side: Literal["BUY", "SELL"]
    kind: Literal["MARKET", "LIMIT", "IOC"]
    qty: str
    offset: int = 0


@dataclass(frozen=True)
class Cancel:
    """``user`` cancels the ``order``-th (mod count) order the service returned to it."""

    user: int
    order: int


@dataclass(frozen=True)
class CancelAll:
    user: int
    symbol: str


@dataclass(frozen=True)
class Fill:
    """The exchange fills the ``order``-th open order of ``user``: all of it when
    ``quarters`` is 0, else that many quarters of what remains."""

    user: int
    order: int
    quarters: int = 0


@dataclass(frozen=True)
class Match:
    """The other user places (through its actor) a LIMIT at the price of ``maker``'s
    ``order``-th open LIMIT order, on the other side, for what remains of it: on one book
    per symbol the two of our users trade with each other."""

    maker: int
    order: int


@dataclass(frozen=True)
class Mark:
    """The mark of ``symbol`` moves by ``percent`` (crossed resting orders fill)."""

    symbol: str
    percent: int


@dataclass(frozen=True)
class Inject:
    """Arm a simulator fault for ``count`` hits (for ``user``'s keys, or anyone's)."""

    kind: str
    user: int | None = None
    path: str | None = None
    count: int = 1


@dataclass(frozen=True)
class OrderLimit:
    """The exchange gives ``user``'s account its own order-rate limit: ``per_10s`` new
    orders per 10 s (and 10 times that per minute); beyond it places get -1015 (429)."""

    user: int
    per_10s: int


@dataclass(frozen=True)
class Advance:
    seconds: float


@dataclass(frozen=True)
class DropStream:
    """The exchange closes ``user``'s stream connection (``expire``: kills its listenKey)."""

    user: int
    expire: bool = False


@dataclass(frozen=True)
class CrashActor:
    """``user``'s actor raises; the supervisor restarts it after its back-off."""

    user: int


@dataclass(frozen=True)
class Restart:
    """The whole service stops and starts again on the same database (the exchange runs
    on); every open tab reconnects with ``since`` = the last seq it got."""


@dataclass(frozen=True)
class Attach:
    """``user`` opens another tab (live, no replay): through ``/ws`` of the app with
    ``ws``, else a session attached to the actor directly."""

    user: int
    ws: bool = False


@dataclass(frozen=True)
class Detach:
    """``user`` closes its ``tab``-th extra tab (the first tab is never closed)."""

    user: int
    tab: int


@dataclass(frozen=True)
class Resume:
    """``user`` opens a tab that resumes ``back`` seqs before the last one its
    ``tab``-th tab got (a browser reconnecting from an old seq)."""

    user: int
    tab: int
    back: int
    ws: bool = False


Step = (
    Place | Cancel | CancelAll | Fill | Match | Mark | Inject | OrderLimit | Advance | DropStream
    | CrashActor | Restart | Attach | Detach | Resume
)  # fmt: skip


@dataclass(frozen=True)
class Schedule:
    """What one example does: ``stream`` gives the actors the user-data stream."""

    stream: bool
    steps: tuple[Step, ...]


# ------------------------------------------------------------------ faults

# kind -> (seconds, paths it is armed on); only kinds this simulator knows are drawn
_FAULTS: dict[str, tuple[float, tuple[str | None, ...]]] = {
    "unavailable": (0.0, (None, ORDER, OPEN_ORDERS)),
    "throttled": (0.0, (None, ORDER)),
    "waf_html": (0.0, (None, ORDER)),
    "latency": (20.0, (None, ORDER)),
    "drop_request": (0.0, (ORDER, OPEN_ORDERS)),
    "rate_limited": (30.0, (ORDER, OPEN_ORDERS)),
    "banned": (60.0, (ORDER, OPEN_ORDERS)),
    "unknown_error": (0.0, (ORDER,)),
    "timeout": (0.0, (ORDER,)),
    "no_code_5xx": (0.0, (ORDER,)),
    "drop_response": (0.0, (ORDER, OPEN_ORDERS)),
    "visibility_delay": (3.0, (ORDER,)),
    "garbled_html": (0.0, (ORDER, OPEN_ORDERS)),
    "truncated_json": (0.0, (ORDER, OPEN_ORDERS)),
    "http_500": (0.0, (ORDER,)),
    "http_502": (0.0, (ORDER,)),
    "http_504": (0.0, (ORDER,)),
    "stream_duplicate": (0.0, (None,)),
    "stream_delay": (5.0, (None,)),
    "stream_drop": (0.0, (None,)),
    "stream_reorder": (0.0, (None,)),
    "stream_burst": (0.0, (None,)),
}
FAULT_SECONDS = {kind: seconds for kind, (seconds, _) in _FAULTS.items()}
KNOWN_FAULTS = sorted(k for k in _FAULTS if k in {f.value for f in FaultKind})


def _inject() -> st.SearchStrategy[Inject]:
    def build(kind: str) -> st.SearchStrategy[Inject]:
        _, paths = _FAULTS[kind]
        return st.builds(
            Inject,
            kind=st.just(kind),
            user=st.sampled_from([0, 1, None]),
            path=st.sampled_from(paths),
            count=st.integers(1, 5),
        )

    # the stream's faults need the stream, fills and the right user to matter: drawn more
    stream_kinds = [k for k in KNOWN_FAULTS if k.startswith("stream_")]
    return st.sampled_from(KNOWN_FAULTS + 3 * stream_kinds).flatmap(build)


# ------------------------------------------------------------------ strategies

_user = st.integers(0, USERS - 1)
_index = st.integers(0, 5)


def _place() -> st.SearchStrategy[Place]:
    def build(symbol: str) -> st.SearchStrategy[Place]:
        return st.builds(
            Place,
            user=_user,
            symbol=st.just(symbol),
            side=st.sampled_from(["BUY", "SELL"]),
            kind=st.sampled_from(["LIMIT", "MARKET", "IOC"]),
            qty=st.sampled_from(QUANTITIES[symbol]),
            offset=st.integers(-30, 30),
        )

    return st.sampled_from(SYMBOLS).flatmap(build)


def steps() -> st.SearchStrategy[Step]:
    """One step. Alternatives listed more than once are drawn more often (places, fills,
    matches: most other steps act on orders); hypothesis shrinks towards the first one."""
    place, fill, match, inject = (
        _place(),
        st.builds(Fill, _user, _index, st.integers(0, 3)),
        (st.builds(Match, _user, _index)),
        _inject(),
    )
    options: list[st.SearchStrategy[Step]] = [
        st.builds(Advance, st.sampled_from([0.5, 2.0, 5.0, 30.0, 90.0])),
        *[place] * 4,
        *[fill] * 2,
        *[match] * 2,
        *[inject] * 2,
        st.builds(Cancel, _user, _index),
        st.builds(Mark, st.sampled_from(SYMBOLS), st.sampled_from([-3, -1, 1, 3])),
        st.builds(DropStream, _user, st.booleans()),
        st.builds(CrashActor, _user),
        *([st.builds(OrderLimit, _user, st.integers(1, 3))] if HAS_ORDER_LIMITS else []),
        st.just(Restart()),
        st.builds(Attach, _user, st.booleans()),
        st.builds(Detach, _user, _index),
        st.builds(Resume, _user, _index, st.integers(0, 6), st.booleans()),
    ]
    if HAS_CANCEL_ALL:
        options.append(st.builds(CancelAll, _user, st.sampled_from(SYMBOLS)))
    return st.one_of(options)


def schedules(max_steps: int = 40) -> st.SearchStrategy[Schedule]:
    return st.builds(
        Schedule,
        stream=st.booleans(),
        steps=st.lists(steps(), min_size=1, max_size=max_steps).map(tuple),
    )
