"""The alert book and the notification pipeline: pure, time passed in as ``now`` (epoch ms).

:class:`AlertBook` keeps exactly one :class:`Alert` per :class:`AlertKey` and turns rule transitions
into :class:`Notification` decisions through small stages composed in order, like Alertmanager:

1. suppression  - shelved or out-of-service alerts notify nothing (state is still tracked,
   toggles still count for chattering);
2. chattering   - per rule+site+device, more than ``max_toggles`` toggles (raise from not active,
   or clear) within ``window_s`` marks the group chattering: one CHATTERING summary, then every
   notification of that group is held until it has been quiet (no toggle) for ``quiet_s``;
3. flood        - per audience, only for new-alert (RAISED) notifications. The first ``max_new``
   new alerts within a sliding ``window_s`` notify individually; the next one (``max_new + 1``-th)
   gives one FLOOD summary instead of its own notification and starts a flood that lasts
   ``window_s`` from that moment, during which further new alerts are held (counted in
   ``FloodState.held``). Clears and severity changes are not held by a flood.

Escalation is time-driven: :meth:`AlertBook.due` asks each audience's :class:`EscalationPolicy`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from alerts.lifecycle import (
    SYSTEM,
    Action,
    Alert,
    AlertKey,
    Note,
    Severity,
    State,
    Transition,
    acknowledge,
    add_note,
    assign,
    clear,
    expire,
    out_of_service,
    raise_,
    return_to_service,
    shelve,
    suppression,
    unshelve,
)

DEFAULT_AUDIENCE = "default"

JsonDict = dict[str, object]


# --- config -------------------------------------------------------------------------------------


class ChatterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_toggles: int = Field(default=5, ge=1)
    window_s: int = Field(default=600, gt=0)
    quiet_s: int = Field(default=600, gt=0)


class FloodConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_new: int = Field(default=10, ge=1)
    window_s: int = Field(default=600, gt=0)


class EscalationLevel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    after_s: int = Field(ge=0)
    targets: tuple[str, ...] = Field(min_length=1)


class AlertsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    chatter: ChatterConfig = ChatterConfig()
    flood: FloodConfig = FloodConfig()


# --- notifications ------------------------------------------------------------------------------


class Kind(StrEnum):
    RAISED = "raised"
    SEVERITY = "severity"
    CLEARED = "cleared"
    CHATTERING = "chattering"
    FLOOD = "flood"
    ESCALATION = "escalation"


@dataclass(frozen=True, slots=True)
class Notification:
    kind: Kind
    audience: str
    ts_ms: int
    key: AlertKey | None = None
    severity: Severity | None = None
    text: str = ""
    targets: tuple[str, ...] = ()
    level: int = 0


# --- escalation ---------------------------------------------------------------------------------


class EscalationPolicy(BaseModel):
    """Levels in order; level *i* (1-based) fires once when an alert has been active and
    unacknowledged for ``after_s`` seconds. Acknowledging (or clearing to normal) stops it;
    a new raise from normal starts again at level 0. Several levels may fire in one call if the
    clock jumped past them. Shelved and out-of-service alerts do not escalate."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    audience: str
    levels: tuple[EscalationLevel, ...] = Field(min_length=1)

    def due(self, alerts: Iterable[Alert], now: int) -> list[Notification]:
        out: list[Notification] = []
        for alert in alerts:
            if alert.state is not State.ACTIVE_UNACK or alert.unack_since_ms is None:
                continue
            if suppression(alert, now) is not None:
                continue
            waited_ms = now - alert.unack_since_ms
            for number, level in enumerate(self.levels, start=1):
                if number <= alert.escalation_level or waited_ms < level.after_s * 1000:
                    continue
                alert.escalation_level = number
                alert.escalated_ms = now
                alert.history.append(
                    Transition(now, SYSTEM, Action.ESCALATE, alert.state, alert.state, f"level {number}")
                )
                out.append(
                    Notification(
                        Kind.ESCALATION, self.audience, now, alert.key, alert.severity,
                        f"{alert.key} unacknowledged for {waited_ms // 1000}s", level.targets, number,
                    )
                )
        return out


# --- stage state --------------------------------------------------------------------------------


