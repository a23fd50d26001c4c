"""security: revoked session tokens, login failures, registration invitations

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _user_fk(name: str, column: str, ondelete: str) -> sa.Constraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=f"fk_{name}_{column}_users", ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "revoked_tokens",
        sa.Column("nonce", sa.String(32), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("nonce", name="pk_revoked_tokens"),
        _user_fk("revoked_tokens", "user_id", "CASCADE"),
    )
    op.create_index("ix_revoked_tokens_expires_at", "revoked_tokens", ["expires_at"])
    op.create_table(
        "login_failures",
        sa.Column("id", Id, nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("at", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_login_failures"),
    )
    op.create_index("ix_login_failures_at", "login_failures", ["at"])
    op.create_table(
        "invites",
        sa.Column("code_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.BigInteger, nullable=False),
        sa.Column("used_by", Id, nullable=True),
        sa.Column("used_at", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("code_hash", name="pk_invites"),
        _user_fk("invites", "used_by", "SET NULL"),
    )


def downgrade() -> None:
    for table in ("invites", "login_failures", "revoked_tokens"):
        op.drop_table(table)
