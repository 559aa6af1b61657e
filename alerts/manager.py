"""The alert manager: rule transitions in, one stored alert per rule and device (and point), notifications out.

The alert store is the authority for alerts (the API acts on the same rows), so every change is: load the alert's
row, run it through the pipeline (``alerts.pipeline``: lifecycle, then suppression, chattering, flood, escalation,
each stage loading and saving its own state in the same transaction), save it with an optimistic version check,
and retry the whole batch from fresh rows when someone else changed one meanwhile. All store work runs on the
store's worker thread (``AlertStore.call``), never on the event loop.

Notifications go out after the change is committed, in background tasks; each channel's outcome is written to the
notification log. Every change is also published on ``lifeline/v1/alerts/events/{id}`` for live views.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from alerts.config import AlertServiceConfig
from alerts.lifecycle import Alert, AlertKey, Severity
from alerts.notify import Message, Notifier, render
from alerts.pipeline import Pipeline
from alerts.policy import Kind, Notification
from alerts.store import AlertMeta, AlertStore, Conflict, StoredAlert, Tx
from device_profiles import Profile
from infra.metrics import Metric, counter
from infra.metrics import render as render_metrics
from infra.mqtt import PublishNowait
from rules import Rule, Transition
from telemetry import topics

log = logging.getLogger("lifeline.alerts")

SAVE_ATTEMPTS = 3

# Rule severities (rules.schema) and the lifecycle's priorities (ISA-18.2 uses four).

EventPublisher = PublishNowait


class StoreBusy(Exception):
    """Alert changes could not be saved (repeated conflicts): the input that caused them must come again."""


@dataclass(slots=True)
class Counters:
    transitions: int = 0
    raised: int = 0
    cleared: int = 0
    conflicts: int = 0
    notifications: int = 0
    notifications_failed: int = 0
    unrouted: int = 0
    held: int = 0
    events_unsent: int = 0  # alert events for live views the broker link did not take (not connected)


class AlertManager:
    def __init__(
        self,
        config: AlertServiceConfig,
        store: AlertStore,
        rules: list[Rule],
        profiles: dict[str, Profile],
        notifier: Notifier | None = None,
        publish_event: EventPublisher | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.store = store
        self.rules = {r.id: r for r in rules}
        self.profiles = profiles
        self.notifier = notifier
        self.publish_event = publish_event
        self.clock = clock
        self.counters = Counters()
        self.pipeline = Pipeline(config.policy, config.escalation)
        self._sending: set[asyncio.Task[None]] = set()

    # -- who is told -------------------------------------------------------------------------------------------
    def audience(self, rule_id: str, profile: str | None) -> str:
        rule = self.rules.get(rule_id)
        if rule is not None and rule.audience:
            return rule.audience
        domain = self.profiles[profile].tags.get("domain") if profile in self.profiles else None
        return self.config.audiences.get(domain or "", "default")

    # -- rule transitions --------------------------------------------------------------------------------------
    async def on_transitions(
        self, transitions: list[Transition], checkpoint: tuple[str, dict[str, Any]] | None = None
    ) -> None:
        """Apply a batch of rule transitions in one transaction, with ``checkpoint`` (a named state blob: the rules
        engine's state after it produced them) in the same transaction: after a crash the store and the engine's
        saved state agree, so a replay neither repeats nor loses a transition. Raises ``StoreBusy`` when the batch
        cannot be saved (the caller must not acknowledge its input)."""
        self.counters.transitions += len(transitions)
        for stored, messages in await self.store.call(self._apply_batch, transitions, checkpoint):
            self._after_change(stored, messages)

    def _apply_batch(
        self, transitions: list[Transition], checkpoint: tuple[str, dict[str, Any]] | None
    ) -> list[tuple[StoredAlert, list[Message]]]:
        """The batch in one transaction (store work: runs on the store's worker thread). Alerts, the stages' state,
        the outbox and ``checkpoint`` commit together or not at all, so a retry starts from fresh rows."""
        for _ in range(SAVE_ATTEMPTS):
            try:
                with self.store.begin() as tx:
                    done = [r for r in (self._apply(tx, t) for t in transitions) if r is not None]
                    if checkpoint is not None:
                        tx.put_state(*checkpoint)
            except Conflict:  # an operator changed one of these alerts meanwhile: again from fresh rows
                self.counters.conflicts += 1
                continue
            for *_, raised in done:
                if raised is True:
                    self.counters.raised += 1
                elif raised is False:
                    self.counters.cleared += 1
            return [(stored, messages) for stored, messages, _ in done]
        raise StoreBusy(f"{len(transitions)} alert change(s) not saved after {SAVE_ATTEMPTS} conflicts")

    def _apply(self, tx: Tx, t: Transition) -> tuple[StoredAlert, list[Message], bool | None] | None:
        """One transition inside the batch's transaction: (saved alert, messages, raised / cleared / neither)."""
        key = t.key
        severity = t.severity
        stored = tx.get(key)
        if stored is None and severity is None:
            return None  # a clear for an alert that was never stored: nothing to do
        alert = stored.alert if stored else Alert(key)
        meta = self._meta_for(t, stored)
        change = self.pipeline.on_rule(tx, alert, meta.audience, severity, t.value, t.ts, t.reason)
        if change is None:
            return None  # nothing changed (e.g. a repeated clear)
        saved = tx.save(alert, meta, stored.version if stored else None)
        messages = self._enqueue(tx, change.out, {key: saved})
        raised = False if severity is None else True if stored is None or not stored.alert.active else None
        return saved, messages, raised

    def _meta_for(self, t: Transition, stored: StoredAlert | None) -> AlertMeta:
        rule = self.rules.get(t.rule)
        profile = t.profile or (stored.meta.profile if stored else None)
        return AlertMeta(
            title=rule.title if rule else t.rule,
            audience=self.audience(t.rule, profile),
            area=self.config.area_of(t.site),
            profile=profile,
            reason=t.reason,
        )

    # -- time-driven: escalation, shelves that end, chattering that ends ----------------------------------------
    async def tick(self) -> None:
        now = int(self.clock() * 1000)
        done = await self.store.call(self._tick, now)
        if done is None:
            return
        changed, messages = done
        for s in changed:
            self._publish(s)
        for msg in messages:
            self._send(msg)

    def _tick(self, now: int) -> tuple[list[StoredAlert], list[Message]] | None:
        """Every open alert through the pipeline's tick, in one transaction (store work). None on a conflict: an
        operator acted meanwhile, and the next tick sees the fresh rows."""
        try:
            with self.store.begin() as tx:
                changed: list[StoredAlert] = []
                notes: list[Notification] = []
                for s in tx.open_alerts():
                    notes += self.pipeline.on_tick(tx, s.alert, s.meta.audience, now).out
                    if s.alert.history:
                        changed.append(tx.save(s.alert, s.meta, s.version))
                messages = self._enqueue(tx, notes, {s.alert.key: s for s in changed})
        except Conflict:
            self.counters.conflicts += 1
            return None
        return changed, messages

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver what the outbox still holds (a crash before delivery), then tick until ``stop``; then wait
        (bounded) for notifications under way."""
        await self.resume()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.config.tick_s)
            except TimeoutError:
                await self.tick()
        await self.drain(10.0)

    async def drain(self, timeout_s: float) -> None:
        if self._sending:
            await asyncio.wait(set(self._sending), timeout=timeout_s)

    # -- after a change ----------------------------------------------------------------------------------------
    def _after_change(self, stored: StoredAlert, messages: list[Message]) -> None:
        self._publish(stored)
        if not messages and stored.alert.active:
            self.counters.held += 1
        for msg in messages:
            self._send(msg)

    def _publish(self, stored: StoredAlert) -> None:
        if self.publish_event is None or not self.config.publish_events:
            return
        if not self.publish_event(topics.alert_event(stored.id), orjson.dumps(alert_event(stored))):
            self.counters.events_unsent += 1  # live views catch up from the store; counted, not retried

    def _enqueue(self, tx: Tx, notes: list[Notification], saved: dict[AlertKey, StoredAlert]) -> list[Message]:
        """Messages for ``notes``, written to the outbox in the change's own transaction, with the channels routed
        now (so that a delivery after a restart goes where it would have gone)."""
        now = int(self.clock() * 1000)
        out = []
        for note in notes:
            msg = self._message(note, saved.get(note.key) if note.key else None)
            if not msg.targets and self.notifier is not None:
                msg = dataclasses.replace(msg, targets=tuple(self.notifier.route(msg, now)))
            tx.enqueue_notification(created_ms=now, message_id=msg.id, message=_to_outbox(msg), alert_id=msg.alert_id)
            out.append(msg)
        return out

    async def resume(self) -> int:
        """Send what the outbox holds: notifications decided before a crash or stop and not delivered."""
        pending = await self.store.call(self._pending)
        for _, data in pending:
            self._send(_from_outbox(data), resumed=True)
        if pending:
            log.info("notifications resumed from the outbox count=%d", len(pending))
        return len(pending)

    def _pending(self) -> list[tuple[str, dict[str, Any]]]:
        with self.store.begin() as tx:
            return tx.pending_notifications()

    def _unsent(self, msg: Message) -> tuple[str, ...]:
        with self.store.begin() as tx:
            return tuple(c for c in msg.targets if not tx.notification_sent(msg.id, c))

    def _send(self, msg: Message, resumed: bool = False) -> None:
        task = asyncio.ensure_future(self._deliver(msg, resumed))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    def _message(self, note: Notification, stored: StoredAlert | None) -> Message:
        severity = note.severity.value if note.severity is not None else Severity.WARNING.value
        key = note.key
        alert = stored.alert if stored else None
        meta = stored.meta if stored else None
        unit = None
        if key is not None and key.point and meta and meta.profile in self.profiles:
            unit = self.profiles[meta.profile].units.get(key.point)
        what = meta.title if meta else note.audience
        detail = meta.reason if meta and note.kind is not Kind.FLOOD else note.text
        title, text = render(
            note.kind.value,
            severity,
            what,
            site=key.site if key else None,
            device=key.device if key else None,
            point=key.point if key else None,
            value=alert.value if alert else None,
            unit=unit,
            level=note.level,
            detail=detail,
        )
        ident = f"{stored.id if stored else note.audience}-{note.kind.value}-{note.ts_ms}-{uuid.uuid4().hex[:12]}"
        return Message(
            id=ident,
            kind=note.kind.value,
            audience=note.audience,
            severity=severity,
            title=title,
            text=text,
            ts_ms=note.ts_ms,
            area=meta.area if meta else None,
            site=key.site if key else None,
            device=key.device if key else None,
            rule=key.rule_id if key else None,
            point=key.point if key else None,
            value=alert.value if alert else None,
            alert_id=stored.id if stored else None,
            targets=note.targets,
            level=note.level,
        )

    async def _deliver(self, msg: Message, resumed: bool = False) -> None:
        if self.notifier is None or not msg.targets:
            self.counters.unrouted += 1
            await self.store.call(
                self._log_outcome,
                msg,
                "",
                "",
                "",
                ok=False,
                attempts=0,
                error="no route matches this notification",
                done=True,
            )
            return
        todo = msg.targets
        if resumed:  # from the outbox after a restart: the channels that already have it are not sent again
            todo = await self.store.call(self._unsent, msg)
        if not todo:
            await self.store.call(self._log_done, msg)
            return
        outcomes = await self.notifier.send(dataclasses.replace(msg, targets=todo))
        for i, o in enumerate(outcomes):
            self.counters.notifications += 1
            if not o.ok:
                self.counters.notifications_failed += 1
                log.warning(
                    "notification failed channel=%s alert=%s kind=%s attempts=%d error=%s",
                    o.channel,
                    msg.alert_id,
                    msg.kind,
                    o.attempts,
                    o.error,
                )
            await self.store.call(
                self._log_outcome,
                msg,
                o.channel,
                o.type,
                o.target,
                ok=o.ok,
                attempts=o.attempts,
                error=o.error,
                done=i == len(outcomes) - 1,
            )
        if not outcomes:
            await self.store.call(self._log_done, msg)

    def _log_outcome(
        self, msg: Message, channel: str, ctype: str, target: str, *, ok: bool, attempts: int, error: str, done: bool
    ) -> None:
        """One channel's outcome in the notification log; with ``done`` the message also leaves the outbox (every
        channel had its try, retries included: a failure stays in the log, it is not retried forever)."""
        with self.store.begin() as tx:
            tx.add_notification(
                ts_ms=int(self.clock() * 1000),
                message_id=msg.id,
                kind=msg.kind,
                audience=msg.audience,
                channel=channel,
                channel_type=ctype,
                target=target,
                ok=ok,
                attempts=attempts,
                error=error,
                alert_id=msg.alert_id,
                text=msg.text,
            )
            if done:
                tx.dequeue_notification(msg.id)

    def _log_done(self, msg: Message) -> None:
        with self.store.begin() as tx:
            tx.dequeue_notification(msg.id)

    def metrics_text(self) -> str:
        return render_metrics(self)

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        rows = [
            ("lifeline_alerts_transitions_total", c.transitions),
            ("lifeline_alerts_raised_total", c.raised),
            ("lifeline_alerts_cleared_total", c.cleared),
            ("lifeline_alerts_store_conflicts_total", c.conflicts),
            ("lifeline_alerts_notifications_total", c.notifications),
            ("lifeline_alerts_notifications_failed_total", c.notifications_failed),
            ("lifeline_alerts_notifications_unrouted_total", c.unrouted),
            ("lifeline_alerts_events_unsent_total", c.events_unsent),
        ]
        for name, value in rows:
            yield counter(name, "", value)


def _to_outbox(msg: Message) -> dict[str, object]:
    data = dataclasses.asdict(msg)
    data["targets"] = list(msg.targets)
    return data


def _from_outbox(data: dict[str, Any]) -> Message:
    return Message(**{**data, "targets": tuple(data.get("targets") or ())})


def alert_event(stored: StoredAlert) -> dict[str, Any]:
    """An alert as published on its event topic and shown by live views."""
    a, m = stored.alert, stored.meta
    return {
        "id": stored.id,
        "rule": a.key.rule_id,
        "site": a.key.site,
        "device": a.key.device,
        "point": a.key.point,
        "state": a.state.value,
        "severity": a.severity.value,
        "title": m.title,
        "reason": m.reason,
        "audience": m.audience,
        "area": m.area,
        "value": a.value,
        "first_ms": a.first_ms,
        "last_ms": a.last_ms,
        "count": a.count,
        "shelved_until_ms": a.shelved_until_ms,
        "out_of_service": a.out_of_service,
        "chattering": a.chattering,
        "escalation_level": a.escalation_level,
        "assignee": a.assignee,
        "version": stored.version,
    }
