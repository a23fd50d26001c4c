"""Order events and the per-user sequence: the only place their SQL is written.

``user_seq`` holds each user's last seq; the batch transaction bumps it with one upsert per
user (``INSERT .. ON CONFLICT DO UPDATE .. RETURNING``, on SQLite and PostgreSQL alike), so
seqs are unique and gap-free and roll back with the changes they number. The payload is
:func:`~tradercoin.orders.order_to_wire` of the stored order, which is enough to rebuild it.

In a cluster (PostgreSQL) the same transaction announces each user's newest seq on the
``tradercoin_events`` channel (:func:`notify_events`); PostgreSQL delivers it at commit, never
before the events are visible to other connections. Only ``(user, seq)`` travels: readers take
the events themselves from the table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tradercoin.orders import Order, OrderEvent, order_from_wire, order_to_wire
from tradercoin.store.schema import order_events, user_seq

__all__ = [
    "EVENTS_CHANNEL",
    "append_events",
    "events_since",
    "events_since_many",
    "latest_seq",
    "notify_events",
    "parse_notification",
    "prune_events",
]

EVENTS_CHANNEL = "tradercoin_events"


def _seq_upsert(insert: Any) -> Any:
    stmt = insert(user_seq).values(user_id=sa.bindparam("user_id"), last_seq=sa.bindparam("n"))
    return stmt.on_conflict_do_update(
        index_elements=["user_id"],
        set_={"last_seq": user_seq.c.last_seq + stmt.excluded.last_seq},
    ).returning(user_seq.c.user_id, user_seq.c.last_seq)


_SEQ_UPSERT = {"sqlite": _seq_upsert(sqlite.insert), "postgresql": _seq_upsert(postgresql.insert)}
_EVENT_INSERT = order_events.insert()
_SINCE = (
    sa.select(
        order_events.c.user_id,
        order_events.c.seq,
        order_events.c.payload,
        order_events.c.created_at,
    )
    .where(
        order_events.c.user_id == sa.bindparam("user_id"), order_events.c.seq > sa.bindparam("seq")
    )
    .order_by(order_events.c.seq)
    .limit(sa.bindparam("limit"))
)
_SINCE_MANY = sa.text(
    "SELECT e.user_id, e.seq, e.payload, e.created_at FROM order_events AS e"
    " JOIN unnest(CAST(:users AS bigint[]), CAST(:since AS bigint[])) AS w(user_id, since)"
    " ON e.user_id = w.user_id AND e.seq > w.since AND e.seq <= w.since + :limit"
    " ORDER BY e.user_id, e.seq"
)
_LATEST = sa.select(user_seq.c.last_seq).where(user_seq.c.user_id == sa.bindparam("user_id"))
_NOTIFY = sa.text(
    "SELECT pg_notify(:channel, p) FROM unnest(CAST(:payloads AS text[])) AS p"
).bindparams(channel=EVENTS_CHANNEL)
_PRUNE = order_events.delete().where(order_events.c.created_at < sa.bindparam("before"))


def append_events(conn: sa.Connection, stored: Sequence[Order], now: int) -> list[OrderEvent]:
    """Number each stored order with its user's next seq and insert the events, in order."""
    counts = Counter(order.user_id for order in stored)
    params = [{"user_id": user_id, "n": n} for user_id, n in sorted(counts.items())]
    rows = conn.execute(_SEQ_UPSERT[conn.dialect.name], params).all()
    next_seq = {user_id: last - counts[user_id] + 1 for user_id, last in rows}
    events = []
    for order in stored:
        seq = next_seq[order.user_id]
        next_seq[order.user_id] = seq + 1
        events.append(OrderEvent(user_id=order.user_id, seq=seq, order=order, created_at=now))
    conn.execute(_EVENT_INSERT, [_event_row(e) for e in events])
    return events


def notify_events(conn: sa.Connection, events: Sequence[OrderEvent]) -> None:
    """``pg_notify('tradercoin_events', '<user_id>:<seq>')`` once per user of ``events``,
    with that user's newest seq, in the caller's transaction (PostgreSQL only)."""
    newest: dict[int, int] = {}
    for event in events:
        newest[event.user_id] = max(event.seq, newest.get(event.user_id, 0))
    payloads = [f"{user_id}:{seq}" for user_id, seq in sorted(newest.items())]
    conn.execute(_NOTIFY, {"payloads": payloads})


def parse_notification(payload: str) -> tuple[int, int] | None:
    """``(user_id, seq)`` of a :func:`notify_events` payload; ``None`` for anything else."""
    user, _, seq = payload.partition(":")
    if not (user.isascii() and user.isdigit() and seq.isascii() and seq.isdigit()):
        return None
    return int(user), int(seq)


def _event_row(event: OrderEvent) -> dict[str, Any]:
    return {
        "user_id": event.user_id,
        "seq": event.seq,
        "order_id": event.order.id,
        "payload": order_to_wire(event.order),
        "created_at": event.created_at,
    }


def events_since(conn: sa.Connection, user_id: int, seq: int, limit: int) -> list[OrderEvent]:
    rows = conn.execute(_SINCE, {"user_id": user_id, "seq": seq, "limit": limit})
    return [
        OrderEvent(user_id=r[0], seq=r[1], order=order_from_wire(r[0], r[2]), created_at=r[3])
        for r in rows
    ]


def events_since_many(
    conn: sa.Connection, since: dict[int, int], limit: int
) -> dict[int, list[OrderEvent]]:
    """Each user's events after their ``since[user]``, at most ``limit`` each (seqs are
    gap-free, so ``seq <= since + limit`` bounds them), in one query (PostgreSQL only)."""
    users = sorted(since)
    params = {"users": users, "since": [since[u] for u in users], "limit": limit}
    found: dict[int, list[OrderEvent]] = {u: [] for u in users}
    for r in conn.execute(_SINCE_MANY, params):
        found[r[0]].append(
            OrderEvent(user_id=r[0], seq=r[1], order=order_from_wire(r[0], r[2]), created_at=r[3])
        )
    return found


def latest_seq(conn: sa.Connection, user_id: int) -> int:
    value = conn.execute(_LATEST, {"user_id": user_id}).scalar_one_or_none()
    return 0 if value is None else int(value)


def prune_events(conn: sa.Connection, before: int) -> int:
    return int(conn.execute(_PRUNE, {"before": before}).rowcount)
