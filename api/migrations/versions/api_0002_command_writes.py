"""Commands that write a point (set points) and cancels: the point, the value and the cancelled command's id.

Revision ID: api_0002
Revises: api_0001
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "api_0002"
down_revision: str | None = "api_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Like the baseline, only what is missing (as alerts_0003): a database whose version table was lost may have them.
    have = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("api_commands")}
    wanted = [
        sa.Column("point", sa.String(length=64), nullable=True),
        sa.Column("value", sa.Text(), nullable=True),
        sa.Column("cancels", sa.String(length=64), nullable=True),
    ]
    missing = [c for c in wanted if c.name not in have]
    if missing:
        with op.batch_alter_table("api_commands") as batch:
            for column in missing:
                batch.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("api_commands") as batch:
        batch.drop_column("cancels")
        batch.drop_column("value")
        batch.drop_column("point")
