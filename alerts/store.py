"""The alert and audit store: the authority for alert rows, where the rules service and the API meet.

A SQLite file by default (WAL, ``busy_timeout`` 5000 ms, foreign keys on); the SQL stays within what PostgreSQL
runs too. An :class:`Alert` is one row in ``alerts``; its history and notes are rows of their own, appended by
:meth:`Tx.save` and never rewritten, so a loaded :class:`Alert` carries empty ``history`` and ``notes`` lists.

Concurrency is optimistic: every alert row has a ``version``; :meth:`Tx.save` updates only the version it was
given and raises :class:`Conflict` otherwise. On SQLite a write transaction starts with ``BEGIN IMMEDIATE``, so
writers queue (up to the busy timeout) instead of failing half-way when another writer committed first.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    URL,
    ColumnElement,
    Connection,
    Engine,
    Row,
    create_engine,
    event,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from alerts import _tables as t
from alerts.lifecycle import ACTIVE_STATES, Action, Alert, AlertKey, Severity, State

log = logging.getLogger(__name__)

R = TypeVar("R")

ACT_RETRIES = 3
BUSY_TIMEOUT_MS = 5000
_WRITE_OPTION = "lifeline_write"  # execution option: this connection's transaction will write

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
class AuditRow:
    id: int
    ts_ms: int
    who: str
    action: str
    target: str
    source: str
    detail: dict[str, object]


class Conflict(Exception):
    """The alert row changed (or appeared) since it was loaded. Leave the transaction, reload and retry."""

    def __init__(self, key: AlertKey, version: int | None) -> None:
        self.key = key
        self.version = version
        seen = "absent" if version is None else f"at version {version}"
        super().__init__(f"alert {key} changed since it was loaded ({seen})")


# --- row conversion -----------------------------------------------------------------------------


def _point(key: AlertKey) -> str:
    # '' stands for "no point" in the table (see alerts/_tables.py), so '' itself cannot be a point name.
    if key.point == "":
        raise ValueError(f"alert {key}: an empty point name is not allowed, use None for a device-wide alert")
    return key.point or ""


def _key_clause(key: AlertKey) -> ColumnElement[bool]:
    c = t.alerts.c
    return (c.rule_id == key.rule_id) & (c.site == key.site) & (c.device == key.device) & (c.point == _point(key))


def _value(text: str) -> Value:
    value = json.loads(text)
    if value is not None and not isinstance(value, bool | int | float | str):
        raise TypeError(f"alert value {text!r} is not a scalar")
    return value


def _json_object(text: str, what: str) -> dict[str, object]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError(f"{what} is not a JSON object")
    return data


def _alert_values(alert: Alert, meta: AlertMeta) -> dict[str, object]:
    """The columns of an alert row, its key excepted."""
    return {
        "state": alert.state.value,
        "severity": int(alert.severity),
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


def _stored(row: Row[Any]) -> StoredAlert:
    m = row._mapping  # by name: Row's own tuple methods (count, index) shadow columns of the same name
    alert = Alert(
        key=AlertKey(m["rule_id"], m["site"], m["device"], m["point"] or None),
        state=State(m["state"]),
        severity=Severity(m["severity"]),
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


# --- queries ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _AlertQuery:
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
            out.append(c.severity >= int(self.min_severity))
        if self.active_only:
            out.append(c.state.in_([s.value for s in ACTIVE_STATES]))
        if self.since_ms is not None:
            out.append(c.last_ms >= self.since_ms)
        return out


def _check_page(limit: int, offset: int = 0) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must not be negative (limit={limit}, offset={offset})")


# --- the transaction ----------------------------------------------------------------------------


class Tx:
    """One transaction on the store (from :meth:`AlertStore.begin`). After a :class:`Conflict`, leave it."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    # -- alerts

    def get(self, key: AlertKey) -> StoredAlert | None:
        row = self._conn.execute(select(t.alerts).where(_key_clause(key))).one_or_none()
        return None if row is None else _stored(row)

    def get_id(self, alert_id: int) -> StoredAlert | None:
        row = self._conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).one_or_none()
        return None if row is None else _stored(row)

    def save(self, alert: Alert, meta: AlertMeta, version: int | None) -> StoredAlert:
        """Insert (``version`` None) or update the row at ``version``; raise :class:`Conflict` if it moved on.

        Every entry in ``alert.history`` and ``alert.notes`` is appended as a new row. The returned copy has
        empty lists and the new version; ``alert`` itself is left as it was, so save the returned copy next time.
        """
        values = _alert_values(alert, meta)
        if version is None:
            alert_id, new_version = self._insert(alert.key, values), 1
        else:
            alert_id, new_version = self._update(alert.key, values, version), version + 1
        self._append(alert_id, alert)
        return StoredAlert(alert_id, dataclasses.replace(alert, history=[], notes=[]), meta, new_version)

    def _insert(self, key: AlertKey, values: dict[str, object]) -> int:
        if self._conn.execute(select(t.alerts.c.id).where(_key_clause(key))).first() is not None:
            raise Conflict(key, None)
        keys = {"rule_id": key.rule_id, "site": key.site, "device": key.device, "point": _point(key)}
        stmt = insert(t.alerts).values(**keys, **values, version=1).returning(t.alerts.c.id)
        try:
            return int(self._conn.execute(stmt).scalar_one())
        except IntegrityError as err:
            # Another writer inserted the same key between our check and our insert (PostgreSQL, READ COMMITTED).
            raise Conflict(key, None) from err

    def _update(self, key: AlertKey, values: dict[str, object], version: int) -> int:
        c = t.alerts.c
        stmt = (
            update(t.alerts)
            .where(_key_clause(key), c.version == version)
            .values(**values, version=version + 1)
            .returning(c.id)
        )
        alert_id = self._conn.execute(stmt).scalar_one_or_none()
        if alert_id is None:
            raise Conflict(key, version)
        return int(alert_id)

    def _append(self, alert_id: int, alert: Alert) -> None:
        if alert.history:
            self._conn.execute(
                insert(t.alert_history),
                [
                    {"alert_id": alert_id, "ts_ms": h.ts_ms, "who": h.who, "action": h.action.value,
                     "from_state": h.from_state.value, "to_state": h.to_state.value, "reason": h.reason}
                    for h in alert.history
                ],
            )
        if alert.notes:
            self._conn.execute(
                insert(t.alert_notes),
                [{"alert_id": alert_id, "ts_ms": n.ts_ms, "who": n.who, "text": n.text} for n in alert.notes],
            )

    def open_alerts(self) -> list[StoredAlert]:
        """Alerts not at rest: state other than normal, or shelved, out of service or chattering."""
        c = t.alerts.c
        stmt = (
            select(t.alerts)
            .where(or_(c.state != State.NORMAL.value, c.shelved_until_ms.is_not(None),
                       c.out_of_service.is_(True), c.chattering.is_(True)))
            .order_by(c.id)
        )
        return [_stored(row) for row in self._conn.execute(stmt)]

    # -- engine checkpoints

    def put_state(self, name: str, data: dict[str, object]) -> None:
        """Store a JSON blob under ``name``, replacing any earlier one."""
        text = orjson.dumps(data).decode()
        # UPDATE, then INSERT when nothing was there: portable, and a blob name has one writer (its service).
        done = self._conn.execute(update(t.state_blobs).where(t.state_blobs.c.name == name).values(data=text))
        if done.rowcount == 0:
            self._conn.execute(insert(t.state_blobs).values(name=name, data=text))

    def get_state(self, name: str) -> dict[str, object] | None:
        text = self._conn.execute(select(t.state_blobs.c.data).where(t.state_blobs.c.name == name)).scalar()
        return None if text is None else _json_object(text, f"state blob {name!r}")

    # -- notifications and audit

    def add_notification(
        self, *, ts_ms: int, message_id: str, kind: str, audience: str, channel: str, channel_type: str,
        target: str, ok: bool, attempts: int, error: str, alert_id: int | None, text: str,
    ) -> int:
        """Record one delivery (or failed delivery) of a notification; returns the row id."""
        stmt = insert(t.notifications).values(
            ts_ms=ts_ms, message_id=message_id, kind=kind, audience=audience, channel=channel,
            channel_type=channel_type, target=target, ok=ok, attempts=attempts, error=error, alert_id=alert_id,
            text=text,
        ).returning(t.notifications.c.id)
        return int(self._conn.execute(stmt).scalar_one())

    def enqueue_notification(self, *, created_ms: int, message_id: str, message: dict[str, object],
                             alert_id: int | None) -> int:  # fmt: skip
        """Keep a notification to deliver, in the transaction of the change that caused it (the outbox)."""
        stmt = insert(t.notification_outbox).values(
            created_ms=created_ms, message_id=message_id, message=orjson.dumps(message).decode(), alert_id=alert_id
        ).returning(t.notification_outbox.c.id)
        return int(self._conn.execute(stmt).scalar_one())

    def dequeue_notification(self, message_id: str) -> None:
        """Every channel has had its try: the notification leaves the outbox."""
        c = t.notification_outbox.c
        self._conn.execute(t.notification_outbox.delete().where(c.message_id == message_id))

    def pending_notifications(self, limit: int = 1000) -> list[tuple[str, dict[str, object]]]:
        """(message id, message) of notifications not delivered yet, oldest first."""
        c = t.notification_outbox.c
        rows = self._conn.execute(select(c.message_id, c.message).order_by(c.id).limit(limit)).all()
        return [(str(r.message_id), _json_object(str(r.message), "outbox message")) for r in rows]

    def notification_sent(self, message_id: str, channel: str) -> bool:
        """Whether ``message_id`` was delivered through ``channel`` (a recorded failure does not count)."""
        c = t.notifications.c
        stmt = select(c.id).where(c.message_id == message_id, c.channel == channel, c.ok.is_(True)).limit(1)
        return self._conn.execute(stmt).first() is not None

    def audit(
        self, *, ts_ms: int, who: str, action: str, target: str, source: str = "",
        detail: dict[str, object] | None = None,
    ) -> int:
        """Append one audit entry; returns its id."""
        stmt = insert(t.audit_log).values(
            ts_ms=ts_ms, who=who, action=action, target=target, source=source, detail=json.dumps(detail or {}),
        ).returning(t.audit_log.c.id)
        return int(self._conn.execute(stmt).scalar_one())

    # -- reads behind AlertStore's convenience methods

    def _list_alerts(self, query: _AlertQuery, limit: int, offset: int) -> list[StoredAlert]:
        _check_page(limit, offset)
        c = t.alerts.c
        stmt = (
            select(t.alerts).where(*query.where())
            .order_by(c.last_ms.desc().nulls_last(), c.id.desc())
            .limit(limit).offset(offset)
        )
        return [_stored(row) for row in self._conn.execute(stmt)]

    def _count_alerts(self, query: _AlertQuery) -> int:
        return int(self._conn.execute(select(func.count()).select_from(t.alerts).where(*query.where())).scalar_one())

    def _history(self, alert_id: int) -> list[HistoryRow]:
        c = t.alert_history.c
        rows = self._conn.execute(select(t.alert_history).where(c.alert_id == alert_id).order_by(c.id))
        return [
            HistoryRow(r.id, r.ts_ms, r.who, Action(r.action), State(r.from_state), State(r.to_state), r.reason)
            for r in rows
        ]

    def _notes(self, alert_id: int) -> list[NoteRow]:
        c = t.alert_notes.c
        rows = self._conn.execute(select(t.alert_notes).where(c.alert_id == alert_id).order_by(c.id))
        return [NoteRow(r.id, r.ts_ms, r.who, r.text) for r in rows]

    def _notifications(self, alert_id: int | None, limit: int) -> list[NotificationRow]:
        _check_page(limit)
        c = t.notifications.c
        stmt = select(t.notifications).order_by(c.ts_ms.desc(), c.id.desc()).limit(limit)
        if alert_id is not None:
            stmt = stmt.where(c.alert_id == alert_id)
        return [
            NotificationRow(r.id, r.ts_ms, r.message_id, r.kind, r.audience, r.channel, r.channel_type, r.target,
                            r.ok, r.attempts, r.error, r.alert_id, r.text)
            for r in self._conn.execute(stmt)
        ]

    def _audit_log(
        self, since_ms: int | None, who: str | None, action: str | None, target_prefix: str | None, limit: int
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
            AuditRow(r.id, r.ts_ms, r.who, r.action, r.target, r.source, _json_object(r.detail, f"audit {r.id}"))
            for r in self._conn.execute(stmt)
        ]


