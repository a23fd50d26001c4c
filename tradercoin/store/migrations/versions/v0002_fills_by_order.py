"""fills keyed by (order, trade id), with realized PnL and the maker flag

Both sides of a Binance trade carry the same trade id, so ``UNIQUE (symbol, trade_id)``
dropped the second of two of our users who traded against each other. Existing rows are
bound to their order through ``(user_id, symbol, exchange_order_id)``; a row that matches
no order keeps ``order_id`` NULL (kept, never deleted).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_BIND_ORDERS = """
UPDATE fills SET order_id = (
    SELECT o.id FROM orders o
    WHERE o.user_id = fills.user_id
      AND o.symbol = fills.symbol
      AND o.exchange_order_id = fills.exchange_order_id
)
"""


def upgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.add_column(sa.Column("order_id", sa.BigInteger, nullable=True))
        batch.add_column(
            sa.Column("realized_pnl", sa.String(64), nullable=False, server_default="0")
        )
        batch.add_column(sa.Column("maker", sa.Boolean, nullable=False, server_default=sa.false()))
    op.execute(_BIND_ORDERS)
    with op.batch_alter_table("fills") as batch:
        batch.drop_constraint("uq_fills_symbol_trade_id", type_="unique")
        batch.create_unique_constraint("uq_fills_order_id_trade_id", ["order_id", "trade_id"])


def downgrade() -> None:
    with op.batch_alter_table("fills") as batch:
        batch.drop_constraint("uq_fills_order_id_trade_id", type_="unique")
        batch.create_unique_constraint("uq_fills_symbol_trade_id", ["symbol", "trade_id"])
        batch.drop_column("maker")
        batch.drop_column("realized_pnl")
        batch.drop_column("order_id")
