"""Alert evidence and rules-partition leases.

``alert_evidence``: the readings (and a window rule's figures) that raised or escalated an alert, one row per raise
or escalation. ``rules_leases``: which engine runs a rules partition (a hot standby takes over through it).
``notification_queue.claimed_by``: which process claimed a row, so that the engine taking a partition over frees
the rows its dead predecessor had claimed at once rather than after their lease.

Revision ID: alerts_0003
Revises: alerts_0002
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0003"
down_revision: str | None = "alerts_0002"
branch_labels: str | None = None
depends_on: str | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Like the baseline, only what is missing: a database from before migrations may have them already.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "alert_evidence" not in existing:
        _create_evidence()
    if "rules_leases" not in existing:
        _create_leases()
    if "claimed_by" not in {c["name"] for c in sa.inspect(op.get_bind()).get_columns("notification_queue")}:
        op.add_column("notification_queue", sa.Column("claimed_by", sa.String(), nullable=True))


def _create_evidence() -> None:
    op.create_table(
        "alert_evidence",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("severity", sa.SmallInteger(), nullable=False),
        sa.Column("readings", sa.Text(), nullable=False),
        sa.Column("window", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("alert_evidence_alert", "alert_evidence", ["alert_id", "id"], unique=False)


def _create_leases() -> None:
    op.create_table(
        "rules_leases",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("holder", sa.String(), nullable=False),
        sa.Column("session", sa.String(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("acquired_ms", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_column("notification_queue", "claimed_by")
    op.drop_table("rules_leases")
    op.drop_index("alert_evidence_alert", table_name="alert_evidence")
    op.drop_table("alert_evidence")
