"""AlertBook and its notification stages: one alert per key, suppression, chattering, flood, escalation,
state export. Time is a parameter: every test moves the clock by hand."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from alerts import (
    Action,
    Alert,
    AlertBook,
    AlertKey,
    AlertsConfig,
    ChatterConfig,
    EscalationLevel,
    EscalationPolicy,
    Kind,
    Notification,
    Severity,
    State,
    out_of_service,
    shelve,
)

T0 = 1_700_000_000_000
S = 1000
MIN = 60 * S
KEY = AlertKey("high_temp", "plant1", "boiler3", "t_out")


def _kinds(notes: list[Notification]) -> list[Kind]:
    return [n.kind for n in notes]


def _by_site(alert: Alert) -> str:
    return "ops" if alert.key.site == "plant1" else "maint"


def test_one_alert_per_key_never_per_reading() -> None:
    book = AlertBook()
    out: list[Notification] = []
    for i in range(50):
        out += book.on_transition(KEY, Severity.HIGH, 80.0 + i, T0 + i * S, "t_out > 80")
    assert list(book.alerts) == [KEY]
    a = book.alerts[KEY]
    assert (a.count, a.first_ms, a.last_ms, a.state) == (50, T0, T0 + 49 * S, State.ACTIVE_UNACK)
    assert _kinds(out) == [Kind.RAISED]  # re-raises at the same severity say nothing new


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([Severity.HIGH], [Kind.RAISED], id="raise"),
        pytest.param([Severity.HIGH, None], [Kind.RAISED, Kind.CLEARED], id="raise-clear"),
        pytest.param([None], [], id="clear-when-normal-ignored"),
        pytest.param([Severity.HIGH, None, None], [Kind.RAISED, Kind.CLEARED], id="double-clear-ignored"),
        pytest.param([Severity.MEDIUM, Severity.CRITICAL], [Kind.RAISED, Kind.SEVERITY], id="severity-change"),
        pytest.param([Severity.HIGH, Severity.HIGH], [Kind.RAISED], id="reraise-silent"),
    ],
)
def test_rule_transitions_to_notifications(steps: list[Severity | None], expected: list[Kind]) -> None:
    book = AlertBook()
    out: list[Notification] = []
    for i, sev in enumerate(steps):
        out += book.on_transition(KEY, sev, 1.0, T0 + i * MIN)
    assert _kinds(out) == expected


@pytest.mark.parametrize(
    "suppress",
    [
        pytest.param(lambda a: shelve(a, "ann", T0 + 60 * MIN, "calibration", T0), id="shelved"),
        pytest.param(lambda a: out_of_service(a, "tech", "maintenance", T0), id="out-of-service"),
    ],
)
def test_suppressed_alert_tracks_state_but_notifies_nothing(suppress: Callable[[Alert], object]) -> None:
    book = AlertBook()
    book.on_transition(KEY, Severity.HIGH, 1.0, T0)
    suppress(book.alerts[KEY])
    assert book.on_transition(KEY, None, 0.0, T0 + MIN) == []
    assert book.on_transition(KEY, Severity.HIGH, 1.0, T0 + 2 * MIN) == []
    assert book.alerts[KEY].state is State.ACTIVE_UNACK
    assert book.alerts[KEY].count == 2


def test_shelf_expires_inside_the_book() -> None:
    book = AlertBook()
    book.on_transition(KEY, Severity.HIGH, 1.0, T0)
    shelve(book.alerts[KEY], "ann", T0 + 10 * MIN, "calibration", T0)
    assert book.on_transition(KEY, None, 0.0, T0 + 5 * MIN) == []
    assert _kinds(book.on_transition(KEY, Severity.HIGH, 1.0, T0 + 10 * MIN)) == [Kind.RAISED]
    assert book.alerts[KEY].history[-2].action is Action.SHELVE_EXPIRED


def test_chattering_marks_holds_and_summarises_once() -> None:
    """Default 5 toggles in 10 min: toggles 1..5 notify, the 6th gives one CHATTERING summary,
    later toggles are held; after 10 quiet minutes notifications resume."""
    book = AlertBook()
    out: list[Notification] = []
    for i in range(12):
        sev = Severity.HIGH if i % 2 == 0 else None
        out += book.on_transition(KEY, sev, 1.0, T0 + i * 20 * S)
    assert _kinds(out) == [Kind.RAISED, Kind.CLEARED] * 2 + [Kind.RAISED, Kind.CHATTERING]
    assert book.alerts[KEY].chattering
    assert book.chatter[("high_temp", "plant1", "boiler3")].held == 7
    # quiet for 10 minutes after the last toggle (at 220 s)
    last = T0 + 11 * 20 * S
    book.tick(last + 10 * MIN)
    assert not book.alerts[KEY].chattering
    assert _kinds(book.on_transition(KEY, Severity.HIGH, 1.0, last + 11 * MIN)) == [Kind.RAISED]
    actions = [t.action for t in book.alerts[KEY].history]
    assert actions.count(Action.CHATTERING) == 1
    assert actions.count(Action.CHATTERING_END) == 1


def test_chattering_is_per_rule_and_device() -> None:
    book = AlertBook(AlertsConfig(chatter=ChatterConfig(max_toggles=2)))
    other = AlertKey("high_temp", "plant1", "boiler4", "t_out")
    out: list[Notification] = []
    for i in range(3):
        out += book.on_transition(KEY, Severity.HIGH if i % 2 == 0 else None, 1.0, T0 + i * S)
    assert _kinds(out) == [Kind.RAISED, Kind.CLEARED, Kind.CHATTERING]
    assert _kinds(book.on_transition(other, Severity.HIGH, 1.0, T0 + 4 * S)) == [Kind.RAISED]


def _key(n: int, site: str = "plant1") -> AlertKey:
    return AlertKey("rule", site, f"dev{n}", None)


@pytest.mark.parametrize(
    ("new_alerts", "expected"),
    [
        pytest.param(10, [Kind.RAISED] * 10, id="10-at-threshold-all-individual"),
        pytest.param(11, [Kind.RAISED] * 10 + [Kind.FLOOD], id="11th-gives-flood-summary"),
        pytest.param(15, [Kind.RAISED] * 10 + [Kind.FLOOD], id="more-are-held"),
    ],
)
def test_flood_per_audience(new_alerts: int, expected: list[Kind]) -> None:
    book = AlertBook(audience_of=_by_site)
    out: list[Notification] = []
    for n in range(new_alerts):
        out += book.on_transition(_key(n), Severity.HIGH, 1.0, T0 + n * 30 * S)  # all within 10 min
    assert _kinds(out) == expected
    assert len(book.alerts) == new_alerts  # every alert exists, only the notifications are held
    assert all(n.audience == "ops" for n in out)


def test_flood_leaves_other_audience_alone_and_ends_after_window() -> None:
    book = AlertBook(audience_of=_by_site)
    for n in range(11):
        book.on_transition(_key(n), Severity.HIGH, 1.0, T0 + n * S)
    flood_at = T0 + 10 * S
    assert _kinds(book.on_transition(_key(99, "plant2"), Severity.HIGH, 1.0, flood_at + S)) == [Kind.RAISED]
    assert book.on_transition(_key(50), Severity.HIGH, 1.0, flood_at + 9 * MIN) == []
    # clears are not held by a flood
    assert _kinds(book.on_transition(_key(0), None, 0.0, flood_at + 9 * MIN)) == [Kind.CLEARED]
    assert book.flood["ops"].held == 2  # the 11th (covered by the summary) and _key(50)
    assert _kinds(book.on_transition(_key(51), Severity.HIGH, 1.0, flood_at + 10 * MIN)) == [Kind.RAISED]


POLICY = EscalationPolicy(
    audience="default",
    levels=(EscalationLevel(after_s=300, targets=("oncall",)), EscalationLevel(after_s=900, targets=("manager",))),
)


@pytest.mark.parametrize(
    ("ack_at_min", "checks_s", "expected"),
    [
        pytest.param(None, [299, 300, 301, 899, 900, 2000], [(300, 1, ("oncall",)), (900, 2, ("manager",))],
                     id="level1-at-5min-level2-at-15min-each-once"),
        pytest.param(10, [300, 900, 2000], [(300, 1, ("oncall",))], id="none-after-ack"),
        pytest.param(2, [300, 900], [], id="acked-before-level1"),
        pytest.param(None, [1000, 1001], [(1000, 1, ("oncall",)), (1000, 2, ("manager",))], id="clock-jump-both-once"),
    ],
)
def test_escalation_on_time(
    ack_at_min: int | None, checks_s: list[int], expected: list[tuple[int, int, tuple[str, ...]]]
) -> None:
    book = AlertBook(policies=[POLICY])
    book.on_transition(KEY, Severity.HIGH, 1.0, T0)
    got = []
    for s in checks_s:
        if ack_at_min is not None and ack_at_min * MIN <= s * S and book.alerts[KEY].state is State.ACTIVE_UNACK:
            book.acknowledge(KEY, "ann", T0 + ack_at_min * MIN)
        got += [((n.ts_ms - T0) // S, n.level, n.targets) for n in book.tick(T0 + s * S)]
    assert got == expected


def test_escalation_skips_shelved_and_other_audience() -> None:
    book = AlertBook(audience_of=_by_site, policies=[POLICY.model_copy(update={"audience": "ops"})])
    book.on_transition(_key(1), Severity.HIGH, 1.0, T0)
    book.on_transition(_key(2, "plant2"), Severity.HIGH, 1.0, T0)
    shelve(book.alerts[_key(1)], "ann", T0 + 60 * MIN, "known", T0)
    assert book.due(T0 + 20 * MIN) == []


def test_round_trip_keeps_state_and_raises_no_duplicate() -> None:
    book = AlertBook(audience_of=_by_site, policies=[POLICY.model_copy(update={"audience": "ops"})])
    keys = [_key(n) for n in range(12)]  # 12 new alerts: a flood is on
    for i, k in enumerate(keys):
        book.on_transition(k, Severity.HIGH, 1.0, T0 + i * S)
    book.acknowledge(keys[0], "ann", T0 + MIN, "on it")
    book.on_transition(keys[1], None, 0.0, T0 + MIN)
    shelve(book.alerts[keys[2]], "ann", T0 + 60 * MIN, "calibration", T0 + MIN)
    book.tick(T0 + 6 * MIN)  # level-1 escalations recorded

    data = json.loads(json.dumps(book.to_dict()))
    again = AlertBook.from_dict(data, audience_of=_by_site, policies=[POLICY.model_copy(update={"audience": "ops"})])
    assert again.to_dict() == book.to_dict()
    assert again.alerts[keys[0]].state is State.ACTIVE_ACK
    assert again.alerts[keys[1]].state is State.CLEARED_UNACK
    assert again.alerts[keys[2]].shelved

    # a still-active alert re-raised after restart is the same alert, no new notification
    assert again.on_transition(keys[3], Severity.HIGH, 2.0, T0 + 7 * MIN) == []
    assert len(again.alerts) == 12
    assert again.alerts[keys[3]].count == 2
    # escalation level survives: level 1 does not fire again
    assert [n.level for n in again.tick(T0 + 8 * MIN)] == []
    # the flood survives: a new alert inside the window is still held
    assert again.on_transition(_key(40), Severity.HIGH, 1.0, T0 + 8 * MIN) == []


def test_from_dict_rejects_bad_snapshot() -> None:
    with pytest.raises(ValueError, match="version"):
        AlertBook.from_dict({"version": 2, "alerts": [], "chatter": [], "flood": []})


def test_operator_actions_through_the_book() -> None:
    book = AlertBook()
    book.on_transition(KEY, Severity.HIGH, 1.0, T0)
    book.assign(KEY, "lead", "ann", T0 + 1)
    book.add_note(KEY, "ann", "checking", T0 + 2)
    book.shelve(KEY, "ann", T0 + MIN, "known issue", T0 + 3)
    book.unshelve(KEY, "ann", T0 + 4)
    book.out_of_service(KEY, "tech", "repair", T0 + 5)
    book.return_to_service(KEY, "tech", T0 + 6)
    book.acknowledge(KEY, "ann", T0 + 7)
    assert [t.action for t in book.alerts[KEY].history] == [
        Action.RAISE, Action.ASSIGN, Action.NOTE, Action.SHELVE, Action.UNSHELVE,
        Action.OUT_OF_SERVICE, Action.RETURN_TO_SERVICE, Action.ACK,
    ]
    with pytest.raises(KeyError):
        book.acknowledge(AlertKey("nope", "x", "y"), "ann", T0)
