"""Least privilege in a PostgreSQL alert store: what the rules engines' role may do, and nothing more.

The schema belongs to an owner role that runs the migrations (``lifeline db upgrade --url`` as that owner); the
rules engines connect as a role of their own, granted :func:`rules_grants`. That role appends to the records that
must stay as written (an alert's history, notes and evidence, the notification log, the audit log: INSERT and
SELECT only, so it can neither rewrite nor delete them) and changes only what is meant to change (alert rows,
the notification outbox, saved states, the partitions' leases). A service at the head revision only reads the
version table at start, so it needs no DDL. SQLite has no roles: there the file's mode (0600) is the boundary.
"""

from __future__ import annotations

from alerts import _tables as t

__all__ = ["APPEND_ONLY", "rules_grants"]

# written once, never rewritten or deleted by a service
APPEND_ONLY = (t.alert_history, t.alert_notes, t.alert_evidence, t.notifications, t.audit_log)
_CHANGING = {
    t.alerts: "SELECT, INSERT, UPDATE",  # the lifecycle moves a row; an alert is never deleted
    t.notification_queue: "SELECT, INSERT, UPDATE, DELETE",  # a delivered row leaves the outbox
    t.state_blobs: "SELECT, INSERT, UPDATE, DELETE",  # a pipeline stage's state ends
    t.rules_leases: "SELECT, INSERT, UPDATE",
}
VERSION_TABLE = "alembic_version_alerts"


def _quote(role: str) -> str:
    if not role.replace("_", "").isalnum():
        raise ValueError(f"role {role!r}: letters, digits and underscores only")
    return f'"{role}"'


def rules_grants(role: str) -> list[str]:
    """The SQL (PostgreSQL) that gives ``role`` exactly what a rules engine needs in the alert store."""
    who = _quote(role)
    out = [f"GRANT SELECT, INSERT ON {table.name} TO {who}" for table in APPEND_ONLY]
    out += [f"GRANT {rights} ON {table.name} TO {who}" for table, rights in _CHANGING.items()]
    out.append(f"GRANT SELECT ON {VERSION_TABLE} TO {who}")
    # ids come from each table's sequence
    id_tables = [table.name for table in (*APPEND_ONLY, t.alerts, t.notification_queue)]
    out += [f"GRANT USAGE ON SEQUENCE {name}_id_seq TO {who}" for name in id_tables]
    return out
