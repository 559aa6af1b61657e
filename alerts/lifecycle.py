"""Alert lifecycle after ISA-18.2: a pure state machine, no I/O, no clock reads.

Every function takes the time (``now`` in epoch milliseconds) and mutates one :class:`Alert`,
appending a :class:`StateChange` to its history and returning it. Illegal actions raise
:class:`InvalidAction` naming the action and the state, and leave the alert untouched.

States (``State``) follow ISA-18.2; shelving and out-of-service are orthogonal flags: a shelved or
out-of-service alert still moves between states, it is only suppressed from notification
(:func:`suppression`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from rules.schema import AlertKey, Severity

__all__ = [
    "ACTIVE_STATES",
    "SYSTEM",
    "Action",
    "Alert",
    "AlertKey",
    "InvalidAction",
    "Note",
    "Severity",
    "State",
    "StateChange",
    "acknowledge",
    "add_note",
    "assign",
    "clear",
    "expire",
    "may_notify",
    "out_of_service",
    "raise_",
    "return_to_service",
    "shelve",
    "suppression",
    "unshelve",
]

SYSTEM = "system"


class State(StrEnum):
    NORMAL = "normal"
    ACTIVE_UNACK = "active_unack"
    ACTIVE_ACK = "active_ack"
    CLEARED_UNACK = "cleared_unack"


ACTIVE_STATES = frozenset({State.ACTIVE_UNACK, State.ACTIVE_ACK})


class Action(StrEnum):
    RAISE = "raise"
    RERAISE = "reraise"
    SEVERITY = "severity"
    CLEAR = "clear"
    ACK = "ack"
    SHELVE = "shelve"
    UNSHELVE = "unshelve"
    SHELVE_EXPIRED = "shelve_expired"
    OUT_OF_SERVICE = "out_of_service"
    RETURN_TO_SERVICE = "return_to_service"
    ASSIGN = "assign"
    NOTE = "note"
    ESCALATE = "escalate"
    CHATTERING = "chattering"
    CHATTERING_END = "chattering_end"


class InvalidAction(ValueError):
    """An action that ISA-18.2 does not allow in the alert's current state."""

    def __init__(self, action: str, state: str, key: AlertKey, detail: str = "") -> None:
        self.action = action
        self.state = state
        self.key = key
        extra = f" ({detail})" if detail else ""
        super().__init__(f"cannot {action} alert {key} in state {state}{extra}")


@dataclass(frozen=True, slots=True)
class StateChange:
    """One entry of an alert's history: an action moved it from one ISA-18.2 state to another (or kept it). Not the
    rules engine's ``rules.Transition``, which is the rule's verdict that raises or clears the alert."""

    ts_ms: int
    who: str
    action: Action
    from_state: State
    to_state: State
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    who: str
    ts_ms: int
    text: str


@dataclass(slots=True)
class Alert:
    key: AlertKey
    state: State = State.NORMAL
    severity: Severity = Severity.INFO
    first_ms: int | None = None
    last_ms: int | None = None
    count: int = 0
    value: float | str | bool | None = None
    assignee: str | None = None
    notes: list[Note] = field(default_factory=list)
    history: list[StateChange] = field(default_factory=list)
    shelved_until_ms: int | None = None
    shelve_reason: str = ""
    out_of_service: bool = False
    out_of_service_reason: str = ""
    unack_since_ms: int | None = None
    escalation_level: int = 0
    escalated_ms: int | None = None
    chattering: bool = False

    @property
    def shelved(self) -> bool:
        return self.shelved_until_ms is not None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def _record(self, now: int, who: str, action: Action, to: State, reason: str) -> StateChange:
        t = StateChange(now, who, action, self.state, to, reason)
        self.state = to
        self.history.append(t)
        return t


def raise_(
    alert: Alert, severity: Severity, value: float | str | bool | None, now: int, reason: str = "", who: str = SYSTEM
) -> StateChange:
    """The rule fires (again). Never creates a second alert: updates this one.

    normal / cleared_unack -> active_unack (``RAISE``); active_* stays active with last/count/value
    updated (``RERAISE``), and a severity change is recorded as ``SEVERITY``. An acknowledged alert
    whose severity *rises* becomes active_unack again (the operator acknowledged a lesser condition).
    """
    if alert.first_ms is None:
        alert.first_ms = now
    alert.last_ms = now
    alert.count += 1
    alert.value = value
    old_sev = alert.severity
    alert.severity = severity
    if alert.state in (State.NORMAL, State.CLEARED_UNACK):
        if alert.state is State.NORMAL:
            alert.unack_since_ms = now
            alert.escalation_level = 0
            alert.escalated_ms = None
        return alert._record(now, who, Action.RAISE, State.ACTIVE_UNACK, reason)
    if severity != old_sev:
        to = alert.state
        if alert.state is State.ACTIVE_ACK and severity > old_sev:
            to = State.ACTIVE_UNACK
            alert.unack_since_ms = now
            alert.escalation_level = 0
            alert.escalated_ms = None
        why = f"severity {old_sev.value} -> {severity.value}" + (f": {reason}" if reason else "")
        return alert._record(now, who, Action.SEVERITY, to, why)
    return alert._record(now, who, Action.RERAISE, alert.state, reason)


