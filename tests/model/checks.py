"""The model-based test's oracle: the simulator's record of every order and trade, and what
each tab received; never our own stored events.

- our store equals the exchange: status, executed quantity, average price, exchange id, for
  every order; an order the exchange never got ended ``rejected`` or ``expired``;
- every terminal order's fills equal the exchange's trades for that account and order
  (trade id, price, quantity, commission, realized PnL, maker); an open order's fills
  are some of them (polls fetch trades when an order ends);
- nothing was placed twice (client order ids unique per account on the exchange, exchange
  ids unique in our store);
- every tab got each change once, gap-free in seq order, without a resync; per order, no
  status rank and no executed quantity lower than one it was already sent, no repeat of
  the same (status, executed quantity), nothing after a terminal status; every tab that
  saw an order and is open at the end ends at the exchange's final state of it; the first
  tab of each user (open from the start, resumed across restarts) saw every order we hold;
  two tabs never disagree about the same seq;
- a user with no fault, order-rate limit or crash of its own (and no fault armed for
  everyone, nor a 429/418, which are the IP's) is never refused a place: one account's
  trouble does not stop another.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tradercoin.exchange.sim import OrderTruth
from tradercoin.exchange.sim.engine import Trade
from tradercoin.exchange.sim.markets import DEFAULT_SYMBOLS
from tradercoin.orders import Order, OrderStatus
from tradercoin.testing import TestSession

__all__ = [
    "Observed",
    "Tab",
    "exchange_final",
    "order_paths",
    "path_ends",
    "seq_gaps",
    "violations",
]

EXCHANGE_STATUS = {
    "NEW": OrderStatus.NEW,
    "PARTIALLY_FILLED": OrderStatus.PARTIALLY_FILLED,
    "FILLED": OrderStatus.FILLED,
    "CANCELED": OrderStatus.CANCELED,
    "EXPIRED": OrderStatus.EXPIRED,
    "EXPIRED_IN_MATCH": OrderStatus.EXPIRED,
}
# what an order the exchange never got may end as: refused before it left, or given up on
# after -2013 confirmations
NEVER_PLACED = (OrderStatus.REJECTED, OrderStatus.EXPIRED)
SPECS = {s.symbol: s for s in DEFAULT_SYMBOLS}
TERMINAL = {s.value for s in OrderStatus if s.terminal}
# the fields of a trade we compare with our fills (run.our_fills reads ours)
FILL_FIELDS = ("trade_id", "price", "qty", "commission", "realized_pnl", "maker")


@dataclass
class Tab:
    """A browser tab of one user: a chain of sessions, each resumed (``since``) from the
    last seq the previous one got (after a restart of the service)."""

    user: int
    since: int | None  # what the first session asked for (None: live)
    sessions: list[TestSession] = field(default_factory=list)
    open: bool = True
    permanent: bool = False
    ws: bool = False  # through the app's /ws (else attached to the actor directly)

    def messages(self) -> list[dict[str, Any]]:
        return [r.message for s in self.sessions for r in s.received]

    def updates(self) -> list[dict[str, Any]]:
        return [m for m in self.messages() if m["type"] == "order_update"]

    def last_seq(self) -> int | None:
        seqs = [m["seq"] for m in self.updates()]
        return seqs[-1] if seqs else self.since


@dataclass
class Observed:
    """What one run leaves for the checks (see test_model.py)."""

    truth: dict[int, list[OrderTruth]]  # user -> the exchange's orders
    trades: dict[int, list[Trade]]  # user -> the exchange's trades
    ours: dict[int, list[Order]]  # user -> our stored orders
    our_fills: dict[int, dict[int, list[dict[str, Any]]]]  # user -> exchange order id -> fills
    tabs: list[Tab]
    recovery: float  # the convergence bound used
    converged_after: float | None  # seconds to convergence (None: never within the bound)
    hangs: list[str]  # actions that never returned
    refused: list[str]  # places of users untouched by any fault that were refused


def _truth_state(t: OrderTruth) -> tuple[str, Decimal, Decimal | None, int]:
    avg = None
    if t.executed_qty:
        avg = Decimal(SPECS[t.symbol].fmt_avg(t.cum_quote / t.executed_qty))
    return EXCHANGE_STATUS[t.status].value, t.executed_qty, avg, t.order_id


def _our_state(o: Order) -> tuple[str, Decimal, Decimal | None, int | None]:
    avg = o.avg_price if o.filled_quantity else None
    return o.status.value, o.filled_quantity, avg, o.exchange_order_id


def store_differences(o: Observed) -> list[str]:
    """Where our stored orders and the exchange's disagree (empty: they agree)."""
    found = []
    for u, ours in o.ours.items():
        truth = {t.client_order_id: t for t in o.truth[u]}
        for order in ours:
            t = truth.get(order.client_order_id)
            if t is None:
                if order.status not in NEVER_PLACED:
                    found.append(f"user {u}: {order.status} order {order.id} not on the exchange")
            elif _our_state(order) != _truth_state(t):
                found.append(
                    f"user {u} order {order.id}: ours (status, executed, avg, exchange id) "
                    f"{_our_state(order)} != exchange {_truth_state(t)}"
                )
        known = {order.client_order_id for order in ours}
        found += [
            f"user {u}: exchange order {t.order_id} ({t.status}) is not in our store"
            for cid, t in truth.items()
            if cid not in known
        ]
    return found


