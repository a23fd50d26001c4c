"""cluster: the instances sharing this database (scale-out, tradercoin.cluster.ownership)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03

One row per ``tradercoin serve`` instance that ever joined: its id, the address other
instances reach it on, the backend pid of its lock connection (which ``pg_locks`` names as
the holder of its users) and its heartbeat (epoch ms, the database server's clock). Plain
portable types: SQLite databases upgrade too, though only PostgreSQL runs several instances.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cluster_instances",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("pg_pid", sa.BigInteger, nullable=True),
        sa.Column("started_at", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_cluster_instances"),
    )


def downgrade() -> None:
    op.drop_table("cluster_instances")