@dataclass(slots=True)
class ChatterState:
    toggles: deque[int] = field(default_factory=deque)
    chattering: bool = False
    held: int = 0


@dataclass(slots=True)
class FloodState:
    """``held`` counts new alerts not notified one by one in the current flood, including the one
    that triggered the summary."""

    new_ms: deque[int] = field(default_factory=deque)
    flood_until_ms: int | None = None
    held: int = 0


def _group(key: AlertKey) -> tuple[str, str, str]:
    return (key.rule_id, key.site, key.device)


def _default_audience(_alert: Alert) -> str:
    return DEFAULT_AUDIENCE


@dataclass(slots=True)
class _Candidate:
    kind: Kind
    alert: Alert
    audience: str
    text: str


# --- the book -----------------------------------------------------------------------------------


class AlertBook:
    def __init__(
        self,
        config: AlertsConfig | None = None,
        audience_of: Callable[[Alert], str] = _default_audience,
        policies: Iterable[EscalationPolicy] = (),
    ) -> None:
        self.config = config or AlertsConfig()
        self.audience_of = audience_of
        self.policies = {p.audience: p for p in policies}
        self.alerts: dict[AlertKey, Alert] = {}
        self.chatter: dict[tuple[str, str, str], ChatterState] = {}
        self.flood: dict[str, FloodState] = {}

    def get(self, key: AlertKey) -> Alert | None:
        return self.alerts.get(key)

    def _alert(self, key: AlertKey) -> Alert:
        alert = self.alerts.get(key)
        if alert is None:
            alert = self.alerts[key] = Alert(key)
        return alert

    # -- rule input

    def on_transition(
        self, key: AlertKey, severity: Severity | None, value: float | str | bool | None, now: int, reason: str = ""
    ) -> list[Notification]:
        """A rule fired (``severity`` set) or stopped firing (``severity`` None) for ``key``.

        A clear for an alert that is not active is ignored (no-op, no notification)."""
        alert = self._alert(key)
        expire(alert, now)
        if severity is None:
            if not alert.active:
                return []
            t = clear(alert, now, reason)
            cand = _Candidate(Kind.CLEARED, alert, self.audience_of(alert), f"{key} cleared")
            toggle = True
        else:
            t = raise_(alert, severity, value, now, reason)
            if t.action is Action.RAISE:
                cand = _Candidate(Kind.RAISED, alert, self.audience_of(alert), f"{key} raised {severity.name}")
            elif t.action is Action.SEVERITY:
                cand = _Candidate(Kind.SEVERITY, alert, self.audience_of(alert), f"{key} {t.reason}")
            else:
                return []
            toggle = t.action is Action.RAISE
        return self._pipeline(cand, toggle, now)

    def _pipeline(self, cand: _Candidate, toggle: bool, now: int) -> list[Notification]:
        chatter_out, chatter_held = self._stage_chatter(cand, toggle, now)
        if suppression(cand.alert, now) is not None:
            return []
        if chatter_held:
            return chatter_out
        return self._stage_flood(cand, now)

    def _stage_chatter(self, cand: _Candidate, toggle: bool, now: int) -> tuple[list[Notification], bool]:
        """Count the toggle; return (summary if newly chattering, whether to hold ``cand``)."""
        cfg = self.config.chatter
        group = _group(cand.alert.key)
        st = self.chatter.setdefault(group, ChatterState())
        self._maybe_end_chatter(group, st, now)
        if toggle:
            st.toggles.append(now)
        while st.toggles and st.toggles[0] <= now - cfg.window_s * 1000:
            st.toggles.popleft()
        if st.chattering:
            st.held += 1
            return [], True
        if len(st.toggles) <= cfg.max_toggles:
            return [], False
        st.chattering = True
        st.held = 1
        for alert in self._group_alerts(group):
            alert.chattering = True
            alert.history.append(
                Transition(now, SYSTEM, Action.CHATTERING, alert.state, alert.state,
                           f"{len(st.toggles)} toggles in {cfg.window_s}s")
            )
        if suppression(cand.alert, now) is not None:
            return [], True
        text = (f"{cand.alert.key.rule_id}@{cand.alert.key.site}/{cand.alert.key.device} chattering: "
                f"{len(st.toggles)} toggles in {cfg.window_s}s, notifications held")
        return [Notification(Kind.CHATTERING, cand.audience, now, cand.alert.key, cand.alert.severity, text)], True

    def _group_alerts(self, group: tuple[str, str, str]) -> list[Alert]:
        return [a for k, a in self.alerts.items() if _group(k) == group]

    def _maybe_end_chatter(self, group: tuple[str, str, str], st: ChatterState, now: int) -> None:
        if not st.chattering or not st.toggles:
            return
        quiet_ms = self.config.chatter.quiet_s * 1000
        if now - st.toggles[-1] < quiet_ms:
            return
        st.chattering = False
        st.held = 0
        for alert in self._group_alerts(group):
            alert.chattering = False
            alert.history.append(
                Transition(now, SYSTEM, Action.CHATTERING_END, alert.state, alert.state,
                           f"quiet for {self.config.chatter.quiet_s}s")
            )

    def _stage_flood(self, cand: _Candidate, now: int) -> list[Notification]:
        single = Notification(cand.kind, cand.audience, now, cand.alert.key, cand.alert.severity, cand.text)
        if cand.kind is not Kind.RAISED:
            return [single]
        cfg = self.config.flood
        st = self.flood.setdefault(cand.audience, FloodState())
        window_ms = cfg.window_s * 1000
        st.new_ms.append(now)
        while st.new_ms and st.new_ms[0] <= now - window_ms:
            st.new_ms.popleft()
        if st.flood_until_ms is not None:
            if now < st.flood_until_ms:
                st.held += 1
                return []
            st.flood_until_ms = None
            st.held = 0
        if len(st.new_ms) <= cfg.max_new:
            return [single]
        st.flood_until_ms = now + window_ms
        st.held = 1
        text = (f"alert flood for {cand.audience}: {len(st.new_ms)} new alerts in {cfg.window_s}s, "
                "individual alerts held")
        return [Notification(Kind.FLOOD, cand.audience, now, None, None, text)]

    # -- time-driven

    def tick(self, now: int) -> list[Notification]:
        """Expire shelves, end chattering after a quiet period, and run escalation."""
        for alert in self.alerts.values():
            expire(alert, now)
        for group, st in self.chatter.items():
            self._maybe_end_chatter(group, st, now)
        return self.due(now)

    def due(self, now: int) -> list[Notification]:
        by_audience: dict[str, list[Alert]] = {}
        for alert in self.alerts.values():
            by_audience.setdefault(self.audience_of(alert), []).append(alert)
        out: list[Notification] = []
        for audience, alerts in by_audience.items():
            policy = self.policies.get(audience)
            if policy is not None:
                out.extend(policy.due(alerts, now))
        return out

    # -- operator actions (delegate to the lifecycle; raise InvalidAction / KeyError)

    def acknowledge(self, key: AlertKey, who: str, now: int, note: str = "") -> Transition:
        return acknowledge(self.alerts[key], who, now, note)

    def shelve(self, key: AlertKey, who: str, until_ms: int, reason: str, now: int) -> Transition:
        return shelve(self.alerts[key], who, until_ms, reason, now)

    def unshelve(self, key: AlertKey, who: str, now: int, reason: str = "") -> Transition:
        return unshelve(self.alerts[key], who, now, reason)

    def out_of_service(self, key: AlertKey, who: str, reason: str, now: int) -> Transition:
        return out_of_service(self.alerts[key], who, reason, now)

    def return_to_service(self, key: AlertKey, who: str, now: int, reason: str = "") -> Transition:
        return return_to_service(self.alerts[key], who, now, reason)

    def assign(self, key: AlertKey, who: str, assignee: str | None, now: int) -> Transition:
        return assign(self.alerts[key], who, assignee, now)

    def add_note(self, key: AlertKey, who: str, text: str, now: int) -> Transition:
        return add_note(self.alerts[key], who, text, now)

    # -- state export

    def to_dict(self) -> JsonDict:
        return {
            "version": 1,
            "alerts": [_alert_to_dict(a) for a in self.alerts.values()],
            "chatter": [
                {"group": list(g), "toggles": list(s.toggles), "chattering": s.chattering, "held": s.held}
                for g, s in self.chatter.items()
            ],
            "flood": [
                {"audience": a, "new_ms": list(s.new_ms), "flood_until_ms": s.flood_until_ms, "held": s.held}
                for a, s in self.flood.items()
            ],
        }

    @classmethod
    def from_dict(
        cls,
        data: JsonDict,
        config: AlertsConfig | None = None,
        audience_of: Callable[[Alert], str] = _default_audience,
        policies: Iterable[EscalationPolicy] = (),
    ) -> AlertBook:
        snap = _Snapshot.model_validate(data)
        book = cls(config, audience_of, policies)
        for a in snap.alerts:
            alert = a.to_alert()
            book.alerts[alert.key] = alert
        for c in snap.chatter:
            book.chatter[(c.group[0], c.group[1], c.group[2])] = ChatterState(deque(c.toggles), c.chattering, c.held)
        for f in snap.flood:
            book.flood[f.audience] = FloodState(deque(f.new_ms), f.flood_until_ms, f.held)
        return book