def fill_differences(o: Observed) -> list[str]:
    found = []
    for u, ours in o.ours.items():
        for order in ours:
            if order.exchange_order_id is None:
                continue
            mine = o.our_fills[u].get(order.exchange_order_id, [])
            fields = FILL_FIELDS
            theirs = sorted(
                (
                    _trade_dict(t, fields)
                    for t in o.trades[u]
                    if t.order_id == order.exchange_order_id
                ),
                key=lambda d: d["trade_id"],
            )
            got = sorted(({k: m[k] for k in fields} for m in mine), key=lambda d: d["trade_id"])
            if order.status.terminal and got != theirs:
                found.append(f"user {u} order {order.id}: our fills {got} != exchange's {theirs}")
            elif extra := [f for f in got if f not in theirs]:
                found.append(f"user {u} order {order.id}: fills {extra} are not the exchange's")
    return found


def _trade_dict(t: Trade, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: getattr(t, "id" if f == "trade_id" else f) for f in fields}


def double_places(o: Observed) -> list[str]:
    found = []
    for u, truth in o.truth.items():
        twice = [c for c, n in Counter(t.client_order_id for t in truth).items() if n > 1]
        found += [f"user {u}: client order id {c} placed more than once" for c in twice]
        ids = Counter(x.exchange_order_id for x in o.ours[u] if x.exchange_order_id is not None)
        found += [
            f"user {u}: exchange id {i} held by {n} of our orders" for i, n in ids.items() if n > 1
        ]
        cids = Counter(x.client_order_id for x in o.ours[u])
        found += [
            f"user {u}: client order id {c} used by {n} orders" for c, n in cids.items() if n > 1
        ]
    return found


def tab_violations(o: Observed) -> list[str]:
    found: list[str] = []
    final = {(u, t.client_order_id): {_truth_state(t)[:2]} for u, ts in o.truth.items() for t in ts}
    by_seq: dict[tuple[int, int], tuple[Any, ...]] = {}
    for n, tab in enumerate(o.tabs):
        name = f"tab {n} (user {tab.user}, since {tab.since})"
        found += [f"{name}: got {m}" for m in tab.messages() if m["type"] == "resync"]
        updates = tab.updates()
        found += seq_gaps(name, tab.since, updates)
        found += order_paths(name, updates)
        for m in updates:
            d = m["data"]
            seen = (d["id"], d["status"], d["filled_quantity"])
            other = by_seq.setdefault((tab.user, m["seq"]), seen)
            if other != seen:
                found.append(f"{name}: seq {m['seq']} is {seen}, another tab got {other}")
        if tab.open:
            mine = {cid: want for (u, cid), want in final.items() if u == tab.user}
            ours = {x.client_order_id for x in o.ours[tab.user]} if tab.permanent else None
            found += path_ends(name, updates, mine, complete=ours)
    return found


