"""Baseline: the alert store's tables as ``create_all`` made them up to 0.3.0.

A database from before migrations already has some or all of these tables: only the missing ones are created (what
``create_all`` did at every start), so such a database upgrades from here like an empty one.

Revision ID: alerts_0001
Revises:
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "alerts" not in existing:
        op.create_table(
            "alerts",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.Column("rule_id", sa.String(), nullable=False),
            sa.Column("site", sa.String(), nullable=False),
            sa.Column("device", sa.String(), nullable=False),
            sa.Column("point", sa.String(), nullable=False),
            sa.Column("state", sa.String(length=32), nullable=False),
            sa.Column("severity", sa.SmallInteger(), nullable=False),
            sa.Column("first_ms", sa.BigInteger(), nullable=True),
            sa.Column("last_ms", sa.BigInteger(), nullable=True),
            sa.Column("count", sa.Integer(), nullable=False),
            sa.Column("value", sa.Text(), nullable=False),
            sa.Column("assignee", sa.String(), nullable=True),
            sa.Column("shelved_until_ms", sa.BigInteger(), nullable=True),
            sa.Column("shelve_reason", sa.Text(), nullable=False),
            sa.Column("out_of_service", sa.Boolean(), nullable=False),
            sa.Column("out_of_service_reason", sa.Text(), nullable=False),
            sa.Column("unack_since_ms", sa.BigInteger(), nullable=True),
            sa.Column("escalation_level", sa.Integer(), nullable=False),
            sa.Column("escalated_ms", sa.BigInteger(), nullable=True),
            sa.Column("chattering", sa.Boolean(), nullable=False),
            sa.Column("title", sa.Text(), nullable=False),
            sa.Column("audience", sa.String(), nullable=False),
            sa.Column("area", sa.String(), nullable=True),
            sa.Column("profile", sa.String(), nullable=True),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.Column("version", sa.Integer(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
            sa.UniqueConstraint("rule_id", "site", "device", "point", name="alerts_key"),
        )
        op.create_index("alerts_audience", "alerts", ["audience"], unique=False)
        op.create_index("alerts_device", "alerts", ["device"], unique=False)
        op.create_index("alerts_last_ms", "alerts", ["last_ms"], unique=False)
        op.create_index("alerts_site", "alerts", ["site"], unique=False)
        op.create_index("alerts_state", "alerts", ["state"], unique=False)
    if "audit_log" not in existing:
        op.create_table(
            "audit_log",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.Column("ts_ms", sa.BigInteger(), nullable=False),
            sa.Column("who", sa.String(), nullable=False),
            sa.Column("action", sa.String(), nullable=False),
            sa.Column("target", sa.String(), nullable=False),
            sa.Column("source", sa.String(), nullable=False),
            sa.Column("detail", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("audit_log_ts", "audit_log", ["ts_ms"], unique=False)
        op.create_index("audit_log_who", "audit_log", ["who", "ts_ms"], unique=False)
    if "state_blobs" not in existing:
        op.create_table(
            "state_blobs",
            sa.Column("name", sa.String(), nullable=False),
            sa.Column("data", sa.Text(), nullable=False),
            sa.PrimaryKeyConstraint("name"),
        )
    if "alert_history" not in existing:
        op.create_table(
            "alert_history",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.Column("alert_id", sa.BigInteger(), nullable=False),
            sa.Column("ts_ms", sa.BigInteger(), nullable=False),
            sa.Column("who", sa.String(), nullable=False),
            sa.Column("action", sa.String(length=32), nullable=False),
            sa.Column("from_state", sa.String(length=32), nullable=False),
            sa.Column("to_state", sa.String(length=32), nullable=False),
            sa.Column("reason", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("alert_history_alert", "alert_history", ["alert_id", "id"], unique=False)
    if "alert_notes" not in existing:
        op.create_table(
            "alert_notes",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.Column("alert_id", sa.BigInteger(), nullable=False),
            sa.Column("ts_ms", sa.BigInteger(), nullable=False),
            sa.Column("who", sa.String(), nullable=False),
            sa.Column("text", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="CASCADE"),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("alert_notes_alert", "alert_notes", ["alert_id", "id"], unique=False)
    if "notification_outbox" not in existing:
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
    if "notifications" not in existing:
        op.create_table(
            "notifications",
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
            sa.Column("ts_ms", sa.BigInteger(), nullable=False),
            sa.Column("message_id", sa.String(), nullable=False),
            sa.Column("kind", sa.String(length=32), nullable=False),
            sa.Column("audience", sa.String(), nullable=False),
            sa.Column("channel", sa.String(), nullable=False),
            sa.Column("channel_type", sa.String(), nullable=False),
            sa.Column("target", sa.Text(), nullable=False),
            sa.Column("ok", sa.Boolean(), nullable=False),
            sa.Column("attempts", sa.Integer(), nullable=False),
            sa.Column("error", sa.Text(), nullable=False),
            sa.Column("alert_id", sa.BigInteger(), nullable=True),
            sa.Column("text", sa.Text(), nullable=False),
            sa.ForeignKeyConstraint(["alert_id"], ["alerts.id"], ondelete="SET NULL"),
            sa.PrimaryKeyConstraint("id"),
        )
        op.create_index("notifications_alert", "notifications", ["alert_id"], unique=False)
        op.create_index("notifications_message", "notifications", ["message_id", "channel"], unique=False)
        op.create_index("notifications_ts", "notifications", ["ts_ms"], unique=False)


def downgrade() -> None:
    op.drop_table("notifications")
    op.drop_table("notification_outbox")
    op.drop_table("alert_notes")
    op.drop_table("alert_history")
    op.drop_table("state_blobs")
    op.drop_table("audit_log")
    op.drop_table("alerts")
