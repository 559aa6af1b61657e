"""The alert and audit store: the authority for alert rows, where the rules service and the API meet.

A SQLite file by default (the engine of ``alerts.db``, shared with the API: WAL, ``busy_timeout`` 5000 ms, foreign
keys on); the SQL stays within what PostgreSQL
runs too. An :class:`Alert` is one row in ``alerts``; its history and notes are rows of their own, appended by
:meth:`Tx.save` and never rewritten, so a loaded :class:`Alert` carries empty ``history`` and ``notes`` lists.

Concurrency is optimistic: every alert row has a ``version``; :meth:`Tx.save` updates only the version it was
given and raises :class:`Conflict` otherwise. On SQLite a write transaction starts with ``BEGIN IMMEDIATE``, so
writers queue (up to the busy timeout) instead of failing half-way when another writer committed first. Async
callers run store work through :meth:`AlertStore.call` (one worker thread per store), never on the event loop.

This module is the write side and the store itself; the row types live in ``alerts._rows`` and the read-only
queries in ``alerts._queries`` (both private: import the row types from here).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import logging
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import orjson
from sqlalchemy import URL, Connection, Engine, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from alerts import _queries as q
from alerts import _tables as t
from alerts import evidence
from alerts._queries import AlertQuery
from alerts._rows import (
    AlertMeta,
    AuditRow,
    ChannelQueue,
    HistoryRow,
    NoteRow,
    NotificationRow,
    QueueRow,
    StoredAlert,
    Value,
    alert_values,
    json_object,
    key_clause,
    point_column,
    queue_row,
    stored_alert,
)
from alerts.db import BUSY_TIMEOUT_MS, DEFAULT_STORE_URL, READ_ONLY_OPTION, SCHEMA_LOCK, make_engine
from alerts.evidence import EvidenceRow
from alerts.lifecycle import Alert, AlertKey, Severity, State
from alerts.migrations import ALERTS, upgrade

__all__ = [
    "ACT_RETRIES",
    "BUSY_TIMEOUT_MS",
    "FAILED",
    "PENDING",
    "SCHEMA_LOCK",
    "AlertMeta",
    "AlertStore",
    "AuditRow",
    "ChannelQueue",
    "Conflict",
    "EvidenceRow",
    "HistoryRow",
    "NoteRow",
    "NotificationRow",
    "QueueRow",
    "StoredAlert",
    "Tx",
    "Value",
]

log = logging.getLogger(__name__)

R = TypeVar("R")

ACT_RETRIES = 3
PENDING = "pending"  # an outbox row still to deliver
FAILED = "failed"  # an outbox row its channel refused for good (kept, with the reason, for people to see)


class Conflict(Exception):
    """The alert row changed (or appeared) since it was loaded. Leave the transaction, reload and retry."""

    def __init__(self, key: AlertKey, version: int | None) -> None:
        self.key = key
        self.version = version
        seen = "absent" if version is None else f"at version {version}"
        super().__init__(f"alert {key} changed since it was loaded ({seen})")


# --- the transaction ----------------------------------------------------------------------------


class Tx:
    """One transaction on the store (from :meth:`AlertStore.begin`). After a :class:`Conflict`, leave it."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def run(self, fn: Callable[..., R], /, *args: Any) -> R:
        """``fn(connection, *args)`` in this transaction: the store's other modules' work (``alerts.lease``)."""
        return fn(self._conn, *args)

    # -- alerts

    def get(self, key: AlertKey) -> StoredAlert | None:
        row = self._conn.execute(select(t.alerts).where(key_clause(key))).one_or_none()
        return None if row is None else stored_alert(row)

    def get_id(self, alert_id: int) -> StoredAlert | None:
        row = self._conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id)).one_or_none()
        return None if row is None else stored_alert(row)

    def save(self, alert: Alert, meta: AlertMeta, version: int | None) -> StoredAlert:
        """Insert (``version`` None) or update the row at ``version``; raise :class:`Conflict` if it moved on.

        Every entry in ``alert.history`` and ``alert.notes`` is appended as a new row. The returned copy has
        empty lists and the new version; ``alert`` itself is left as it was, so save the returned copy next time.
        """
        values = alert_values(alert, meta)
        if version is None:
            alert_id, new_version = self._insert(alert.key, values), 1
        else:
            alert_id, new_version = self._update(alert.key, values, version), version + 1
        self._append(alert_id, alert)
        return StoredAlert(alert_id, dataclasses.replace(alert, history=[], notes=[]), meta, new_version)

    def _insert(self, key: AlertKey, values: dict[str, object]) -> int:
        if self._conn.execute(select(t.alerts.c.id).where(key_clause(key))).first() is not None:
            raise Conflict(key, None)
        keys = {"rule_id": key.rule_id, "site": key.site, "device": key.device, "point": point_column(key)}
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
            .where(key_clause(key), c.version == version)
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
                    {
                        "alert_id": alert_id,
                        "ts_ms": h.ts_ms,
                        "who": h.who,
                        "action": h.action.value,
                        "from_state": h.from_state.value,
                        "to_state": h.to_state.value,
                        "reason": h.reason,
                    }
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
            .where(
                or_(
                    c.state != State.NORMAL.value,
                    c.shelved_until_ms.is_not(None),
                    c.out_of_service.is_(True),
                    c.chattering.is_(True),
                )
            )
            .order_by(c.id)
        )
        return [stored_alert(row) for row in self._conn.execute(stmt)]

    # -- engine checkpoints

    def put_state(self, name: str, data: dict[str, object]) -> None:
        """Store a JSON blob under ``name``, replacing any earlier one."""
        text = orjson.dumps(data).decode()
        # UPDATE, then INSERT when nothing was there: portable, and a blob name has one writer (its service).
        done = self._conn.execute(update(t.state_blobs).where(t.state_blobs.c.name == name).values(data=text))
        if done.rowcount == 0:
            self._conn.execute(insert(t.state_blobs).values(name=name, data=text))

    def delete_state(self, name: str) -> None:
        self._conn.execute(t.state_blobs.delete().where(t.state_blobs.c.name == name))

    def get_state(self, name: str) -> dict[str, object] | None:
        text = self._conn.execute(select(t.state_blobs.c.data).where(t.state_blobs.c.name == name)).scalar()
        return None if text is None else json_object(text, f"state blob {name!r}")

    # -- notifications and audit

    def add_notification(
        self,
        *,
        ts_ms: int,
        message_id: str,
        kind: str,
        audience: str,
        channel: str,
        channel_type: str,
        target: str,
        ok: bool,
        attempts: int,
        error: str,
        alert_id: int | None,
        text: str,
    ) -> int:
        """Record one delivery (or failed delivery) of a notification; returns the row id."""
        stmt = (
            insert(t.notifications)
            .values(
                ts_ms=ts_ms,
                message_id=message_id,
                kind=kind,
                audience=audience,
                channel=channel,
                channel_type=channel_type,
                target=target,
                ok=ok,
                attempts=attempts,
                error=error,
                alert_id=alert_id,
                text=text,
            )
            .returning(t.notifications.c.id)
        )
        return int(self._conn.execute(stmt).scalar_one())

    def enqueue_notification(
        self,
        *,
        created_ms: int,
        message_id: str,
        channels: Collection[str],
        kind: str,
        message: dict[str, object],
        alert_id: int | None,
    ) -> None:
        """Keep a notification to deliver on each of ``channels``, in the transaction of the change that decided it
        (the outbox). Each row is tried from ``created_ms`` on until its channel confirms it."""
        if not channels:
            return
        text = orjson.dumps(message).decode()
        row = {
            "message_id": message_id,
            "alert_id": alert_id,
            "kind": kind,
            "created_ms": created_ms,
            "message": text,
            "status": PENDING,
            "attempts": 0,
            "next_ms": created_ms,
            "last_error": "",
            "noted": False,
        }
        self._conn.execute(insert(t.notification_queue), [{**row, "channel": c} for c in channels])

    def claim_notifications(
        self, now_ms: int, lease_ms: int, limit: int, claimed_by: str | None = None
    ) -> list[QueueRow]:
        """Take up to ``limit`` rows due now for delivery, oldest first, leased to the caller until ``now_ms +
        lease_ms`` (another instance skips them; after a crash the lease runs out and they are due again).

        A row waits while an older row of the same alert and channel is pending, so that one alert's notifications
        reach a channel in the order they were decided (its raise before its clear). On PostgreSQL the rows are
        locked with ``FOR UPDATE SKIP LOCKED`` while leased; SQLite's write transaction (BEGIN IMMEDIATE) serialises
        the claim."""
        nq = t.notification_queue
        earlier = nq.alias("earlier")
        blocked = (
            select(earlier.c.id)
            .where(
                earlier.c.alert_id == nq.c.alert_id,
                earlier.c.channel == nq.c.channel,
                earlier.c.id < nq.c.id,
                earlier.c.status == PENDING,
            )
            .exists()
        )
        stmt = (
            select(nq)
            .where(
                nq.c.status == PENDING,
                nq.c.next_ms <= now_ms,
                or_(nq.c.lease_ms.is_(None), nq.c.lease_ms <= now_ms),
                ~blocked,
            )
            .order_by(nq.c.id)
            .limit(limit)
        )
        if self._conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update(skip_locked=True, of=nq)
        rows = [queue_row(r) for r in self._conn.execute(stmt)]
        if rows:
            ids = [r.id for r in rows]
            values = {"lease_ms": now_ms + lease_ms, "claimed_by": claimed_by}
            self._conn.execute(update(nq).where(nq.c.id.in_(ids)).values(**values))
        return rows

    def notification_delivered(self, row_id: int) -> None:
        """The channel confirmed: the row leaves the outbox (the caller records it in the notification log)."""
        self._conn.execute(t.notification_queue.delete().where(t.notification_queue.c.id == row_id))

    def notification_retry(self, row_id: int, *, attempts: int, next_ms: int, error: str, now_ms: int) -> None:
        """A failure worth another try: due again at ``next_ms``, the lease released."""
        nq = t.notification_queue
        values = {
            "attempts": attempts,
            "next_ms": next_ms,
            "last_error": error,
            "last_try_ms": now_ms,
            "lease_ms": None,
        }
        self._conn.execute(update(nq).where(nq.c.id == row_id).values(**values))

    def notification_failed(self, row_id: int, *, attempts: int, error: str, now_ms: int) -> None:
        """The channel refused for good: kept as failed with the reason, never tried again."""
        nq = t.notification_queue
        values = {"status": FAILED, "attempts": attempts, "last_error": error, "last_try_ms": now_ms, "lease_ms": None}
        self._conn.execute(update(nq).where(nq.c.id == row_id).values(**values))

    def release_notifications(self, row_ids: Collection[int]) -> None:
        """Give claimed rows back (their tries were cut short): due again at once for any instance."""
        if row_ids:
            nq = t.notification_queue
            self._conn.execute(update(nq).where(nq.c.id.in_(list(row_ids))).values(lease_ms=None))

    def release_claims_of(self, claimed_by: str) -> int:
        """Give back every row ``claimed_by`` holds (a process known dead: the engine that took its partition over),
        due at once instead of after their lease; returns how many."""
        nq = t.notification_queue
        stmt = update(nq).where(nq.c.claimed_by == claimed_by, nq.c.status == PENDING)
        return int(self._conn.execute(stmt.values(lease_ms=None, claimed_by=None)).rowcount or 0)

    def wake_channel(self, channel: str, now_ms: int) -> int:
        """Every pending row of ``channel`` due now (the channel came back: what waited goes at once)."""
        nq = t.notification_queue
        stmt = update(nq).where(nq.c.channel == channel, nq.c.status == PENDING, nq.c.next_ms > now_ms)
        return int(self._conn.execute(stmt.values(next_ms=now_ms)).rowcount or 0)

    def unreported_failures(self, alert_id: int, channel: str, before_id: int) -> list[QueueRow]:
        """Failed rows of the alert on the channel, older than ``before_id``, that no later notification has
        reported yet; :meth:`mark_reported` once one has."""
        nq = t.notification_queue
        stmt = (
            select(nq)
            .where(
                nq.c.alert_id == alert_id,
                nq.c.channel == channel,
                nq.c.id < before_id,
                nq.c.status == FAILED,
                nq.c.noted.is_(False),
            )
            .order_by(nq.c.id)
        )
        return [queue_row(r) for r in self._conn.execute(stmt)]

    def mark_reported(self, row_ids: Collection[int]) -> None:
        if row_ids:
            nq = t.notification_queue
            self._conn.execute(update(nq).where(nq.c.id.in_(list(row_ids))).values(noted=True))

    def channel_queues(self) -> list[ChannelQueue]:
        """Per channel with rows in the outbox: pending and failed counts, and the oldest pending row's time."""
        return q.channel_queues(self._conn)

    def audit(
        self,
        *,
        ts_ms: int,
        who: str,
        action: str,
        target: str,
        source: str = "",
        detail: dict[str, object] | None = None,
    ) -> int:
        """Append one audit entry; returns its id."""
        stmt = (
            insert(t.audit_log)
            .values(
                ts_ms=ts_ms,
                who=who,
                action=action,
                target=target,
                source=source,
                detail=json.dumps(detail or {}),
            )
            .returning(t.audit_log.c.id)
        )
        return int(self._conn.execute(stmt).scalar_one())


