"""Every revision's database, holding rows, upgrades to head with its rows intact.

Revisions are discovered from Alembic's script directory (``tradercoin/store/migrations``), so
a new revision is covered the day it lands: for each one, a fresh database (SQLite and
PostgreSQL) is upgraded to it, every table that exists there gets rows (two users, and rows
referencing them in every other table, with values of each column's type), then it is
upgraded to head, and every row must still be there with the same values in every column
that still exists. A revision that renames or drops a column on purpose adds it to
``CHANGED`` with the reason.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tradercoin.store.db import Database
from tradercoin.store.migrate import alembic_config, current_revision, head_revision, upgrade

ROWS = 2
CHANGED: dict[tuple[str, str], str] = {}  # (table, column) -> the revision that changed it
REALISTIC = {"role": "user", "side": "BUY", "type": "LIMIT", "status": "new", "symbol": "BTCUSDT"}


def _revisions() -> list[str]:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def _value(table: str, column: sa.Column[Any], i: int) -> Any:
    kind = column.type
    if column.foreign_keys:
        return i + 1  # every referenced table's row i has id i + 1
    if isinstance(kind, sa.Boolean):
        return i % 2 == 0
    if isinstance(kind, sa.Integer):
        return i + 1 if column.primary_key else 1_700_000_000_000 + 1000 * i + len(column.name)
    if isinstance(kind, sa.Float):
        return 1.5 + i
    if isinstance(kind, sa.Numeric):
        return Decimal(f"{i + 1}.123456")
    if isinstance(kind, sa.LargeBinary):
        return bytes([i, 1, 2, 3])
    if isinstance(kind, sa.JSON):
        return {"row": i, "table": table}
    if isinstance(kind, sa.String):
        text = REALISTIC.get(column.name, f"{column.name}-{i}")
        if column.name == "payload":
            text = json.dumps({"row": i})
        return text[: kind.length] if kind.length else text
    raise AssertionError(f"{table}.{column.name}: no sample value for type {kind!r}")


def _seed(conn: sa.Connection) -> dict[str, list[dict[str, Any]]]:
    """Rows in every table of the current schema (in foreign-key order); what was written."""
    meta = sa.MetaData()
    meta.reflect(conn)
    written: dict[str, list[dict[str, Any]]] = {}
    for table in meta.sorted_tables:
        if table.name == "alembic_version":
            continue
        rows = [{c.name: _value(table.name, c, i) for c in table.columns} for i in range(ROWS)]
        conn.execute(table.insert(), rows)
        written[table.name] = rows
    return written


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, Decimal | float) or isinstance(b, Decimal | float):
        return Decimal(str(a)) == Decimal(str(b))
    if isinstance(a, str) and isinstance(b, dict | list):
        return bool(json.loads(a) == b)
    if isinstance(b, str) and isinstance(a, dict | list):
        return bool(json.loads(b) == a)
    return bool(a == b) or (isinstance(a, memoryview | bytes) and bytes(a) == bytes(b))


def _check(conn: sa.Connection, written: dict[str, list[dict[str, Any]]]) -> None:
    meta = sa.MetaData()
    meta.reflect(conn)
    for name, rows in written.items():
        assert name in meta.tables, f"table {name} is gone after the upgrade"
        table = meta.tables[name]
        keys = [c.name for c in table.primary_key.columns] or list(rows[0])
        found = {
            tuple(r[k] for k in keys): r for r in conn.execute(sa.select(table)).mappings().all()
        }
        assert len(found) == len(rows), f"{name}: {len(found)} rows, {len(rows)} written"
        for row in rows:
            stored = found[tuple(row[k] for k in keys)]
            for column, value in row.items():
                if (name, column) in CHANGED:
                    continue
                assert column in stored, f"{name}.{column} disappeared (add it to CHANGED)"
                assert _same(stored[column], value), (name, column, stored[column], value)


@pytest.mark.parametrize("revision", _revisions())
async def test_rows_of_each_revision_survive_the_upgrade_to_head(
    db_url: str, revision: str
) -> None:
    db = Database(db_url)
    try:
        assert await db.write(upgrade, revision) == revision
        written = await db.write(_seed)
        assert written and all(written.values())
        assert await db.write(upgrade) == head_revision()
        assert await db.read(current_revision) == head_revision()
        await db.read(_check, written)
    finally:
        await db.dispose()
