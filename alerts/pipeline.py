"""The notification pipeline: what one alert change (or one tick of the clock) tells people.

Built after Prometheus Alertmanager's ``notify.Stage``: each stage is a small class with one method,
``run(change, tx, now)``, that takes the :class:`Change`, the transaction of that change and the time (epoch ms)
and returns the change that goes on to the next stage (its ``out``: the notifications still to send). Stages run in
this order (:data:`STAGE_ORDER`):

1. :class:`Suppression` - a shelved or out-of-service alert notifies nothing; its state is still tracked and its
   toggles still count for chattering.
2. :class:`Chattering` - per alert: more than ``max_toggles`` toggles (a raise from not active, or a clear) within
   ``window_s`` mark the alert chattering: one CHATTERING summary, then every notification of that alert is held
   until it has had no toggle for ``quiet_s``.
3. :class:`Flood` - per audience, new-alert (RAISED) notifications only: the first ``max_new`` within a sliding
   ``window_s`` go out one by one; the next one gives one FLOOD summary instead and starts a flood lasting
   ``window_s``, during which new alerts are held. Clears and severity changes are never held by a flood.
4. :class:`Escalation` - on a tick: an alert active and unacknowledged for a level's ``after_s`` fires that level
   once (several at once when the clock jumped).

The state a stage keeps (toggle times, flood counters) is a JSON blob in the store (``Tx.put_state``), loaded and
saved inside the transaction of the change, in one format (:class:`ChatterState`, :class:`FloodState`, validated
on load). So a batch rolled back on a conflict rolls the stage state back with it, and there is no in-memory copy
of all alerts: the alert row itself is the only copy of the alert.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from alerts.lifecycle import (
    SYSTEM,
    Action,
    Alert,
    AlertKey,
    Severity,
    State,
    StateChange,
    clear,
    expire,
    raise_,
    suppression,
)
from alerts.policy import AlertsConfig, ChatterConfig, EscalationPolicy, FloodConfig, Kind, Notification

__all__ = [
    "STAGE_ORDER",
    "Cause",
    "Change",
    "ChatterState",
    "Chattering",
    "Escalation",
    "Flood",
    "FloodState",
    "Pipeline",
    "Stage",
    "StateTx",
    "Suppression",
    "chatter_name",
    "flood_name",
]


M = TypeVar("M", bound=BaseModel)


class StateTx(Protocol):
    """What a stage needs of the change's transaction (``alerts.store.Tx`` is one)."""

    def get_state(self, name: str) -> dict[str, object] | None: ...
    def put_state(self, name: str, data: dict[str, object]) -> None: ...
    def delete_state(self, name: str) -> None: ...


class Cause(StrEnum):
    RULE = "rule"  # a rule fired or stopped firing
    TICK = "tick"  # time passed


@dataclass(slots=True)
class Change:
    """One alert going through the pipeline. ``alert`` is already moved by the lifecycle (stages may mark it
    chattering or escalated, recorded in its history); ``out`` is what is still to be sent."""

    alert: Alert
    audience: str
    cause: Cause
    toggle: bool = False  # a raise from not active, or a clear: what chattering counts
    out: list[Notification] = field(default_factory=list)
    suppressed: str | None = None  # why notifications are suppressed (Suppression), None when they may go out


class Stage(Protocol):
    def run(self, change: Change, tx: StateTx, now: int) -> Change: ...


# --- stage state, one save format ----------------------------------------------------------------------------


