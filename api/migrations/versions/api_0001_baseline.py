"""Baseline: the API's tables (users, tokens, gate selections, commands) as ``create_all`` made them up to 0.3.0.

A database from before migrations already has some or all of these tables: only the missing ones are created (what
``create_all`` did at every start), so such a database upgrades from here like an empty one.

Revision ID: api_0001
Revises:
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "api_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "api_commands" not in existing:
        op.create_table(
            "api_commands",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("site", sa.String(length=64), nullable=False),
            sa.Column("device", sa.String(length=64), nullable=False),
            sa.Column("action", sa.String(length=32), nullable=False),
            sa.Column("target_pct", sa.Text(), nullable=True),
            sa.Column("ttl_s", sa.Text(), nullable=False),
            sa.Column("issued_ms", sa.BigInteger(), nullable=False),
            sa.Column("expires_ms", sa.BigInteger(), nullable=False),
            sa.Column("deadline_ms", sa.BigInteger(), nullable=False),
            sa.Column("operator", sa.String(length=64), nullable=False),
            sa.Column("source", sa.String(length=256), nullable=False),
            sa.Column("state", sa.String(length=32), nullable=False),
            sa.Column("final", sa.Boolean(), nullable=False),
            sa.Column("interlock", sa.String(length=32), nullable=True),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("before", sa.Text(), nullable=False),
            sa.Column("after", sa.Text(), nullable=False),
            sa.Column("steps", sa.Text(), nullable=False),
            sa.Column("updated_ms", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("api_commands_deadline", "api_commands", ["final", "deadline_ms"], unique=False)
        op.create_index("api_commands_gate", "api_commands", ["site", "device", "final"], unique=False)
    if "api_selections" not in existing:
        op.create_table(
            "api_selections",
            sa.Column("id", sa.String(length=64), nullable=False),
            sa.Column("site", sa.String(length=64), nullable=False),
            sa.Column("device", sa.String(length=64), nullable=False),
            sa.Column("username", sa.String(length=64), nullable=False),
            sa.Column("created_ms", sa.BigInteger(), nullable=False),
            sa.Column("expires_ms", sa.BigInteger(), nullable=False),
            sa.Column("used_by", sa.String(length=64), nullable=True),
            sa.PrimaryKeyConstraint("id"),
        )
    if "api_users" not in existing:
        op.create_table(
            "api_users",
            sa.Column("username", sa.String(length=64), nullable=False),
            sa.Column("password_hash", sa.Text(), nullable=False),
            sa.Column("role", sa.String(length=32), nullable=False),
            sa.Column("areas", sa.Text(), nullable=False),
            sa.Column("disabled", sa.Boolean(), nullable=False),
            sa.Column("must_change_password", sa.Boolean(), nullable=False),
            sa.Column("created_ms", sa.BigInteger(), nullable=False),
            sa.PrimaryKeyConstraint("username"),
        )
    if "api_tokens" not in existing:
        op.create_table(
            "api_tokens",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.Column("hash", sa.String(length=64), nullable=False),
            sa.Column("kind", sa.String(length=16), nullable=False),
            sa.Column("name", sa.String(length=128), nullable=False),
            sa.Column("username", sa.String(length=64), nullable=False),
            sa.Column("created_ms", sa.BigInteger(), nullable=False),
            sa.Column("expires_ms", sa.BigInteger(), nullable=True),
            sa.Column("last_used_ms", sa.BigInteger(), nullable=True),
            sa.Column("revoked", sa.Boolean(), nullable=False),
            sa.ForeignKeyConstraint(["username"], ["api_users.username"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("hash"),
        )
        op.create_index("api_tokens_user", "api_tokens", ["username"], unique=False)


def downgrade() -> None:
    op.drop_table("api_tokens")
    op.drop_table("api_users")
    op.drop_table("api_selections")
    op.drop_table("api_commands")