# --- the store ----------------------------------------------------------------------------------


class AlertStore:
    def __init__(self, url: str | URL | Engine = DEFAULT_STORE_URL) -> None:
        """Open the store at a SQLAlchemy URL (e.g. ``sqlite:///var/alerts.db``) or on an engine from
        :func:`alerts.db.make_engine` (the API shares its own), and upgrade its schema to the newest migration."""
        self._own_engine = not isinstance(url, Engine)
        self._engine: Engine = make_engine(url) if not isinstance(url, Engine) else url
        self._healthy = True
        self._worker: ThreadPoolExecutor | None = None
        upgrade(self._engine, ALERTS)

    async def call(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` (store work) on this store's one worker thread and wait for it without
        blocking the event loop: a SQLite writer may wait up to the busy timeout (5 s) for the lock, and MQTT
        must go on meanwhile. One thread, so this process's store work runs in the order it was asked for."""
        if self._worker is None:
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alert-store")
        return await asyncio.get_running_loop().run_in_executor(self._worker, functools.partial(fn, *args, **kwargs))

    @classmethod
    def sqlite(cls, path: Path) -> AlertStore:
        """A store in the SQLite file ``path`` (its folder is created)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(URL.create("sqlite", database=str(path)))

    def close(self) -> None:
        """Finish the worker's queued work, then release the engine (unless it was handed in)."""
        if self._worker is not None:
            self._worker.shutdown(wait=True)
            self._worker = None
        if self._own_engine:
            self._engine.dispose()

    def ping(self) -> bool:
        """Whether the database answers (for /healthz). Logs when that changes, not on every ping."""
        try:
            with self._engine.connect() as conn:
                conn.execution_options(**{READ_ONLY_OPTION: True}).execute(select(1))
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
            if not write:
                conn.execution_options(**{READ_ONLY_OPTION: True})
            with conn.begin():
                yield Tx(conn)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        """A read-only transaction's connection, for the queries of ``alerts._queries``."""
        with self._tx(write=False) as tx:
            yield tx._conn

    @contextmanager
    def begin(self) -> Iterator[Tx]:
        """One write transaction: committed when the block ends, rolled back when it raises."""
        with self._tx(write=True) as tx:
            yield tx

    # -- convenience, each its own transaction

    def list_alerts(
        self,
        *,
        states: Collection[str] | None = None,
        site: str | None = None,
        sites: Collection[str] | None = None,
        device: str | None = None,
        rule: str | None = None,
        audiences: Collection[str] | None = None,
        min_severity: Severity | None = None,
        active_only: bool = False,
        since_ms: int | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StoredAlert]:
        """Alerts matching every filter given (``since_ms`` on ``last_ms``), newest ``last_ms`` first.

        An empty collection matches nothing; None means "any"."""
        query = AlertQuery(states, site, sites, device, rule, audiences, min_severity, active_only, since_ms)
        with self._read() as conn:
            return q.list_alerts(conn, query, limit, offset)

    def count_alerts(
        self,
        *,
        states: Collection[str] | None = None,
        site: str | None = None,
        sites: Collection[str] | None = None,
        device: str | None = None,
        rule: str | None = None,
        audiences: Collection[str] | None = None,
        min_severity: Severity | None = None,
        active_only: bool = False,
        since_ms: int | None = None,
    ) -> int:
        """How many alerts :meth:`list_alerts` would find without a limit."""
        query = AlertQuery(states, site, sites, device, rule, audiences, min_severity, active_only, since_ms)
        with self._read() as conn:
            return q.count_alerts(conn, query)

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
        with self._read() as conn:
            return q.history(conn, alert_id)

    def evidence(self, alert_id: int) -> list[EvidenceRow]:
        """What raised or escalated the alert (``alerts.evidence``), oldest first."""
        with self._read() as conn:
            return evidence.rows(conn, alert_id)

    def notes(self, alert_id: int) -> list[NoteRow]:
        """The alert's notes, oldest first."""
        with self._read() as conn:
            return q.notes(conn, alert_id)

    def notifications(self, *, alert_id: int | None = None, limit: int = 100) -> list[NotificationRow]:
        """Recorded deliveries, newest first."""
        with self._read() as conn:
            return q.notifications(conn, alert_id, limit)

    def notification_queue(
        self, *, statuses: Collection[str] | None = None, channel: str | None = None, limit: int = 100
    ) -> list[QueueRow]:
        """Rows in the outbox (pending and failed), oldest first."""
        with self._read() as conn:
            return q.queue(conn, statuses, channel, limit)

    def channel_queues(self) -> list[ChannelQueue]:
        """Per channel with rows in the outbox: pending and failed counts, and the oldest pending row's time."""
        with self._read() as conn:
            return q.channel_queues(conn)

    def audit_log(
        self,
        *,
        since_ms: int | None = None,
        who: str | None = None,
        action: str | None = None,
        target_prefix: str | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        """Audit entries matching every filter given, newest first (``target_prefix`` is case-sensitive)."""
        with self._read() as conn:
            return q.audit_log(conn, since_ms, who, action, target_prefix, limit)

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
