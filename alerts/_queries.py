"""The alert store's read side: the filtered alert list and count, and the history, notes, notifications and
audit entries behind ``AlertStore``'s read methods. Each function runs on a connection already in a transaction.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import ColumnElement, Connection, func, select

from alerts import _tables as t
from alerts._rows import (
    AuditRow,
    ChannelQueue,
    HistoryRow,
    NoteRow,
    NotificationRow,
    QueueRow,
    StoredAlert,
    json_object,
    queue_row,
    stored_alert,
)
from alerts.lifecycle import ACTIVE_STATES, Action, Severity, State


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """The filters of list_alerts / count_alerts; each one set narrows the result (they combine with AND)."""

    states: Collection[str] | None = None
    site: str | None = None
    sites: Collection[str] | None = None
    device: str | None = None
    rule: str | None = None
    audiences: Collection[str] | None = None
    min_severity: Severity | None = None
    active_only: bool = False
    since_ms: int | None = None

    def where(self) -> list[ColumnElement[bool]]:
        c = t.alerts.c
        out: list[ColumnElement[bool]] = []
        if self.states is not None:
            out.append(c.state.in_([str(s) for s in self.states]))
        if self.site is not None:
            out.append(c.site == self.site)
        if self.sites is not None:
            out.append(c.site.in_(list(self.sites)))
        if self.device is not None:
            out.append(c.device == self.device)
        if self.rule is not None:
            out.append(c.rule_id == self.rule)
        if self.audiences is not None:
            out.append(c.audience.in_(list(self.audiences)))
        if self.min_severity is not None:
            out.append(c.severity >= self.min_severity.rank)
        if self.active_only:
            out.append(c.state.in_([s.value for s in ACTIVE_STATES]))
        if self.since_ms is not None:
            out.append(c.last_ms >= self.since_ms)
        return out


def _check_page(limit: int, offset: int = 0) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must not be negative (limit={limit}, offset={offset})")


def list_alerts(conn: Connection, query: AlertQuery, limit: int, offset: int) -> list[StoredAlert]:
    _check_page(limit, offset)
    c = t.alerts.c
    stmt = (
        select(t.alerts)
        .where(*query.where())
        .order_by(c.last_ms.desc().nulls_last(), c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [stored_alert(row) for row in conn.execute(stmt)]


def count_alerts(conn: Connection, query: AlertQuery) -> int:
    return int(conn.execute(select(func.count()).select_from(t.alerts).where(*query.where())).scalar_one())


def history(conn: Connection, alert_id: int) -> list[HistoryRow]:
    c = t.alert_history.c
    rows = conn.execute(select(t.alert_history).where(c.alert_id == alert_id).order_by(c.id))
    return [
        HistoryRow(r.id, r.ts_ms, r.who, Action(r.action), State(r.from_state), State(r.to_state), r.reason)
        for r in rows
    ]


def notes(conn: Connection, alert_id: int) -> list[NoteRow]:
    c = t.alert_notes.c
    rows = conn.execute(select(t.alert_notes).where(c.alert_id == alert_id).order_by(c.id))
    return [NoteRow(r.id, r.ts_ms, r.who, r.text) for r in rows]


def notifications(conn: Connection, alert_id: int | None, limit: int) -> list[NotificationRow]:
    _check_page(limit)
    c = t.notifications.c
    stmt = select(t.notifications).order_by(c.ts_ms.desc(), c.id.desc()).limit(limit)
    if alert_id is not None:
        stmt = stmt.where(c.alert_id == alert_id)
    return [
        NotificationRow(
            r.id,
            r.ts_ms,
            r.message_id,
            r.kind,
            r.audience,
            r.channel,
            r.channel_type,
            r.target,
            r.ok,
            r.attempts,
            r.error,
            r.alert_id,
            r.text,
        )
        for r in conn.execute(stmt)
    ]


def queue(conn: Connection, statuses: Collection[str] | None, channel: str | None, limit: int) -> list[QueueRow]:
    """Outbox rows, oldest first; ``statuses`` None: every status."""
    _check_page(limit)
    c = t.notification_queue.c
    stmt = select(t.notification_queue).order_by(c.id).limit(limit)
    if statuses is not None:
        stmt = stmt.where(c.status.in_(list(statuses)))
    if channel is not None:
        stmt = stmt.where(c.channel == channel)
    return [queue_row(r) for r in conn.execute(stmt)]


def channel_queues(conn: Connection) -> list[ChannelQueue]:
    c = t.notification_queue.c
    stmt = select(c.channel, c.status, func.count(), func.min(c.created_ms)).group_by(c.channel, c.status)
    seen: dict[str, dict[str, tuple[int, int | None]]] = {}
    for channel, status, count, oldest in conn.execute(stmt):
        seen.setdefault(channel, {})[status] = (int(count), None if oldest is None else int(oldest))
    out = []
    for channel, by_status in sorted(seen.items()):
        pending, oldest = by_status.get("pending", (0, None))
        failed, _ = by_status.get("failed", (0, None))
        out.append(ChannelQueue(channel, pending, failed, oldest if pending else None))
    return out


def audit_log(
    conn: Connection, since_ms: int | None, who: str | None, action: str | None, target_prefix: str | None, limit: int
) -> list[AuditRow]:
    _check_page(limit)
    c = t.audit_log.c
    stmt = select(t.audit_log).order_by(c.ts_ms.desc(), c.id.desc()).limit(limit)
    if since_ms is not None:
        stmt = stmt.where(c.ts_ms >= since_ms)
    if who is not None:
        stmt = stmt.where(c.who == who)
    if action is not None:
        stmt = stmt.where(c.action == action)
    if target_prefix is not None:
        # Not LIKE: SQLite's LIKE ignores ASCII case and PostgreSQL's does not; this is exact on both.
        stmt = stmt.where(func.substr(c.target, 1, len(target_prefix)) == target_prefix)
    return [
        AuditRow(r.id, r.ts_ms, r.who, r.action, r.target, r.source, json_object(r.detail, f"audit {r.id}"))
        for r in conn.execute(stmt)
    ]
