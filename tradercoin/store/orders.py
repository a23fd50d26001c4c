"""Orders and fills: the only place their SQL is written.

Every function takes a live :class:`sqlalchemy.Connection` and runs inside a worker thread
(see :mod:`tradercoin.store.db`); statements are built once, at import, and rows become
:class:`~tradercoin.orders.Order` through a positional converter.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tradercoin.orders import (
    ORDER_FIELDS,
    Fill,
    Order,
    OrderChange,
    OrderFill,
    OrderStatus,
    Side,
    order_from_values,
    order_values,
)
from tradercoin.store.errors import OrderConflict
from tradercoin.store.schema import PENDING_SQL, fills, orders

__all__ = [
    "count_orders",
    "filled_by_order",
    "find_by_client_id",
    "get_order",
    "insert_fills",
    "order_fills",
    "page_orders",
    "pending_orders",
    "users_with_pending_orders",
    "write_changes",
]

_COLUMNS = [orders.c[name] for name in ORDER_FIELDS]
_MUTABLE = [name for name in ORDER_FIELDS if name not in ("id", "user_id")]


def dec_text(value: Decimal | None) -> str | None:
    """A Decimal as exact text without exponent (``None`` stays ``None``)."""
    return None if value is None else format(value, "f")


def row_to_order(r: Sequence[Any]) -> Order:
    """One row of ``_COLUMNS`` -> Order (positional, no lookups by name)."""
    return order_from_values(r)


def order_params(order: Order) -> dict[str, Any]:
    """Column values of ``order`` (without ``id``)."""
    params = order_values(order)
    del params["id"]
    return params


# --- reads -----------------------------------------------------------------------------------

_USER = orders.c.user_id == sa.bindparam("user_id")
_GET = sa.select(*_COLUMNS).where(_USER, orders.c.id == sa.bindparam("order_id"))
_BY_CLIENT_ID = sa.select(*_COLUMNS).where(
    _USER, orders.c.client_order_id == sa.bindparam("client_order_id")
)
_PENDING = sa.select(*_COLUMNS).where(_USER, sa.text(PENDING_SQL)).order_by(orders.c.id)


_Key = tuple[bool, bool, bool, bool, bool]
# no bound given for one end of a created_at span: every order is inside it
_SPAN_OPEN = (0, 2**63 - 1)


def _filters(
    status: bool, symbol: bool, q: bool, side: bool, span: bool
) -> list[sa.ColumnElement[bool]]:
    where: list[sa.ColumnElement[bool]] = [_USER]
    if side:
        where.append(orders.c.side == sa.bindparam("side"))
    if span:  # [since, until): created at or after since, before until
        where.append(orders.c.created_at >= sa.bindparam("since"))
        where.append(orders.c.created_at < sa.bindparam("until"))
    if status:
        where.append(orders.c.status == sa.bindparam("status"))
    if symbol:
        where.append(orders.c.symbol == sa.bindparam("symbol"))
    if q:
        pattern: sa.BindParameter[str] = sa.bindparam("q", type_=sa.String())
        where.append(
            sa.or_(
                orders.c.symbol.ilike(pattern, escape="\\"),
                orders.c.client_order_id.ilike(pattern, escape="\\"),
                sa.cast(orders.c.exchange_order_id, sa.String).like(pattern, escape="\\"),
                orders.c.note.ilike(pattern, escape="\\"),
            )
        )
    return where


def _page_statements() -> dict[_Key, tuple[sa.Select[Any], sa.Select[Any]]]:
    built: dict[_Key, tuple[sa.Select[Any], sa.Select[Any]]] = {}
    for status, symbol, q, side, span in itertools.product((False, True), repeat=5):
        key = (status, symbol, q, side, span)
        where = _filters(*key)
        count = sa.select(sa.func.count()).select_from(orders).where(*where)
        page = (
            sa.select(*_COLUMNS, count.scalar_subquery().label("total"))
            .where(*where)
            .order_by(orders.c.created_at.desc(), orders.c.id.desc())
            .limit(sa.bindparam("limit"))
            .offset(sa.bindparam("offset"))
        )
        built[key] = (page, count)
    return built


_PAGES = _page_statements()


def like_pattern(text: str) -> str:
    """``%text%`` with LIKE's wildcards in ``text`` escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _page_params(
    user_id: int,
    status: OrderStatus | None,
    symbol: str | None,
    q: str | None,
    side: Side | None = None,
    since: int | None = None,
    until: int | None = None,
) -> tuple[_Key, dict[str, Any]]:
    params: dict[str, Any] = {"user_id": user_id}
    span = since is not None or until is not None
    if side is not None:
        params["side"] = side.value
    if span:
        params["since"] = _SPAN_OPEN[0] if since is None else since
        params["until"] = _SPAN_OPEN[1] if until is None else until
    if status is not None:
        params["status"] = status.value
    if symbol is not None:
        params["symbol"] = symbol
    if q:
        params["q"] = like_pattern(q)
    return (status is not None, symbol is not None, bool(q), side is not None, span), params