# --- snapshot (validated on load) ---------------------------------------------------------------


def _alert_to_dict(a: Alert) -> JsonDict:
    return {
        "key": {"rule_id": a.key.rule_id, "site": a.key.site, "device": a.key.device, "point": a.key.point},
        "state": a.state.value,
        "severity": int(a.severity),
        "first_ms": a.first_ms,
        "last_ms": a.last_ms,
        "count": a.count,
        "value": a.value,
        "assignee": a.assignee,
        "notes": [{"who": n.who, "ts_ms": n.ts_ms, "text": n.text} for n in a.notes],
        "history": [
            {"ts_ms": t.ts_ms, "who": t.who, "action": t.action.value, "from_state": t.from_state.value,
             "to_state": t.to_state.value, "reason": t.reason}
            for t in a.history
        ],
        "shelved_until_ms": a.shelved_until_ms,
        "shelve_reason": a.shelve_reason,
        "out_of_service": a.out_of_service,
        "out_of_service_reason": a.out_of_service_reason,
        "unack_since_ms": a.unack_since_ms,
        "escalation_level": a.escalation_level,
        "escalated_ms": a.escalated_ms,
        "chattering": a.chattering,
    }


class _KeyIn(BaseModel):
    rule_id: str
    site: str
    device: str
    point: str | None


