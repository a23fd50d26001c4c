"""The tables (SQLAlchemy Core). Migrations in ``migrations/versions`` create exactly these.

Conventions:
- times are integer epoch milliseconds from the injected WallClock (BigInteger);
- money and quantities are decimal strings (exact, portable; ``Decimal`` in and out);
- ids are BigInteger on PostgreSQL and SQLite's rowid (INTEGER PRIMARY KEY) there.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

__all__ = [
    "cluster_instances",
    "credentials",
    "fills",
    "invites",
    "login_failures",
    "metadata",
    "order_events",
    "orders",
    "poll_policies",
    "revoked_tokens",
    "user_seq",
    "users",
]

PENDING_SQL = "status IN ('pending', 'new', 'partially_filled')"

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Money = sa.String(64)
Payload = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _user_fk(ondelete: str = "CASCADE") -> sa.ForeignKey:
    return sa.ForeignKey("users.id", ondelete=ondelete)


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

credentials = sa.Table(
    "credentials",
    metadata,
    sa.Column("user_id", Id, _user_fk(), primary_key=True),
    sa.Column("key_id", sa.String(32), nullable=False),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    sa.Column("key_last4", sa.String(4), nullable=False),
    sa.Column("testnet", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("rotated_at", sa.BigInteger, nullable=True),
)

poll_policies = sa.Table(
    "poll_policies",
    metadata,
    sa.Column("user_id", Id, _user_fk(), primary_key=True),
    sa.Column("interval", sa.Float, nullable=False),
    sa.Column("fast_interval", sa.Float, nullable=False),
    sa.Column("fast_notional", Money, nullable=False),
    sa.Column("reconcile_interval", sa.Float, nullable=False),
    sa.Column("updated_by", Id, _user_fk("SET NULL"), nullable=True),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("user_id", Id, _user_fk(), nullable=False),
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
    sa.Column("reduce_only", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.UniqueConstraint("user_id", "client_order_id"),
    sa.Index(
        "ix_orders_user_newest",
        "user_id",
        sa.text("created_at DESC"),
        sa.text("id DESC"),
    ),
    sa.Index(
        "ix_orders_user_pending",
        "user_id",
        "id",
        sqlite_where=sa.text(PENDING_SQL),
        postgresql_where=sa.text(PENDING_SQL),
    ),
)

fills = sa.Table(
    "fills",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("user_id", Id, _user_fk(), nullable=False),
    # our order; NULL only for rows kept from before revision 0002 that matched no order
    sa.Column("order_id", sa.BigInteger, nullable=True),
    sa.Column("symbol", sa.String(32), nullable=False),
    sa.Column("trade_id", sa.BigInteger, nullable=False),
    sa.Column("exchange_order_id", sa.BigInteger, nullable=False),
    sa.Column("price", Money, nullable=False),
    sa.Column("quantity", Money, nullable=False),
    sa.Column("commission", Money, nullable=False),
    sa.Column("commission_asset", sa.String(16), nullable=False),
    sa.Column("time", sa.BigInteger, nullable=False),
    sa.Column("realized_pnl", Money, nullable=False, server_default="0"),
    sa.Column("maker", sa.Boolean, nullable=False, server_default=sa.false()),
    # both sides of a trade share its id, and two of our users may be those sides
    sa.UniqueConstraint("order_id", "trade_id"),
    sa.Index("ix_fills_user_order", "user_id", "exchange_order_id"),
)

user_seq = sa.Table(
    "user_seq",
    metadata,
    sa.Column("user_id", Id, _user_fk(), primary_key=True),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
)

order_events = sa.Table(
    "order_events",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("user_id", Id, _user_fk(), nullable=False),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("order_id", sa.BigInteger, nullable=False),
    sa.Column("payload", Payload, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("user_id", "seq"),
    sa.Index("ix_order_events_created_at", "created_at"),
)

# --- security (migration 0003): durable logout, the login throttle, invitations ---------------

revoked_tokens = sa.Table(
    "revoked_tokens",
    metadata,
    sa.Column("nonce", sa.String(32), primary_key=True),
    sa.Column("user_id", Id, _user_fk(), nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Index("ix_revoked_tokens_expires_at", "expires_at"),
)

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(64), nullable=False),
    sa.Column("address", sa.String(64), nullable=False),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Index("ix_login_failures_at", "at"),
)

invites = sa.Table(
    "invites",
    metadata,
    sa.Column("code_hash", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.BigInteger, nullable=False),
    sa.Column("used_by", Id, _user_fk("SET NULL"), nullable=True),
    sa.Column("used_at", sa.BigInteger, nullable=True),
)


# --- scale-out (migration 0005): the instances sharing this database ---------------------------

cluster_instances = sa.Table(
    "cluster_instances",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("address", sa.String(255), nullable=False),
    sa.Column("pg_pid", sa.BigInteger, nullable=True),  # backend pid of its lock connection
    sa.Column("started_at", sa.BigInteger, nullable=False),
    sa.Column("heartbeat_at", sa.BigInteger, nullable=False),  # the server's clock, epoch ms
)