def page_orders(
    conn: sa.Connection,
    user_id: int,
    status: OrderStatus | None,
    symbol: str | None,
    q: str | None,
    page: int,
    page_size: int,
    *,
    side: Side | None = None,
    since: int | None = None,
    until: int | None = None,
) -> tuple[list[Order], int]:
    """One page (newest first) and the count of every match, in one statement (the count is
    an uncorrelated subquery, evaluated once); a page past the end counts separately.
    ``since``/``until`` bound ``created_at`` (epoch ms, ``since`` included, ``until`` not)."""
    key, params = _page_params(user_id, status, symbol, q, side, since, until)
    page_stmt, count_stmt = _PAGES[key]
    rows = conn.execute(
        page_stmt, {**params, "limit": page_size, "offset": (page - 1) * page_size}
    ).all()
    if rows:
        return [row_to_order(r) for r in rows], int(rows[0][-1])
    return [], 0 if page == 1 else int(conn.execute(count_stmt, params).scalar_one())


def count_orders(conn: sa.Connection, user_id: int) -> int:
    key, params = _page_params(user_id, None, None, None)
    return int(conn.execute(_PAGES[key][1], params).scalar_one())


def get_order(conn: sa.Connection, user_id: int, order_id: int) -> Order | None:
    row = conn.execute(_GET, {"user_id": user_id, "order_id": order_id}).first()
    return None if row is None else row_to_order(row)


def find_by_client_id(conn: sa.Connection, user_id: int, client_order_id: str) -> Order | None:
    params = {"user_id": user_id, "client_order_id": client_order_id}
    row = conn.execute(_BY_CLIENT_ID, params).first()
    return None if row is None else row_to_order(row)


def pending_orders(conn: sa.Connection, user_id: int) -> list[Order]:
    return [row_to_order(r) for r in conn.execute(_PENDING, {"user_id": user_id})]


_USERS_PENDING = sa.select(orders.c.user_id).where(sa.text(PENDING_SQL)).distinct()


def users_with_pending_orders(conn: sa.Connection) -> set[int]:
    return {r[0] for r in conn.execute(_USERS_PENDING)}


# --- writes ----------------------------------------------------------------------------------

_INSERT = orders.insert().returning(orders.c.id, orders.c.user_id, orders.c.client_order_id)
_UPDATE = (
    orders.update()
    .where(orders.c.id == sa.bindparam("b_id"), orders.c.user_id == sa.bindparam("b_user_id"))
    .values({name: sa.bindparam(f"b_{name}") for name in _MUTABLE})
)
_OWNERS = sa.select(orders.c.id, orders.c.user_id).where(
    orders.c.id.in_(sa.bindparam("ids", expanding=True))
)


def _fill_insert(insert: Any) -> Any:
    return insert(fills).on_conflict_do_nothing(index_elements=["order_id", "trade_id"])


_FILL_INSERT = {
    "sqlite": _fill_insert(sqlite.insert),
    "postgresql": _fill_insert(postgresql.insert),
}
_FILL_INSERT_RETURNING = {k: v.returning(fills.c.id) for k, v in _FILL_INSERT.items()}
_FILL_COLUMNS = [
    fills.c.symbol,
    fills.c.trade_id,
    fills.c.exchange_order_id,
    fills.c.price,
    fills.c.quantity,
    fills.c.commission,
    fills.c.commission_asset,
    fills.c.time,
    fills.c.realized_pnl,
    fills.c.maker,
]
_ORDER_FILLS = (
    sa.select(*_FILL_COLUMNS)
    .where(fills.c.user_id == sa.bindparam("user_id"), fills.c.order_id == sa.bindparam("order_id"))
    .order_by(fills.c.time, fills.c.trade_id)
)
_FILLED_BY_ORDER = sa.select(fills.c.order_id, fills.c.trade_id, fills.c.quantity).where(
    fills.c.user_id == sa.bindparam("user_id"),
    fills.c.order_id.in_(sa.bindparam("order_ids", expanding=True)),
)