class ChatterState(BaseModel):
    """One alert's recent toggles. ``last_ms`` is the last toggle even when it has left the window, so that a
    chattering alert always ends after ``quiet_s`` whatever the window. ``held`` counts the notifications held back
    by this chattering spell, the one the summary replaced included (a suppressed alert's are suppression's)."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(default=1, ge=1, le=1)
    toggles: list[int] = Field(default_factory=list)
    last_ms: int | None = None
    chattering: bool = False
    held: int = 0


class FloodState(BaseModel):
    """One audience's recent new alerts. ``held`` counts new alerts not notified one by one in the current flood,
    including the one that triggered the summary."""

    model_config = ConfigDict(extra="forbid")
    version: int = Field(default=1, ge=1, le=1)
    new_ms: list[int] = Field(default_factory=list)
    flood_until_ms: int | None = None
    held: int = 0


def chatter_name(key: AlertKey) -> str:
    return "alerts.chatter:" + orjson.dumps([key.rule_id, key.site, key.device, key.point]).decode()


def flood_name(audience: str) -> str:
    return f"alerts.flood:{audience}"


def _load(tx: StateTx, name: str, model: type[M]) -> M | None:
    data = tx.get_state(name)
    if data is None:
        return None
    try:
        return model.model_validate(data)
    except ValueError as err:
        raise ValueError(f"state blob {name!r}: {err}") from err


# --- the stages ----------------------------------------------------------------------------------------------


class Suppression:
    """Shelved (until its time) or out of service: nothing goes on (ISA-18.2 suppression by shelving and by
    out-of-service; the alert's states still move)."""

    def run(self, change: Change, tx: StateTx, now: int) -> Change:
        change.suppressed = suppression(change.alert, now)
        if change.suppressed is not None:
            change.out = []
        return change


class Chattering:
    """Per alert (rule, site, device and point): a chattering alarm in ISA-18.2's sense is one alarm that keeps
    going in and out of alarm, so each alert is marked by its own toggles; two points of one device are two
    alarms, each chattering or not on its own."""

    def __init__(self, config: ChatterConfig) -> None:
        self.config = config

    def run(self, change: Change, tx: StateTx, now: int) -> Change:
        alert, cfg = change.alert, self.config
        name = chatter_name(alert.key)
        st = _load(tx, name, ChatterState)
        if st is None:
            if not change.toggle:
                return change  # nothing counted, nothing to hold: no row written
            st = ChatterState()
        self._maybe_end(alert, st, now)
        if change.toggle:
            st.toggles.append(now)
            st.last_ms = now
        st.toggles = [ts for ts in st.toggles if ts > now - cfg.window_s * 1000]
        if st.chattering:
            st.held += len(change.out)
            change.out = []
        elif len(st.toggles) > cfg.max_toggles:
            st.chattering, st.held = True, 1
            alert.chattering = True
            why = f"{len(st.toggles)} toggles in {cfg.window_s}s"
            alert.history.append(StateChange(now, SYSTEM, Action.CHATTERING, alert.state, alert.state, why))
            text = f"{alert.key} chattering: {why}, notifications held"
            summary = Notification(Kind.CHATTERING, change.audience, now, alert.key, alert.severity, text)
            change.out = [summary] if change.suppressed is None else []
        if st.chattering or st.toggles:
            tx.put_state(name, st.model_dump())
        else:
            tx.delete_state(name)
        return change

    def _maybe_end(self, alert: Alert, st: ChatterState, now: int) -> None:
        if not st.chattering or st.last_ms is None or now - st.last_ms < self.config.quiet_s * 1000:
            return
        st.chattering, st.held = False, 0
        alert.chattering = False
        why = f"quiet for {self.config.quiet_s}s"
        alert.history.append(StateChange(now, SYSTEM, Action.CHATTERING_END, alert.state, alert.state, why))


class Flood:
    def __init__(self, config: FloodConfig) -> None:
        self.config = config

    def run(self, change: Change, tx: StateTx, now: int) -> Change:
        if not any(n.kind is Kind.RAISED for n in change.out):
            return change
        cfg, name = self.config, flood_name(change.audience)
        st = _load(tx, name, FloodState) or FloodState()
        window_ms = cfg.window_s * 1000
        st.new_ms = [ts for ts in (*st.new_ms, now) if ts > now - window_ms]
        keep = [n for n in change.out if n.kind is not Kind.RAISED]
        if st.flood_until_ms is not None and now >= st.flood_until_ms:
            st.flood_until_ms, st.held = None, 0
        if st.flood_until_ms is not None:
            st.held += 1
            change.out = keep
        elif len(st.new_ms) > cfg.max_new:
            st.flood_until_ms, st.held = now + window_ms, 1
            text = (
                f"alert flood for {change.audience}: {len(st.new_ms)} new alerts in {cfg.window_s}s, "
                "individual alerts held"
            )
            change.out = [*keep, Notification(Kind.FLOOD, change.audience, now, None, None, text)]
        tx.put_state(name, st.model_dump())
        return change


class Escalation:
    """On a tick: level *i* fires once when the alert has been active and unacknowledged for its ``after_s``.
    Acknowledging (or clearing to normal) stops it; a new raise from normal starts again at level 0; shelved and
    out-of-service alerts do not escalate. Stateless: the level reached is on the alert row."""

    def __init__(self, policies: Iterable[EscalationPolicy]) -> None:
        self.policies = {p.audience: p for p in policies}

    def run(self, change: Change, tx: StateTx, now: int) -> Change:
        alert, policy = change.alert, self.policies.get(change.audience)
        if change.cause is not Cause.TICK or policy is None or change.suppressed is not None:
            return change
        if alert.state is not State.ACTIVE_UNACK or alert.unack_since_ms is None:
            return change
        waited_ms = now - alert.unack_since_ms
        for number, level in enumerate(policy.levels, start=1):
            if number <= alert.escalation_level or waited_ms < level.after_s * 1000:
                continue
            alert.escalation_level, alert.escalated_ms = number, now
            alert.history.append(StateChange(now, SYSTEM, Action.ESCALATE, alert.state, alert.state, f"level {number}"))
            text = f"{alert.key} unacknowledged for {waited_ms // 1000}s"
            change.out.append(
                Notification(
                    Kind.ESCALATION, change.audience, now, alert.key, alert.severity, text, level.targets, number
                )
            )
        return change


STAGE_ORDER = ("suppression", "chattering", "flood", "escalation")


# --- the pipeline --------------------------------------------------------------------------------------------


class Pipeline:
    """The lifecycle step for a rule's transition, then the stages in order, all on one transaction."""

    def __init__(self, config: AlertsConfig | None = None, policies: Iterable[EscalationPolicy] = ()) -> None:
        config = config or AlertsConfig()
        self.stages: tuple[Stage, ...] = (
            Suppression(),
            Chattering(config.chatter),
            Flood(config.flood),
            Escalation(policies),
        )

    def on_rule(
        self,
        tx: StateTx,
        alert: Alert,
        audience: str,
        severity: Severity | None,
        value: float | str | bool | None,
        now: int,
        reason: str = "",
    ) -> Change | None:
        """A rule fired (``severity`` set) or stopped firing (None) for ``alert``, which this moves. None: a clear
        for an alert that is not active, ignored (nothing changed, nothing to save)."""
        expire(alert, now)
        if severity is None:
            if not alert.active:
                return None
            clear(alert, now, reason)
            change = Change(alert, audience, Cause.RULE, True, [_note(Kind.CLEARED, alert, audience, now, "cleared")])
        else:
            t = raise_(alert, severity, value, now, reason)
            change = Change(alert, audience, Cause.RULE, t.action is Action.RAISE)
            if t.action is Action.RAISE:
                change.out = [_note(Kind.RAISED, alert, audience, now, f"raised {severity.value}")]
            elif t.action is Action.SEVERITY:
                change.out = [_note(Kind.SEVERITY, alert, audience, now, t.reason)]
        return self._run(change, tx, now)

    def on_tick(self, tx: StateTx, alert: Alert, audience: str, now: int) -> Change:
        """Time passed: a shelf that ends, chattering that ends after a quiet spell, escalation."""
        expire(alert, now)
        return self._run(Change(alert, audience, Cause.TICK), tx, now)

    def _run(self, change: Change, tx: StateTx, now: int) -> Change:
        for stage in self.stages:
            change = stage.run(change, tx, now)
        return change


def _note(kind: Kind, alert: Alert, audience: str, now: int, what: str) -> Notification:
    return Notification(kind, audience, now, alert.key, alert.severity, f"{alert.key} {what}")
