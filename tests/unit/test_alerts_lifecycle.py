"""ISA-18.2 lifecycle of one alert: tables of legal and illegal transitions, shelving, out of service."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from alerts import (
    Action,
    Alert,
    AlertKey,
    InvalidAction,
    Severity,
    State,
    acknowledge,
    add_note,
    assign,
    clear,
    expire,
    may_notify,
    out_of_service,
    raise_,
    return_to_service,
    shelve,
    suppression,
    unshelve,
)

KEY = AlertKey("high_temp", "plant1", "boiler3", "t_out")
T0 = 1_700_000_000_000
MIN = 60_000


def _in_state(state: State) -> Alert:
    a = Alert(KEY)
    if state is State.NORMAL:
        return a
    raise_(a, Severity.WARNING, 81.0, T0, "t_out > 80")
    if state is State.ACTIVE_ACK:
        acknowledge(a, "ann", T0 + 1)
    elif state is State.CLEARED_UNACK:
        clear(a, T0 + 1, "t_out < 78")
    assert a.state is state
    return a


ACTIONS: dict[str, Callable[[Alert, int], object]] = {
    "raise": lambda a, t: raise_(a, Severity.WARNING, 82.0, t, "r"),
    "raise_higher": lambda a, t: raise_(a, Severity.CRITICAL, 95.0, t, "r"),
    "raise_lower": lambda a, t: raise_(a, Severity.INFO, 79.0, t, "r"),
    "clear": lambda a, t: clear(a, t, "c"),
    "ack": lambda a, t: acknowledge(a, "bob", t, "seen"),
}


@pytest.mark.parametrize(
    ("start", "action", "end", "recorded"),
    [
        pytest.param(State.NORMAL, "raise", State.ACTIVE_UNACK, Action.RAISE, id="normal-raise"),
        pytest.param(State.ACTIVE_UNACK, "raise", State.ACTIVE_UNACK, Action.RERAISE, id="unack-reraise"),
        pytest.param(State.ACTIVE_UNACK, "raise_higher", State.ACTIVE_UNACK, Action.SEVERITY, id="unack-sev-up"),
        pytest.param(State.ACTIVE_UNACK, "clear", State.CLEARED_UNACK, Action.CLEAR, id="unack-clear"),
        pytest.param(State.ACTIVE_UNACK, "ack", State.ACTIVE_ACK, Action.ACK, id="unack-ack"),
        pytest.param(State.ACTIVE_ACK, "raise", State.ACTIVE_ACK, Action.RERAISE, id="ack-reraise"),
        pytest.param(State.ACTIVE_ACK, "raise_higher", State.ACTIVE_UNACK, Action.SEVERITY, id="ack-sev-up-unacks"),
        pytest.param(State.ACTIVE_ACK, "raise_lower", State.ACTIVE_ACK, Action.SEVERITY, id="ack-sev-down-stays"),
        pytest.param(State.ACTIVE_ACK, "clear", State.NORMAL, Action.CLEAR, id="ack-clear"),
        pytest.param(State.CLEARED_UNACK, "raise", State.ACTIVE_UNACK, Action.RAISE, id="cleared-raise"),
        pytest.param(State.CLEARED_UNACK, "ack", State.NORMAL, Action.ACK, id="cleared-ack"),
    ],
)
def test_legal_transitions(start: State, action: str, end: State, recorded: Action) -> None:
    a = _in_state(start)
    before = len(a.history)
    ACTIONS[action](a, T0 + MIN)
    assert a.state is end
    assert len(a.history) == before + 1
    t = a.history[-1]
    assert (t.action, t.from_state, t.to_state, t.ts_ms) == (recorded, start, end, T0 + MIN)


@pytest.mark.parametrize(
    ("start", "action"),
    [
        pytest.param(State.NORMAL, "clear", id="normal-clear"),
        pytest.param(State.NORMAL, "ack", id="normal-ack"),
        pytest.param(State.ACTIVE_ACK, "ack", id="ack-ack"),
        pytest.param(State.CLEARED_UNACK, "clear", id="cleared-clear"),
    ],
)
def test_illegal_transitions_raise_and_change_nothing(start: State, action: str) -> None:
    a = _in_state(start)
    before = len(a.history)
    with pytest.raises(InvalidAction, match=rf"cannot {action} alert .* in state {start.value}"):
        ACTIONS[action](a, T0 + MIN)
    assert a.state is start
    assert len(a.history) == before


def test_one_alert_over_many_raises_counts_first_last() -> None:
    a = Alert(KEY)
    for i in range(20):
        raise_(a, Severity.WARNING, 80.0 + i, T0 + i * 1000)
    assert (a.state, a.count, a.first_ms, a.last_ms, a.value) == (State.ACTIVE_UNACK, 20, T0, T0 + 19_000, 99.0)
    assert [t.action for t in a.history] == [Action.RAISE] + [Action.RERAISE] * 19


def test_ack_then_severity_rise_is_unacknowledged_again() -> None:
    a = _in_state(State.ACTIVE_ACK)
    raise_(a, Severity.CRITICAL, 99.0, T0 + MIN, "t_out > 95")
    assert a.state is State.ACTIVE_UNACK
    assert a.unack_since_ms == T0 + MIN
    assert a.history[-1].reason == "severity warning -> critical: t_out > 95"


def test_shelve_expires_when_time_passes() -> None:
    a = _in_state(State.ACTIVE_UNACK)
    shelve(a, "ann", T0 + 30 * MIN, "sensor being recalibrated", T0)
    assert suppression(a, T0 + 29 * MIN) == "shelved"
    assert not may_notify(a, T0 + 29 * MIN)
    raise_(a, Severity.WARNING, 85.0, T0 + 5 * MIN)  # state still tracked while shelved
    assert a.count == 2
    assert expire(a, T0 + 29 * MIN) is None
    t = expire(a, T0 + 30 * MIN)
    assert t is not None
    assert (t.action, t.who) == (Action.SHELVE_EXPIRED, "system")
    assert not a.shelved
    assert may_notify(a, T0 + 30 * MIN)
    assert expire(a, T0 + 31 * MIN) is None


def test_unshelve_by_hand() -> None:
    a = _in_state(State.ACTIVE_UNACK)
    shelve(a, "ann", T0 + 30 * MIN, "noisy", T0)
    unshelve(a, "bob", T0 + MIN, "fixed")
    assert may_notify(a, T0 + MIN)
    assert a.history[-1].who == "bob"


@pytest.mark.parametrize(
    ("prepare", "call", "message"),
    [
        pytest.param(lambda a: None, lambda a: unshelve(a, "x", T0), "not shelved", id="unshelve-not-shelved"),
        pytest.param(
            lambda a: shelve(a, "x", T0 + MIN, "r", T0),
            lambda a: shelve(a, "x", T0 + MIN, "r", T0),
            "already shelved",
            id="shelve-twice",
        ),
        pytest.param(lambda a: None, lambda a: shelve(a, "x", T0, "r", T0), "future", id="shelve-until-now"),
        pytest.param(lambda a: None, lambda a: shelve(a, "x", T0 + MIN, " ", T0), "reason", id="shelve-no-reason"),
        pytest.param(
            lambda a: out_of_service(a, "x", "maint", T0),
            lambda a: shelve(a, "x", T0 + MIN, "r", T0),
            "out of service",
            id="shelve-while-oos",
        ),
        pytest.param(
            lambda a: out_of_service(a, "x", "maint", T0),
            lambda a: out_of_service(a, "x", "m", T0),
            "already out of service",
            id="oos-twice",
        ),
        pytest.param(
            lambda a: None, lambda a: return_to_service(a, "x", T0), "not out of service", id="rts-in-service"
        ),
    ],
)
def test_invalid_shelve_and_service_actions(
    prepare: Callable[[Alert], object], call: Callable[[Alert], object], message: str
) -> None:
    a = _in_state(State.ACTIVE_UNACK)
    prepare(a)
    with pytest.raises(InvalidAction, match=message):
        call(a)


def test_out_of_service_suppresses_and_replaces_shelve() -> None:
    a = _in_state(State.ACTIVE_UNACK)
    shelve(a, "ann", T0 + 30 * MIN, "noisy", T0)
    out_of_service(a, "tech", "boiler replaced", T0 + MIN)
    assert not a.shelved
    assert suppression(a, T0 + 60 * MIN) == "out_of_service"
    clear(a, T0 + 2 * MIN)
    assert a.state is State.CLEARED_UNACK
    return_to_service(a, "tech", T0 + 3 * MIN, "done")
    assert may_notify(a, T0 + 3 * MIN)


def test_history_holds_who_when_why_for_every_step() -> None:
    a = Alert(KEY)
    raise_(a, Severity.WARNING, 81.0, T0, "t_out > 80")
    assign(a, "lead", "ann", T0 + 1)
    acknowledge(a, "ann", T0 + 2, "going to look")
    add_note(a, "ann", "valve stuck", T0 + 3)
    shelve(a, "ann", T0 + MIN, "waiting for part", T0 + 4)
    clear(a, T0 + 5, "t_out < 78")
    got = [(t.ts_ms, t.who, t.action, t.from_state, t.to_state, t.reason) for t in a.history]
    assert got == [
        (T0, "system", Action.RAISE, State.NORMAL, State.ACTIVE_UNACK, "t_out > 80"),
        (T0 + 1, "lead", Action.ASSIGN, State.ACTIVE_UNACK, State.ACTIVE_UNACK, "assigned to ann"),
        (T0 + 2, "ann", Action.ACK, State.ACTIVE_UNACK, State.ACTIVE_ACK, "going to look"),
        (T0 + 3, "ann", Action.NOTE, State.ACTIVE_ACK, State.ACTIVE_ACK, "valve stuck"),
        (T0 + 4, "ann", Action.SHELVE, State.ACTIVE_ACK, State.ACTIVE_ACK, f"until {T0 + MIN}: waiting for part"),
        (T0 + 5, "system", Action.CLEAR, State.ACTIVE_ACK, State.NORMAL, "t_out < 78"),
    ]
    assert a.assignee == "ann"
    assert [(n.who, n.text) for n in a.notes] == [("ann", "going to look"), ("ann", "valve stuck")]