class _NoteIn(BaseModel):
    who: str
    ts_ms: int
    text: str


class _TransitionIn(BaseModel):
    ts_ms: int
    who: str
    action: Action
    from_state: State
    to_state: State
    reason: str


class _AlertIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: _KeyIn
    state: State
    severity: Severity
    first_ms: int | None
    last_ms: int | None
    count: int
    value: bool | int | float | str | None
    assignee: str | None
    notes: list[_NoteIn]
    history: list[_TransitionIn]
    shelved_until_ms: int | None
    shelve_reason: str
    out_of_service: bool
    out_of_service_reason: str
    unack_since_ms: int | None
    escalation_level: int
    escalated_ms: int | None
    chattering: bool

    def to_alert(self) -> Alert:
        return Alert(
            key=AlertKey(self.key.rule_id, self.key.site, self.key.device, self.key.point),
            state=self.state, severity=self.severity, first_ms=self.first_ms, last_ms=self.last_ms,
            count=self.count, value=self.value, assignee=self.assignee,
            notes=[Note(n.who, n.ts_ms, n.text) for n in self.notes],
            history=[Transition(t.ts_ms, t.who, t.action, t.from_state, t.to_state, t.reason) for t in self.history],
            shelved_until_ms=self.shelved_until_ms, shelve_reason=self.shelve_reason,
            out_of_service=self.out_of_service, out_of_service_reason=self.out_of_service_reason,
            unack_since_ms=self.unack_since_ms, escalation_level=self.escalation_level,
            escalated_ms=self.escalated_ms, chattering=self.chattering,
        )


class _ChatterIn(BaseModel):
    group: tuple[str, str, str]
    toggles: list[int]
    chattering: bool
    held: int


class _FloodIn(BaseModel):
    audience: str
    new_ms: list[int]
    flood_until_ms: int | None
    held: int


class _Snapshot(BaseModel):
    version: int = Field(ge=1, le=1)
    alerts: list[_AlertIn]
    chatter: list[_ChatterIn]
    flood: list[_FloodIn]
