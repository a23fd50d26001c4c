"""Order events and the per-user sequence: the only place their SQL is written.

``user_seq`` holds each user's last seq; the batch transaction bumps it with one upsert per
user (``INSERT .. ON CONFLICT DO UPDATE .. RETURNING``, on SQLite and PostgreSQL alike), so
seqs are unique and gap-free and roll back with the changes they number. The payload is
:func:`~tradercoin.orders.order_to_wire` of the stored order, which is enough to rebuild it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tradercoin.orders import Order, OrderEvent, order_from_wire, order_to_wire
from tradercoin.store.schema import order_events, user_seq

__all__ = ["append_events", "events_since", "latest_seq", "prune_events"]


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
_LATEST = sa.select(user_seq.c.last_seq).where(user_seq.c.user_id == sa.bindparam("user_id"))
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


def latest_seq(conn: sa.Connection, user_id: int) -> int:
    value = conn.execute(_LATEST, {"user_id": user_id}).scalar_one_or_none()
    return 0 if value is None else int(value)


def prune_events(conn: sa.Connection, before: int) -> int:
    return int(conn.execute(_PRUNE, {"before": before}).rowcount)
