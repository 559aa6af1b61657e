"""The alert manager: rule transitions in, one stored alert per rule and device (and point), notifications out.

The alert store is the authority for alerts (the API acts on the same rows), so every change is: load the alert's
row, run it through the pipeline (``alerts.pipeline``: lifecycle, then suppression, chattering, flood, escalation,
each stage loading and saving its own state in the same transaction), save it with an optimistic version check,
and retry the whole batch from fresh rows when someone else changed one meanwhile. All store work runs on the
store's worker thread (``AlertStore.call``), never on the event loop.

Notifications are written to the store's outbox in the change's own transaction, one row per channel, and delivered
from there by ``alerts.delivery`` (retried until the channel confirms, in order per alert and channel). A channel
whose notifications wait longer than ``notify.outbox.failing_after_s`` raises an alert of its own
(:data:`CHANNEL_FAILING_RULE`), told on the other channels, cleared when it delivers again. Every change is also
published on ``lifeline/v1/alerts/events/{id}`` for live views.
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

from alerts import evidence
from alerts.config import AlertServiceConfig
from alerts.delivery import Delivery, message_to_outbox
from alerts.lifecycle import Alert, AlertKey, Severity
from alerts.notify import Message, Notifier, render
from alerts.notify.message import format_time
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
# The alert a channel whose notifications wait too long raises: one per channel (the device), at site "lifeline".
CHANNEL_FAILING_RULE = "lifeline.notify.channel_failing"
CHANNEL_FAILING_SITE = "lifeline"

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
        self.delivery = Delivery(store, notifier, config.notify, clock)
        # checked first in every transaction of rule transitions (a partition's lease, alerts.lease): raises when
        # this engine may no longer write
        self.fence: Callable[[Tx], None] | None = None

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
                    if self.fence is not None:
                        self.fence(tx)
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
        if t.evidence is not None and severity is not None:  # a raise or escalation keeps what raised it
            tx.run(evidence.add, saved.id, t.ts, severity, t.evidence)
        messages = self._enqueue(tx, change.out, {key: saved})
        raised = False if severity is None else True if stored is None or not stored.alert.active else None
        return saved, messages, raised

    def _meta_for(self, t: Transition, stored: StoredAlert | None) -> AlertMeta:
        rule = self.rules.get(t.rule)
        profile = t.profile or (stored.meta.profile if stored else None)
        title = rule.title if rule else "Notification channel failing" if t.rule == CHANNEL_FAILING_RULE else t.rule
        return AlertMeta(
            title=title,
            audience=self.audience(t.rule, profile),
            area=self.config.area_of(t.site),
            profile=profile,
            reason=t.reason,
        )

    # -- time-driven: escalation, shelves that end, chattering that ends ----------------------------------------
    async def tick(self) -> None:
        now = int(self.clock() * 1000)
        done = await self.store.call(self._tick, now)
        if done is not None:
            for stored in done:
                self._publish(stored)
            self.delivery.wake()
        await self.check_channels(now)

    async def check_channels(self, now: int) -> None:
        """Raise "notification channel X failing" when X's oldest waiting notification has waited longer than
        ``notify.outbox.failing_after_s``; clear it once X has nothing waiting that long (it delivers again). Judged
        from the outbox as the delivery loop last saw it (shared by every instance on the store)."""
        if self.notifier is None or not self.delivery.queues_seen:
            return
        limit_ms = int(self.config.notify.outbox.failing_after_s * 1000)
        queues = {q.channel: q for q in self.delivery.queues}
        raised = set(await self.store.call(self._failing_channels))
        transitions: list[Transition] = []
        for name in self.config.notify.channels:
            q = queues.get(name)
            since = q.oldest_pending_ms if q is not None else None
            failing = since is not None and now - since >= limit_ms
            if failing == (name in raised):
                continue
            reason = ""
            if failing and q is not None and since is not None:
                when = format_time(since, self.config.notify.timezone)
                reason = f"notification channel {name} failing: {q.pending} pending since {when}"
            else:
                reason = f"notification channel {name} delivers again"
            transitions.append(
                Transition(
                    rule=CHANNEL_FAILING_RULE,
                    site=CHANNEL_FAILING_SITE,
                    device=name,
                    point=None,
                    severity=Severity.CRITICAL if failing else None,
                    previous=None,
                    value=q.pending if q is not None else 0,
                    ts=now,
                    reason=reason,
                )
            )
        if not transitions:
            return
        try:
            await self.on_transitions(transitions)
        except StoreBusy as exc:  # another instance is at it: the next tick looks again
            log.info("channel alerts not saved this tick: %s", exc)

    def _failing_channels(self) -> list[str]:
        rows = self.store.list_alerts(rule=CHANNEL_FAILING_RULE, active_only=True, limit=1000)
        return [r.alert.key.device for r in rows]

    def _tick(self, now: int) -> list[StoredAlert] | None:
        """Every open alert through the pipeline's tick, in one transaction (store work), its notifications into
        the outbox. None on a conflict: an operator acted meanwhile, and the next tick sees the fresh rows."""
        try:
            with self.store.begin() as tx:
                changed: list[StoredAlert] = []
                notes: list[Notification] = []
                for s in tx.open_alerts():
                    notes += self.pipeline.on_tick(tx, s.alert, s.meta.audience, now).out
                    if s.alert.history:
                        changed.append(tx.save(s.alert, s.meta, s.version))
                self._enqueue(tx, notes, {s.alert.key: s for s in changed})
        except Conflict:
            self.counters.conflicts += 1
            return None
        return changed

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver the outbox (what it still holds from before a restart first) and tick until ``stop``."""
        delivery = asyncio.ensure_future(self.delivery.run(stop))
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), self.config.tick_s)
                except TimeoutError:
                    await self.tick()
        finally:
            await delivery

    async def resume(self) -> int:
        """Start delivering what the outbox holds (decided before a crash or stop and not confirmed yet); returns
        how many notifications were waiting."""
        waiting = sum(q.pending for q in await self.store.call(self.store.channel_queues))
        await self.delivery.pass_once()
        return waiting

    async def drain(self, timeout_s: float) -> None:
        """Deliver what is due now and wait for it (bounded)."""
        await self.delivery.drain(timeout_s)

    # -- after a change ----------------------------------------------------------------------------------------
    def _after_change(self, stored: StoredAlert, messages: list[Message]) -> None:
        self._publish(stored)
        if not messages and stored.alert.active:
            self.counters.held += 1
        if messages:
            self.delivery.wake()

    def _publish(self, stored: StoredAlert) -> None:
        if self.publish_event is None or not self.config.publish_events:
            return
        if not self.publish_event(topics.alert_event(stored.id), orjson.dumps(alert_event(stored))):
            self.counters.events_unsent += 1  # live views catch up from the store; counted, not retried

    def _enqueue(self, tx: Tx, notes: list[Notification], saved: dict[AlertKey, StoredAlert]) -> list[Message]:
        """Messages for ``notes``, written to the outbox in the change's own transaction, one row per channel routed
        now (so that a delivery after a restart goes where it would have gone). A notification no route matches is
        recorded in the notification log as unrouted."""
        now = int(self.clock() * 1000)
        out = []
        for note in notes:
            msg = self._message(note, saved.get(note.key) if note.key else None)
            if not msg.targets and self.notifier is not None:
                msg = dataclasses.replace(msg, targets=tuple(self.notifier.route(msg, now)))
            if note.key is not None and note.key.rule_id == CHANNEL_FAILING_RULE:  # told on every other channel
                msg = dataclasses.replace(
                    msg, targets=tuple(c for c in self.config.notify.channels if c != note.key.device)
                )
            if self.notifier is None or not msg.targets:
                self.counters.unrouted += 1
                tx.add_notification(
                    ts_ms=now,
                    message_id=msg.id,
                    kind=msg.kind,
                    audience=msg.audience,
                    channel="",
                    channel_type="",
                    target="",
                    ok=False,
                    attempts=0,
                    error="no route matches this notification",
                    alert_id=msg.alert_id,
                    text=msg.text,
                )
            else:
                tx.enqueue_notification(
                    created_ms=now,
                    message_id=msg.id,
                    channels=msg.targets,
                    kind=msg.kind,
                    message=message_to_outbox(msg),
                    alert_id=msg.alert_id,
                )
            out.append(msg)
        return out

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

    def metrics_text(self) -> str:
        return render_metrics(self)

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        rows = [
            ("lifeline_alerts_transitions_total", c.transitions),
            ("lifeline_alerts_raised_total", c.raised),
            ("lifeline_alerts_cleared_total", c.cleared),
            ("lifeline_alerts_store_conflicts_total", c.conflicts),
            ("lifeline_alerts_notifications_unrouted_total", c.unrouted),
            ("lifeline_alerts_events_unsent_total", c.events_unsent),
        ]
        for name, value in rows:
            yield counter(name, "", value)
        yield from self.delivery.collect()


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