def clear(alert: Alert, now: int, reason: str = "", who: str = SYSTEM) -> StateChange:
    """The condition went away: active_unack -> cleared_unack, active_ack -> normal."""
    if alert.state is State.ACTIVE_UNACK:
        return alert._record(now, who, Action.CLEAR, State.CLEARED_UNACK, reason)
    if alert.state is State.ACTIVE_ACK:
        return alert._record(now, who, Action.CLEAR, State.NORMAL, reason)
    raise InvalidAction(Action.CLEAR, alert.state, alert.key, "alert is not active")


def acknowledge(alert: Alert, who: str, now: int, note: str = "") -> StateChange:
    """An operator acknowledges: active_unack -> active_ack, cleared_unack -> normal."""
    if alert.state is State.ACTIVE_UNACK:
        to = State.ACTIVE_ACK
    elif alert.state is State.CLEARED_UNACK:
        to = State.NORMAL
    else:
        raise InvalidAction(Action.ACK, alert.state, alert.key, "nothing unacknowledged")
    alert.unack_since_ms = None
    if note:
        alert.notes.append(Note(who, now, note))
    return alert._record(now, who, Action.ACK, to, note)


def shelve(alert: Alert, who: str, until_ms: int, reason: str, now: int) -> StateChange:
    """Suppress notifications until ``until_ms``; a reason is required."""
    if alert.out_of_service:
        raise InvalidAction(Action.SHELVE, alert.state, alert.key, "alert is out of service")
    if alert.shelved:
        raise InvalidAction(Action.SHELVE, alert.state, alert.key, "already shelved")
    if until_ms <= now:
        raise InvalidAction(Action.SHELVE, alert.state, alert.key, "until_ms must be in the future")
    if not reason.strip():
        raise InvalidAction(Action.SHELVE, alert.state, alert.key, "a reason is required")
    alert.shelved_until_ms = until_ms
    alert.shelve_reason = reason
    return alert._record(now, who, Action.SHELVE, alert.state, f"until {until_ms}: {reason}")


def unshelve(alert: Alert, who: str, now: int, reason: str = "") -> StateChange:
    if not alert.shelved:
        raise InvalidAction(Action.UNSHELVE, alert.state, alert.key, "not shelved")
    alert.shelved_until_ms = None
    alert.shelve_reason = ""
    return alert._record(now, who, Action.UNSHELVE, alert.state, reason)


def expire(alert: Alert, now: int) -> StateChange | None:
    """Auto-unshelve once ``shelved_until_ms`` has passed (at ``now >= until``). Idempotent."""
    if alert.shelved_until_ms is None or now < alert.shelved_until_ms:
        return None
    alert.shelved_until_ms = None
    alert.shelve_reason = ""
    return alert._record(now, SYSTEM, Action.SHELVE_EXPIRED, alert.state, "shelve period ended")


def out_of_service(alert: Alert, who: str, reason: str, now: int) -> StateChange:
    """Take the alert out of service (maintenance). Replaces any shelving."""
    if alert.out_of_service:
        raise InvalidAction(Action.OUT_OF_SERVICE, alert.state, alert.key, "already out of service")
    if not reason.strip():
        raise InvalidAction(Action.OUT_OF_SERVICE, alert.state, alert.key, "a reason is required")
    alert.out_of_service = True
    alert.out_of_service_reason = reason
    alert.shelved_until_ms = None
    alert.shelve_reason = ""
    return alert._record(now, who, Action.OUT_OF_SERVICE, alert.state, reason)


def return_to_service(alert: Alert, who: str, now: int, reason: str = "") -> StateChange:
    if not alert.out_of_service:
        raise InvalidAction(Action.RETURN_TO_SERVICE, alert.state, alert.key, "not out of service")
    alert.out_of_service = False
    alert.out_of_service_reason = ""
    return alert._record(now, who, Action.RETURN_TO_SERVICE, alert.state, reason)


def assign(alert: Alert, who: str, assignee: str | None, now: int) -> StateChange:
    alert.assignee = assignee
    return alert._record(now, who, Action.ASSIGN, alert.state, f"assigned to {assignee}")


def add_note(alert: Alert, who: str, text: str, now: int) -> StateChange:
    alert.notes.append(Note(who, now, text))
    return alert._record(now, who, Action.NOTE, alert.state, text)


def suppression(alert: Alert, now: int) -> str | None:
    """Why notifications for this alert are suppressed now, or None if they may go out.

    A shelf whose time has passed no longer suppresses, even before :func:`expire` is called.
    """
    if alert.out_of_service:
        return "out_of_service"
    if alert.shelved_until_ms is not None and now < alert.shelved_until_ms:
        return "shelved"
    return None


def may_notify(alert: Alert, now: int) -> bool:
    """Whether a notification about this alert may go out (not shelved, not out of service)."""
    return suppression(alert, now) is None
