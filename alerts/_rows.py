"""The alert store's row types, and their conversion to and from the columns of ``alerts/_tables.py``.

Shared by the write side (``alerts.store``) and the read side (``alerts._queries``); ``alerts.store`` re-exports
the public types, which is where callers import them from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row

from alerts import _tables as t
from alerts.lifecycle import Action, Alert, AlertKey, Severity, State

Value = bool | int | float | str | None


# --- public types -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertMeta:
    """What the alert is about, beside its lifecycle."""

    title: str
    audience: str  # water_ops | environment | safety | default ...
    area: str | None
    profile: str | None
    reason: str = ""  # the rule's last reason text


@dataclass(slots=True)
class StoredAlert:
    id: int
    alert: Alert  # loaded with empty history and notes lists (they live in rows of their own)
    meta: AlertMeta
    version: int  # optimistic concurrency: pass it back to Tx.save


@dataclass(frozen=True, slots=True)
class HistoryRow:
    id: int
    ts_ms: int
    who: str
    action: Action
    from_state: State
    to_state: State
    reason: str


@dataclass(frozen=True, slots=True)
class NoteRow:
    id: int
    ts_ms: int
    who: str
    text: str


@dataclass(frozen=True, slots=True)
class NotificationRow:
    id: int
    ts_ms: int
    message_id: str
    kind: str
    audience: str
    channel: str
    channel_type: str
    target: str
    ok: bool
    attempts: int
    error: str
    alert_id: int | None
    text: str


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One notification on one channel in the outbox (``notification_queue``): pending (to be tried at
    ``next_ms``), failed (refused for good: ``last_error`` says why) or dropped (no longer worth sending)."""

    id: int
    message_id: str
    channel: str
    alert_id: int | None
    kind: str
    created_ms: int
    message: dict[str, object]
    status: str
    attempts: int
    next_ms: int
    last_try_ms: int | None
    last_error: str


@dataclass(frozen=True, slots=True)
class ChannelQueue:
    """One channel's outbox at a glance: rows pending and failed, and when the oldest pending one was decided."""

    channel: str
    pending: int
    failed: int
    oldest_pending_ms: int | None


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    ts_ms: int
    who: str
    action: str
    target: str
    source: str
    detail: dict[str, object]


# --- row conversion -----------------------------------------------------------------------------


def point_column(key: AlertKey) -> str:
    """The ``point`` column of an alert key."""
    # '' stands for "no point" in the table (see alerts/_tables.py), so '' itself cannot be a point name.
    if key.point == "":
        raise ValueError(f"alert {key}: an empty point name is not allowed, use None for a device-wide alert")
    return key.point or ""


def key_clause(key: AlertKey) -> ColumnElement[bool]:
    c = t.alerts.c
    return (c.rule_id == key.rule_id) & (c.site == key.site) & (c.device == key.device) & (c.point == point_column(key))


def _value(text: str) -> Value:
    value = json.loads(text)
    if value is not None and not isinstance(value, bool | int | float | str):
        raise TypeError(f"alert value {text!r} is not a scalar")
    return value


def json_object(text: str, what: str) -> dict[str, object]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError(f"{what} is not a JSON object")
    return data


def queue_row(r: Row[Any]) -> QueueRow:
    m = r._mapping
    return QueueRow(
        m["id"],
        m["message_id"],
        m["channel"],
        m["alert_id"],
        m["kind"],
        m["created_ms"],
        json_object(m["message"], f"outbox row {m['id']}"),
        m["status"],
        m["attempts"],
        m["next_ms"],
        m["last_try_ms"],
        m["last_error"],
    )


def alert_values(alert: Alert, meta: AlertMeta) -> dict[str, object]:
    """The columns of an alert row, its key excepted."""
    return {
        "state": alert.state.value,
        "severity": alert.severity.rank,
        "first_ms": alert.first_ms,
        "last_ms": alert.last_ms,
        "count": alert.count,
        "value": json.dumps(alert.value),
        "assignee": alert.assignee,
        "shelved_until_ms": alert.shelved_until_ms,
        "shelve_reason": alert.shelve_reason,
        "out_of_service": alert.out_of_service,
        "out_of_service_reason": alert.out_of_service_reason,
        "unack_since_ms": alert.unack_since_ms,
        "escalation_level": alert.escalation_level,
        "escalated_ms": alert.escalated_ms,
        "chattering": alert.chattering,
        "title": meta.title,
        "audience": meta.audience,
        "area": meta.area,
        "profile": meta.profile,
        "reason": meta.reason,
    }


def stored_alert(row: Row[Any]) -> StoredAlert:
    m = row._mapping  # by name: Row's own tuple methods (count, index) shadow columns of the same name
    alert = Alert(
        key=AlertKey(m["rule_id"], m["site"], m["device"], m["point"] or None),
        state=State(m["state"]),
        severity=Severity.from_rank(m["severity"]),
        first_ms=m["first_ms"],
        last_ms=m["last_ms"],
        count=m["count"],
        value=_value(m["value"]),
        assignee=m["assignee"],
        shelved_until_ms=m["shelved_until_ms"],
        shelve_reason=m["shelve_reason"],
        out_of_service=m["out_of_service"],
        out_of_service_reason=m["out_of_service_reason"],
        unack_since_ms=m["unack_since_ms"],
        escalation_level=m["escalation_level"],
        escalated_ms=m["escalated_ms"],
        chattering=m["chattering"],
    )
    meta = AlertMeta(m["title"], m["audience"], m["area"], m["profile"], m["reason"])
    return StoredAlert(m["id"], alert, meta, m["version"])
