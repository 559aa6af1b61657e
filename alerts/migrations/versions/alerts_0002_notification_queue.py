"""Durable notifications: one outbox row per message and channel, kept until the channel confirms.

``notification_outbox`` (one row per message, removed once every channel had its bounded tries) becomes
``notification_queue``: what was still in the old outbox is carried over, one pending row per channel that has no
successful delivery recorded in ``notifications`` yet, so an upgrade loses nothing that was waiting.

Revision ID: alerts_0002
Revises: alerts_0001
Create Date: 2026-12-08
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0002"
down_revision: str | None = "alerts_0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Like the baseline, only what is missing: a database from before migrations that some later service's
    # create_all already gave the new table (or that has no old outbox) upgrades from here too.
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "notification_queue" not in existing:
        _create_queue()
    if "notification_outbox" in existing:
        _carry_over(op.get_bind())
        op.drop_table("notification_outbox")


def _create_queue() -> None:
    op.create_table(
        "notification_queue",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_ms", sa.BigInteger(), nullable=False),
        sa.Column("lease_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_try_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("noted", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id", "channel", name="notification_queue_key"),
    )
    op.create_index("notification_queue_due", "notification_queue", ["status", "next_ms"], unique=False)
    op.create_index("notification_queue_order", "notification_queue", ["alert_id", "channel", "id"], unique=False)


def _carry_over(conn: sa.Connection) -> None:
    meta = sa.MetaData()
    old = sa.Table("notification_outbox", meta, autoload_with=conn)
    log = sa.Table("notifications", meta, autoload_with=conn)
    queue = sa.Table("notification_queue", meta, autoload_with=conn)
    for row in conn.execute(sa.select(old).order_by(old.c.id)).mappings():
        message = json.loads(row["message"])
        sent = {
            str(c)
            for c in conn.execute(
                sa.select(log.c.channel).where(log.c.message_id == row["message_id"], log.c.ok.is_(True))
            ).scalars()
        }
        for channel in message.get("targets") or []:
            if channel in sent:
                continue
            conn.execute(
                sa.insert(queue).values(
                    message_id=row["message_id"],
                    channel=channel,
                    alert_id=row["alert_id"],
                    kind=str(message.get("kind", "")),
                    created_ms=row["created_ms"],
                    message=row["message"],
                    status="pending",
                    attempts=0,
                    next_ms=row["created_ms"],
                    last_error="",
                    noted=False,
                )
            )


def downgrade() -> None:
    op.create_table(
        "notification_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_id"),
    )
    op.drop_index("notification_queue_order", table_name="notification_queue")
    op.drop_index("notification_queue_due", table_name="notification_queue")
    op.drop_table("notification_queue")
