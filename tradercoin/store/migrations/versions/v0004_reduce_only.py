"""orders: reduce-only on entry

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03

Orders stored before this revision were never reduce-only: the column defaults to false.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.add_column(
            sa.Column("reduce_only", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("orders") as batch:
        batch.drop_column("reduce_only")