def write_changes(conn: sa.Connection, changes: Sequence[OrderChange]) -> list[Order]:
    """Insert (``before is None``) or update every order, a statement per kind for all of
    them; returns the orders as stored, with their ids, in the order of ``changes``.
    (Fills are written apart, by :func:`insert_fills`: a trade is kept whatever the merge of
    its snapshot decided.)

    Raises:
        OrderConflict: an update of an order its user does not have, an insert that already
            carries an id, or an update without one.
        sqlalchemy.exc.IntegrityError: e.g. a duplicate client order id.
    """
    inserts = [c.after for c in changes if c.before is None]
    updates = [c.after for c in changes if c.before is not None]
    _check_ids(inserts, updates)
    ids: dict[tuple[int, str], int] = {}
    if inserts:
        rows = conn.execute(_INSERT, [order_params(o) for o in inserts])
        ids = {(r[1], r[2]): r[0] for r in rows}
    if updates:
        _update_all(conn, updates)
    return [
        dataclasses.replace(c.after, id=ids[(c.after.user_id, c.after.client_order_id)])
        if c.before is None
        else c.after
        for c in changes
    ]


def _check_ids(inserts: Sequence[Order], updates: Sequence[Order]) -> None:
    for order in inserts:
        if order.id is not None:
            raise OrderConflict(f"new order of user {order.user_id} already has id {order.id}")
    for order in updates:
        if order.id is None:
            raise OrderConflict(f"update of an order of user {order.user_id} without an id")


def _update_all(conn: sa.Connection, updates: Sequence[Order]) -> None:
    params = []
    for order in updates:
        row = {f"b_{k}": v for k, v in order_params(order).items()}
        row["b_id"] = order.id
        params.append(row)
    if conn.execute(_UPDATE, params).rowcount == len(updates):
        return
    owners = dict(conn.execute(_OWNERS, {"ids": [o.id for o in updates]}).all())
    for order in updates:
        if owners.get(order.id) != order.user_id:
            raise OrderConflict(f"user {order.user_id} has no order {order.id} to update")
    raise OrderConflict("an update changed no row")  # the same order twice in one batch


def _fill_row(record: OrderFill) -> dict[str, Any]:
    fill = record.fill
    return {
        "user_id": record.user_id,
        "order_id": record.order_id,
        "symbol": fill.symbol,
        "trade_id": fill.trade_id,
        "exchange_order_id": fill.exchange_order_id,
        "price": dec_text(fill.price),
        "quantity": dec_text(fill.quantity),
        "commission": dec_text(fill.commission),
        "commission_asset": fill.commission_asset,
        "time": fill.time,
        "realized_pnl": dec_text(fill.realized_pnl),
        "maker": fill.maker,
    }


def insert_fills(conn: sa.Connection, records: Sequence[OrderFill]) -> int:
    """Insert each fill once (by order and trade id); returns how many were new."""
    statement = _FILL_INSERT_RETURNING[conn.dialect.name]
    return sum(len(conn.execute(statement, _fill_row(r)).all()) for r in records)


def order_fills(conn: sa.Connection, user_id: int, order_id: int) -> list[Fill]:
    """The fills of one of the user's orders, oldest first."""
    rows = conn.execute(_ORDER_FILLS, {"user_id": user_id, "order_id": order_id})
    return [
        Fill(
            symbol=r[0],
            trade_id=r[1],
            exchange_order_id=r[2],
            price=Decimal(r[3]),
            quantity=Decimal(r[4]),
            commission=Decimal(r[5]),
            commission_asset=r[6],
            time=r[7],
            realized_pnl=Decimal(r[8]),
            maker=bool(r[9]),
        )
        for r in rows
    ]


def filled_by_order(
    conn: sa.Connection, user_id: int, order_ids: Sequence[int]
) -> dict[int, dict[int, Decimal]]:
    """For each of ``order_ids``, its stored trades: ``{order_id: {trade_id: quantity}}``."""
    ledger: dict[int, dict[int, Decimal]] = {}
    if not order_ids:
        return ledger
    params = {"user_id": user_id, "order_ids": list(order_ids)}
    for order_id, trade_id, quantity in conn.execute(_FILLED_BY_ORDER, params):
        ledger.setdefault(order_id, {})[trade_id] = Decimal(quantity)
    return ledger
