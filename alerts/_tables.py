"""The alert store's tables (SQLAlchemy Core), kept to SQL that SQLite and PostgreSQL both run.

Times are epoch milliseconds (BIGINT). ``alerts.point`` holds ``''`` for "no point": PostgreSQL treats NULLs as
distinct in a unique constraint, so a NULL point would let the same key be inserted twice.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from alerts.db import ID_TYPE as _Id

metadata = MetaData()

alerts = Table(
    "alerts",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("rule_id", String, nullable=False),
    Column("site", String, nullable=False),
    Column("device", String, nullable=False),
    Column("point", String, nullable=False),
    Column("state", String(32), nullable=False),
    Column("severity", SmallInteger, nullable=False),
    Column("first_ms", BigInteger),
    Column("last_ms", BigInteger),
    Column("count", Integer, nullable=False),
    Column("value", Text, nullable=False),  # JSON text, so bool / int / float / str / None survive
    Column("assignee", String),
    Column("shelved_until_ms", BigInteger),
    Column("shelve_reason", Text, nullable=False),
    Column("out_of_service", Boolean, nullable=False),
    Column("out_of_service_reason", Text, nullable=False),
    Column("unack_since_ms", BigInteger),
    Column("escalation_level", Integer, nullable=False),
    Column("escalated_ms", BigInteger),
    Column("chattering", Boolean, nullable=False),
    Column("title", Text, nullable=False),
    Column("audience", String, nullable=False),
    Column("area", String),
    Column("profile", String),
    Column("reason", Text, nullable=False),
    Column("version", Integer, nullable=False),
    UniqueConstraint("rule_id", "site", "device", "point", name="alerts_key"),
    Index("alerts_state", "state"),
    Index("alerts_site", "site"),
    Index("alerts_device", "device"),
    Index("alerts_audience", "audience"),
    Index("alerts_last_ms", "last_ms"),
)

alert_history = Table(
    "alert_history",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("who", String, nullable=False),
    Column("action", String(32), nullable=False),
    Column("from_state", String(32), nullable=False),
    Column("to_state", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Index("alert_history_alert", "alert_id", "id"),
)

alert_notes = Table(
    "alert_notes",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),
    Column("who", String, nullable=False),
    Column("text", Text, nullable=False),
    Index("alert_notes_alert", "alert_id", "id"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("message_id", String, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("audience", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("channel_type", String, nullable=False),
    Column("target", Text, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("error", Text, nullable=False),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="SET NULL")),
    Column("text", Text, nullable=False),
    Index("notifications_message", "message_id", "channel"),
    Index("notifications_alert", "alert_id"),
    Index("notifications_ts", "ts_ms"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("ts_ms", BigInteger, nullable=False),
    Column("who", String, nullable=False),
    Column("action", String, nullable=False),
    Column("target", String, nullable=False),
    Column("source", String, nullable=False),
    Column("detail", Text, nullable=False),  # JSON object
    Index("audit_log_ts", "ts_ms"),
    Index("audit_log_who", "who", "ts_ms"),
)

# Notifications still to deliver, one row per message and channel (the outbox): written in the transaction of the
# change that decided them, delivered in ``id`` order per alert and channel (alerts.delivery), retried until the
# channel confirms; a delivered row leaves (its record stays in ``notifications``), a row the channel refused for
# good stays as ``failed`` with the reason. ``lease_ms``: an instance that claimed the row owns it until then.
notification_queue = Table(
    "notification_queue",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("message_id", String, nullable=False),
    Column("channel", String, nullable=False),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="SET NULL")),
    Column("kind", String(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("message", Text, nullable=False),  # JSON object: the notification message
    Column("status", String(16), nullable=False),  # pending | failed | dropped
    Column("attempts", Integer, nullable=False),
    Column("next_ms", BigInteger, nullable=False),
    Column("lease_ms", BigInteger),
    Column("last_try_ms", BigInteger),
    Column("last_error", Text, nullable=False),
    Column("noted", Boolean, nullable=False),  # a failed row a later notification of its alert has reported
    Column("claimed_by", String),  # the process (host:pid) that holds the row's lease: a standby taking over frees it
    UniqueConstraint("message_id", "channel", name="notification_queue_key"),
    Index("notification_queue_due", "status", "next_ms"),
    Index("notification_queue_order", "alert_id", "channel", "id"),
)

state_blobs = Table(
    "state_blobs",
    metadata,
    Column("name", String, primary_key=True),
    Column("data", Text, nullable=False),  # JSON object
)

# What raised an alert, kept beside it (one row per raise or escalation, appended in the transition's transaction,
# never rewritten): the readings the rule judged (time and the values of the points it reads) and, for a window
# rule, the window's figures. Stored history can be erased or rewritten elsewhere; the alert keeps its own proof.
alert_evidence = Table(
    "alert_evidence",
    metadata,
    Column("id", _Id, primary_key=True, autoincrement=True),
    Column("alert_id", BigInteger, ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
    Column("ts_ms", BigInteger, nullable=False),  # the transition's time
    Column("severity", SmallInteger, nullable=False),  # what it raised or escalated to (rank)
    Column("readings", Text, nullable=False),  # JSON list: [{"ts": ms, "values": {point: value}}], oldest first
    Column("window", Text),  # JSON object: a window rule's figures (statistic, value, count, period); else NULL
    Index("alert_evidence_alert", "alert_id", "id"),
)

# Who runs a rules partition (its engine's state name): the active engine renews its row every few seconds; a hot
# standby takes the row only once it has expired, and only then joins the partition's shared group. ``epoch`` grows
# at every change of holder: the active engine's writes check it in their own transaction (fencing), so an engine
# that lost its lease never writes again. ``session``: the partition's MQTT client id (the standby resumes it).
rules_leases = Table(
    "rules_leases",
    metadata,
    Column("name", String, primary_key=True),
    Column("holder", String, nullable=False),
    Column("session", String, nullable=False),
    Column("epoch", Integer, nullable=False),
    Column("acquired_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
)