def seq_gaps(name: str, since: int | None, updates: list[dict[str, Any]]) -> list[str]:
    """A session's ``order_update`` seqs must run ``since + 1, since + 2, ...`` (from the
    first one it got when it attached live, ``since`` None) with no gap and no repeat."""
    seqs = [m["seq"] for m in updates]
    if not seqs:
        return []
    first = seqs[0] if since is None else since + 1
    if seqs != list(range(first, first + len(seqs))):
        return [f"{name}: seqs not gap-free from {first}: {seqs}"]
    return []


def order_paths(name: str, updates: list[dict[str, Any]]) -> list[str]:
    """Per order, what a session was sent never goes back (status rank, executed quantity),
    never repeats the same (status, executed quantity), and stops at a terminal status."""
    found = []
    last: dict[int, tuple[str, Decimal]] = {}
    for m in updates:
        d = m["data"]
        status, qty = d["status"], Decimal(d["filled_quantity"])
        before = last.get(d["id"])
        if before is not None:
            b_status, b_qty = before
            rank_now, rank_before = OrderStatus(status).rank, OrderStatus(b_status).rank
            if b_status in TERMINAL:
                found.append(f"{name}: order {d['id']} {b_status} then {status} (seq {m['seq']})")
            elif rank_now < rank_before or qty < b_qty:
                found.append(
                    f"{name}: order {d['id']} regressed {b_status}/{b_qty} -> {status}/{qty} "
                    f"(seq {m['seq']})"
                )
            elif (status, qty) == before:
                found.append(f"{name}: order {d['id']} {status}/{qty} sent twice (seq {m['seq']})")
        last[d["id"]] = (status, qty)
    return found


def path_ends(
    name: str,
    updates: list[dict[str, Any]],
    final: dict[str, set[tuple[str, Decimal]]],
    *,
    complete: set[str] | None = None,
) -> list[str]:
    """Each order a session heard of ends, for it, in one of the exchange's final states
    (``final``: client order id -> acceptable (status, executed quantity)); an order the
    exchange never had ends never placed. With ``complete``, every one of those client
    order ids must have reached the session."""
    found = []
    ended: dict[str, tuple[str, Decimal]] = {}
    for m in updates:
        d = m["data"]
        ended[d["client_order_id"]] = (d["status"], Decimal(d["filled_quantity"]))
    for cid, state in ended.items():
        want = final.get(cid)
        if want is None:
            if OrderStatus(state[0]) not in NEVER_PLACED:
                found.append(f"{name}: order {cid} ended {state}, the exchange never had it")
        elif state not in want:
            found.append(f"{name}: order {cid} ended {state}, the exchange says {want}")
    if complete is not None:
        found += [
            f"{name}: never told about order {cid}" for cid in sorted(complete - ended.keys())
        ]
    return found


def exchange_final(t: OrderTruth) -> tuple[str, Decimal]:
    """The exchange's final (status, executed quantity) of an order, in our words."""
    return EXCHANGE_STATUS[t.status].value, t.executed_qty


def violations(o: Observed) -> dict[str, list[str]]:
    """Everything the oracle objects to, as sentences by kind (empty: the run is correct)."""
    found = {
        "hang": [f"action hung: {h}" for h in o.hangs],
        "refused": o.refused,
        "store": store_differences(o),
        "fills": fill_differences(o),
        "double place": double_places(o),
        "tabs": tab_violations(o),
    }
    if o.converged_after is None:
        found["store"].insert(
            0, f"our store never agreed with the exchange within {o.recovery:g} s"
        )
    return {kind: lines for kind, lines in found.items() if lines}