# --- the store ----------------------------------------------------------------------------------


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # The sqlite3 module would otherwise BEGIN only before DML, leaving SELECTs and DDL outside the transaction;
    # _sqlite_on_begin issues BEGIN instead (SQLAlchemy's documented recipe for Python < 3.12).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A write transaction takes the write lock up front. A deferred one that read first and wants to write after
    # another writer committed fails at once with SQLITE_BUSY (busy_timeout does not help); IMMEDIATE waits instead.
    write = bool(conn.get_execution_options().get(_WRITE_OPTION))
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


class AlertStore:
    def __init__(self, url: str | URL) -> None:
        """Open the store at a SQLAlchemy URL (e.g. ``sqlite:///var/alerts.db``) and create missing tables."""
        self._engine: Engine = create_engine(url)
        if self._engine.dialect.name == "sqlite":
            event.listen(self._engine, "connect", _sqlite_on_connect)
            event.listen(self._engine, "begin", _sqlite_on_begin)
        self._healthy = True
        with self._tx(write=True) as tx:
            t.metadata.create_all(tx._conn)

    @classmethod
    def sqlite(cls, path: Path) -> AlertStore:
        """A store in the SQLite file ``path`` (its folder is created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(URL.create("sqlite", database=str(path)))

    def close(self) -> None:
        self._engine.dispose()

    def ping(self) -> bool:
        """Whether the database answers (for /healthz). Logs when that changes, not on every ping."""
        try:
            with self._engine.connect() as conn:
                conn.execute(select(1))
        except SQLAlchemyError as err:
            if self._healthy:
                log.warning("alert_store=unreachable error=%s", err)
            self._healthy = False
            return False
        if not self._healthy:
            log.info("alert_store=reachable")
        self._healthy = True
        return True

    @contextmanager
    def _tx(self, *, write: bool) -> Iterator[Tx]:
        with self._engine.connect() as conn:
            if write:
                conn.execution_options(**{_WRITE_OPTION: True})
            with conn.begin():
                yield Tx(conn)

    @contextmanager
    def begin(self) -> Iterator[Tx]:
        """One write transaction: committed when the block ends, rolled back when it raises."""
        with self._tx(write=True) as tx:
            yield tx

    # -- convenience, each its own transaction

    def list_alerts(
        self, *, states: Collection[str] | None = None, site: str | None = None, sites: Collection[str] | None = None,
        device: str | None = None, rule: str | None = None, audiences: Collection[str] | None = None,
        min_severity: Severity | None = None, active_only: bool = False, since_ms: int | None = None,
        limit: int = 100, offset: int = 0,
    ) -> list[StoredAlert]:
        """Alerts matching every filter given (``since_ms`` on ``last_ms``), newest ``last_ms`` first.

        An empty collection matches nothing; None means "any"."""
        query = _AlertQuery(states, site, sites, device, rule, audiences, min_severity, active_only, since_ms)
        with self._tx(write=False) as tx:
            return tx._list_alerts(query, limit, offset)

    def count_alerts(
        self, *, states: Collection[str] | None = None, site: str | None = None, sites: Collection[str] | None = None,
        device: str | None = None, rule: str | None = None, audiences: Collection[str] | None = None,
        min_severity: Severity | None = None, active_only: bool = False, since_ms: int | None = None,
    ) -> int:
        """How many alerts :meth:`list_alerts` would find without a limit."""
        query = _AlertQuery(states, site, sites, device, rule, audiences, min_severity, active_only, since_ms)
        with self._tx(write=False) as tx:
            return tx._count_alerts(query)

    def get(self, alert_id: int) -> StoredAlert | None:
        with self._tx(write=False) as tx:
            return tx.get_id(alert_id)

    def get_state(self, name: str) -> dict[str, object] | None:
        with self._tx(write=False) as tx:
            return tx.get_state(name)

    def open_alerts(self) -> list[StoredAlert]:
        with self._tx(write=False) as tx:
            return tx.open_alerts()

    def history(self, alert_id: int) -> list[HistoryRow]:
        """The alert's transitions, oldest first."""
        with self._tx(write=False) as tx:
            return tx._history(alert_id)

    def notes(self, alert_id: int) -> list[NoteRow]:
        """The alert's notes, oldest first."""
        with self._tx(write=False) as tx:
            return tx._notes(alert_id)

    def notifications(self, *, alert_id: int | None = None, limit: int = 100) -> list[NotificationRow]:
        """Recorded deliveries, newest first."""
        with self._tx(write=False) as tx:
            return tx._notifications(alert_id, limit)

    def audit_log(
        self, *, since_ms: int | None = None, who: str | None = None, action: str | None = None,
        target_prefix: str | None = None, limit: int = 100,
    ) -> list[AuditRow]:
        """Audit entries matching every filter given, newest first (``target_prefix`` is case-sensitive)."""
        with self._tx(write=False) as tx:
            return tx._audit_log(since_ms, who, action, target_prefix, limit)

    def act(self, alert_id: int, fn: Callable[[Alert], R]) -> tuple[StoredAlert, R]:
        """Load the alert, apply ``fn`` (e.g. ``lambda a: acknowledge(a, "ana", now)``) and save it.

        On :class:`Conflict` (someone saved the alert in between) reload and apply ``fn`` again, at most
        ``ACT_RETRIES`` times, so ``fn`` may run more than once. ``KeyError`` when there is no such alert; an
        exception from ``fn`` (``InvalidAction``) propagates and nothing is written.
        """
        # No backoff between attempts: the reload already sees the other writer's commit, so the retry does not
        # race it again; only a third writer in the same instant can conflict once more.
        retries = 0
        while True:
            with self._tx(write=False) as tx:
                stored = tx.get_id(alert_id)
            if stored is None:
                raise KeyError(alert_id)
            result = fn(stored.alert)
            try:
                with self.begin() as tx:
                    return tx.save(stored.alert, stored.meta, stored.version), result
            except Conflict:
                retries += 1
                if retries > ACT_RETRIES:
                    raise
                log.info("alert_conflict alert_id=%d key=%s retry=%d", alert_id, stored.alert.key, retries)
