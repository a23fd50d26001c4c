"""initial schema: users, credentials, poll policies, orders, fills, events

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Money = sa.String(64)
Payload = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
PENDING_SQL = "status IN ('pending', 'new', 'partially_filled')"


def _user_fk(name: str, column: str = "user_id", ondelete: str = "CASCADE") -> sa.Constraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=f"fk_{name}_{column}_users", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", Id, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("username", name="uq_users_username"),
    )
    op.create_table(
        "credentials",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("key_last4", sa.String(4), nullable=False),
        sa.Column("testnet", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("rotated_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("user_id", name="pk_credentials"),
        _user_fk("credentials"),
    )
    op.create_table(
        "poll_policies",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("interval", sa.Float, nullable=False),
        sa.Column("fast_interval", sa.Float, nullable=False),
        sa.Column("fast_notional", Money, nullable=False),
        sa.Column("reconcile_interval", sa.Float, nullable=False),
        sa.Column("updated_by", Id, nullable=True),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_poll_policies"),
        _user_fk("poll_policies"),
        _user_fk("poll_policies", "updated_by", "SET NULL"),
    )
    _create_orders()
    _create_fills()
    _create_events()


def _create_orders() -> None:
    op.create_table(
        "orders",
        sa.Column("id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("quantity", Money, nullable=False),
        sa.Column("price", Money, nullable=True),
        sa.Column("filled_quantity", Money, nullable=False),
        sa.Column("avg_price", Money, nullable=True),
        sa.Column("time_in_force", sa.String(8), nullable=True),
        sa.Column("client_order_id", sa.String(64), nullable=False),
        sa.Column("exchange_order_id", sa.BigInteger, nullable=True),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.BigInteger, nullable=False),
        sa.Column("exchange_update_time", sa.BigInteger, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
        sa.UniqueConstraint("user_id", "client_order_id", name="uq_orders_user_id_client_order_id"),
        _user_fk("orders"),
    )
    op.create_index(
        "ix_orders_user_newest",
        "orders",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )
    op.create_index(
        "ix_orders_user_pending",
        "orders",
        ["user_id", "id"],
        sqlite_where=sa.text(PENDING_SQL),
        postgresql_where=sa.text(PENDING_SQL),
    )


def _create_fills() -> None:
    op.create_table(
        "fills",
        sa.Column("id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("symbol", sa.String(32), nullable=False),
        sa.Column("trade_id", sa.BigInteger, nullable=False),
        sa.Column("exchange_order_id", sa.BigInteger, nullable=False),
        sa.Column("price", Money, nullable=False),
        sa.Column("quantity", Money, nullable=False),
        sa.Column("commission", Money, nullable=False),
        sa.Column("commission_asset", sa.String(16), nullable=False),
        sa.Column("time", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_fills"),
        sa.UniqueConstraint("symbol", "trade_id", name="uq_fills_symbol_trade_id"),
        _user_fk("fills"),
    )
    op.create_index("ix_fills_user_order", "fills", ["user_id", "exchange_order_id"])


def _create_events() -> None:
    op.create_table(
        "user_seq",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_seq"),
        _user_fk("user_seq"),
    )
    op.create_table(
        "order_events",
        sa.Column("id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("order_id", sa.BigInteger, nullable=False),
        sa.Column("payload", Payload, nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_events"),
        sa.UniqueConstraint("user_id", "seq", name="uq_order_events_user_id_seq"),
        _user_fk("order_events"),
    )
    op.create_index("ix_order_events_created_at", "order_events", ["created_at"])


def downgrade() -> None:
    for table in ("order_events", "user_seq", "fills", "orders", "poll_policies"):
        op.drop_table(table)
    op.drop_table("credentials")
    op.drop_table("users")
