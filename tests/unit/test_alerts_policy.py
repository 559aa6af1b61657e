"""The notification pipeline's stages (alerts.pipeline), as tables: one row a case. Time is a parameter: every test
moves the clock by hand. Stage state goes into FakeStateTx, a FAKE of the store transaction's named-state methods
(a dict); the same stages on the real store are in tests/integration/test_alert_pipeline.py."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from alerts import (
    Action,
    Alert,
    AlertKey,
    AlertsConfig,
    Cause,
    Change,
    ChatterConfig,
    EscalationLevel,
    EscalationPolicy,
    FloodConfig,
    Kind,
    Notification,
    Pipeline,
    Severity,
    State,
    acknowledge,
    out_of_service,
    raise_,
    shelve,
)
from alerts.pipeline import STAGE_ORDER, Chattering, Escalation, Flood, Suppression, chatter_name, flood_name
from tests.helpers import FakeStateTx

T0 = 1_700_000_000_000
S = 1000
MIN = 60 * S
KEY = AlertKey("high_temp", "plant1", "boiler3", "t_out")


@dataclass
class Run:
    """Alerts by key (as rows would hold them), one pipeline, one fake transaction."""

    pipeline: Pipeline = field(default_factory=Pipeline)
    tx: FakeStateTx = field(default_factory=FakeStateTx)
    alerts: dict[AlertKey, Alert] = field(default_factory=dict)
    audience: Callable[[AlertKey], str] = lambda _key: "default"

    def rule(self, key: AlertKey, severity: Severity | None, now: int, value: float = 1.0) -> list[Notification]:
        alert = self.alerts.setdefault(key, Alert(key))
        change = self.pipeline.on_rule(self.tx, alert, self.audience(key), severity, value, now)
        return [] if change is None else change.out

    def tick(self, now: int) -> list[Notification]:
        tx, audience = self.tx, self.audience
        return [n for a in self.alerts.values() for n in self.pipeline.on_tick(tx, a, audience(a.key), now).out]


def _kinds(notes: list[Notification]) -> list[Kind]:
    return [n.kind for n in notes]


def _toggles(run: Run, key: AlertKey, count: int, start: int, step_ms: int) -> list[Kind]:
    out: list[Notification] = []
    for i in range(count):
        out += run.rule(key, Severity.WARNING if i % 2 == 0 else None, start + i * step_ms)
    return _kinds(out)


def test_stages_run_in_the_documented_order() -> None:
    kinds = [type(s) for s in Pipeline().stages]
    assert kinds == [Suppression, Chattering, Flood, Escalation]
    assert STAGE_ORDER == ("suppression", "chattering", "flood", "escalation")


# --- the lifecycle step: a rule's transitions -----------------------------------------------------------------

R, C, SEV, CHAT, FLOOD, ESC = Kind.RAISED, Kind.CLEARED, Kind.SEVERITY, Kind.CHATTERING, Kind.FLOOD, Kind.ESCALATION
H, M, CR = Severity.WARNING, Severity.WARNING, Severity.CRITICAL


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        pytest.param([H], [R], id="raise"),
        pytest.param([H, None], [R, C], id="raise-then-clear"),
        pytest.param([None], [], id="clear-when-normal-ignored"),
        pytest.param([H, None, None], [R, C], id="double-clear-ignored"),
        pytest.param([M, CR], [R, SEV], id="severity-change"),
        pytest.param([H, H], [R], id="reraise-at-same-severity-silent"),
        pytest.param([H] * 50, [R], id="fifty-readings-one-alert-one-notification"),
    ],
)
def test_rule_transitions_to_notifications(steps: list[Severity | None], expected: list[Kind]) -> None:
    run = Run()
    out: list[Notification] = []
    for i, sev in enumerate(steps):
        out += run.rule(KEY, sev, T0 + i * MIN)
    assert _kinds(out) == expected
    assert list(run.alerts) == [KEY]


def test_a_clear_of_an_alert_that_is_not_active_changes_nothing() -> None:
    alert = Alert(KEY)
    assert Pipeline().on_rule(FakeStateTx(), alert, "default", None, 0.0, T0) is None
    assert alert.history == []


# --- suppression ----------------------------------------------------------------------------------------------


def _active() -> Alert:
    a = Alert(KEY)
    raise_(a, Severity.WARNING, 1.0, T0)
    return a


@pytest.mark.parametrize(
    ("suppress", "at", "why"),
    [
        pytest.param(
            lambda a: shelve(a, "ann", T0 + 10 * MIN, "calibration", T0), T0 + MIN, "shelved", id="shelved-holds"
        ),
        pytest.param(
            lambda a: shelve(a, "ann", T0 + 10 * MIN, "calibration", T0),
            T0 + 10 * MIN,
            None,
            id="shelf-at-its-end-no-longer-holds",
        ),
        pytest.param(
            lambda a: out_of_service(a, "tech", "maintenance", T0),
            T0 + MIN,
            "out_of_service",
            id="out-of-service-holds",
        ),
        pytest.param(lambda a: None, T0 + MIN, None, id="neither-passes"),
    ],
)
def test_suppression_stage(suppress: Callable[[Alert], object], at: int, why: str | None) -> None:
    alert = _active()
    suppress(alert)
    note = Notification(Kind.CLEARED, "default", at, KEY)
    got = Suppression().run(Change(alert, "default", Cause.RULE, True, [note]), FakeStateTx(), at)
    assert (got.suppressed, got.out) == (why, [] if why else [note])


@pytest.mark.parametrize(
    "suppress",
    [
        pytest.param(lambda a: shelve(a, "ann", T0 + 60 * MIN, "calibration", T0), id="shelved"),
        pytest.param(lambda a: out_of_service(a, "tech", "maintenance", T0), id="out-of-service"),
    ],
)
def test_a_suppressed_alert_tracks_state_but_notifies_nothing(suppress: Callable[[Alert], object]) -> None:
    run = Run()
    run.rule(KEY, H, T0)
    suppress(run.alerts[KEY])
    assert run.rule(KEY, None, T0 + MIN) == run.rule(KEY, H, T0 + 2 * MIN) == []
    assert (run.alerts[KEY].state, run.alerts[KEY].count) == (State.ACTIVE_UNACK, 2)


def test_a_shelf_expires_in_the_pipeline() -> None:
    run = Run()
    run.rule(KEY, H, T0)
    shelve(run.alerts[KEY], "ann", T0 + 10 * MIN, "calibration", T0)
    assert run.rule(KEY, None, T0 + 5 * MIN) == []
    assert _kinds(run.rule(KEY, H, T0 + 10 * MIN)) == [R]
    assert run.alerts[KEY].history[-2].action is Action.SHELVE_EXPIRED


# --- chattering -----------------------------------------------------------------------------------------------

OTHER_POINT = AlertKey("high_temp", "plant1", "boiler3", "p_out")
OTHER_DEVICE = AlertKey("high_temp", "plant1", "boiler4", "t_out")


@pytest.mark.parametrize(
    ("max_toggles", "count", "expected", "held"),
    [
        pytest.param(5, 5, [R, C, R, C, R], None, id="5-toggles-at-the-limit-all-notify"),
        pytest.param(5, 6, [R, C, R, C, R, CHAT], 1, id="6th-toggle-gives-one-summary"),
        pytest.param(5, 12, [R, C, R, C, R, CHAT], 7, id="later-toggles-held-and-counted"),
        pytest.param(2, 3, [R, C, CHAT], 1, id="lower-limit"),
    ],
)
def test_chattering_marks_holds_and_summarises_once(
    max_toggles: int, count: int, expected: list[Kind], held: int | None
) -> None:
    run = Run(Pipeline(AlertsConfig(chatter=ChatterConfig(max_toggles=max_toggles))))
    assert _toggles(run, KEY, count, T0, 20 * S) == expected
    assert run.alerts[KEY].chattering is (held is not None)
    blob = run.tx.blobs[chatter_name(KEY)]
    assert blob["held"] == (held or 0)


@pytest.mark.parametrize(
    ("first", "second", "second_count", "second_expected", "second_chattering"),
    [
        pytest.param(KEY, OTHER_DEVICE, 1, [R], False, id="other-device-not-held"),
        pytest.param(KEY, OTHER_POINT, 1, [R], False, id="other-point-of-same-device-not-held"),
        pytest.param(KEY, OTHER_POINT, 3, [R, C, CHAT], True, id="other-point-chatters-by-its-own-toggles"),
    ],
)
def test_chattering_is_per_alert(
    first: AlertKey, second: AlertKey, second_count: int, second_expected: list[Kind], second_chattering: bool
) -> None:
    run = Run(Pipeline(AlertsConfig(chatter=ChatterConfig(max_toggles=2))))
    assert _toggles(run, first, 3, T0, S) == [R, C, CHAT]
    assert _toggles(run, second, second_count, T0 + 4 * S, S) == second_expected
    assert (run.alerts[first].chattering, run.alerts[second].chattering) == (True, second_chattering)


@pytest.mark.parametrize(
    ("config", "quiet_after_ms", "ended"),
    [
        pytest.param(ChatterConfig(), 10 * MIN - 1, False, id="not-yet-quiet"),
        pytest.param(ChatterConfig(), 10 * MIN, True, id="quiet-for-quiet_s-ends"),
        pytest.param(
            ChatterConfig(window_s=60, quiet_s=1800), 30 * MIN, True, id="quiet-longer-than-window-still-ends"
        ),
    ],
)
def test_chattering_ends_after_a_quiet_spell(config: ChatterConfig, quiet_after_ms: int, ended: bool) -> None:
    run = Run(Pipeline(AlertsConfig(chatter=config)))
    _toggles(run, KEY, 12, T0, 2 * S)
    last = T0 + 11 * 2 * S
    assert run.tick(last + quiet_after_ms) == []
    assert run.alerts[KEY].chattering is not ended
    if ended:
        assert _kinds(run.rule(KEY, H, last + quiet_after_ms + MIN)) == [R]
        actions = [t.action for t in run.alerts[KEY].history]
        assert (actions.count(Action.CHATTERING), actions.count(Action.CHATTERING_END)) == (1, 1)


def test_a_suppressed_alert_that_chatters_is_marked_but_sends_no_summary() -> None:
    run = Run(Pipeline(AlertsConfig(chatter=ChatterConfig(max_toggles=2))))
    run.rule(KEY, H, T0)
    out_of_service(run.alerts[KEY], "tech", "repair", T0)
    assert _toggles(run, KEY, 4, T0 + S, S) == []
    assert run.alerts[KEY].chattering


def test_a_quiet_alert_leaves_no_chatter_state_behind() -> None:
    run = Run()
    run.rule(KEY, H, T0)
    run.rule(KEY, None, T0 + S)
    assert chatter_name(KEY) in run.tx.blobs
    run.rule(KEY, H, T0 + 11 * MIN)  # the first two toggles have left the window; this one is counted
    assert run.tx.blobs[chatter_name(KEY)]["toggles"] == [T0 + 11 * MIN]
    run.tick(T0 + 30 * MIN)  # every toggle out of the window, not chattering: the blob goes
    assert chatter_name(KEY) not in run.tx.blobs


# --- flood ----------------------------------------------------------------------------------------------------


def _dev(n: int, site: str = "plant1") -> AlertKey:
    return AlertKey("rule", site, f"dev{n}", None)


def _by_site(key: AlertKey) -> str:
    return "ops" if key.site == "plant1" else "maint"


@pytest.mark.parametrize(
    ("config", "new_alerts", "expected", "held"),
    [
        pytest.param(FloodConfig(), 10, [R] * 10, 0, id="10-at-threshold-all-individual"),
        pytest.param(FloodConfig(), 11, [R] * 10 + [FLOOD], 1, id="11th-gives-flood-summary"),
        pytest.param(FloodConfig(), 15, [R] * 10 + [FLOOD], 5, id="more-are-held-and-counted"),
        pytest.param(FloodConfig(max_new=2), 4, [R, R, FLOOD], 2, id="lower-limit"),
    ],
)
def test_flood_per_audience(config: FloodConfig, new_alerts: int, expected: list[Kind], held: int) -> None:
    run = Run(Pipeline(AlertsConfig(flood=config)), audience=_by_site)
    out: list[Notification] = []
    for n in range(new_alerts):
        out += run.rule(_dev(n), H, T0 + n * 30 * S)  # all within 10 min
    assert _kinds(out) == expected
    assert len(run.alerts) == new_alerts  # every alert exists, only the notifications are held
    assert {n.audience for n in out} == {"ops"}
    assert run.tx.blobs[flood_name("ops")]["held"] == held


@pytest.mark.parametrize(
    ("key", "severity", "at_ms", "expected"),
    [
        pytest.param(_dev(99, "plant2"), H, S, [R], id="other-audience-not-held"),
        pytest.param(_dev(50), H, 9 * MIN, [], id="new-alert-inside-the-flood-held"),
        pytest.param(_dev(0), None, 9 * MIN, [C], id="clear-not-held"),
        pytest.param(_dev(1), CR, 9 * MIN, [SEV], id="severity-change-not-held"),
        pytest.param(_dev(51), H, 10 * MIN, [R], id="flood-ends-after-its-window"),
    ],
)
def test_during_a_flood(key: AlertKey, severity: Severity | None, at_ms: int, expected: list[Kind]) -> None:
    run = Run(audience=_by_site)
    for n in range(11):
        run.rule(_dev(n), H, T0 + n * S)
    flood_at = T0 + 10 * S
    assert _kinds(run.rule(key, severity, flood_at + at_ms)) == expected


def test_flood_state_outlives_the_pipeline_object() -> None:
    """A restart is a new Pipeline on the same store: the flood is still on."""
    run = Run(audience=_by_site)
    for n in range(11):
        run.rule(_dev(n), H, T0 + n * S)
    again = Run(Pipeline(), run.tx, run.alerts, _by_site)
    assert again.rule(_dev(40), H, T0 + 5 * MIN) == []


# --- escalation -----------------------------------------------------------------------------------------------

POLICY = EscalationPolicy(
    audience="default",
    levels=(EscalationLevel(after_s=300, targets=("oncall",)), EscalationLevel(after_s=900, targets=("manager",))),
)


@pytest.mark.parametrize(
    ("ack_at_s", "checks_s", "expected"),
    [
        pytest.param(
            None,
            [299, 300, 301, 899, 900, 2000],
            [(300, 1, ("oncall",)), (900, 2, ("manager",))],
            id="level1-at-5min-level2-at-15min-each-once",
        ),
        pytest.param(600, [300, 900, 2000], [(300, 1, ("oncall",))], id="none-after-ack"),
        pytest.param(120, [300, 900], [], id="acked-before-level1"),
        pytest.param(
            None, [1000, 1001], [(1000, 1, ("oncall",)), (1000, 2, ("manager",))], id="clock-jump-fires-both-once"
        ),
    ],
)
def test_escalation_on_a_moved_clock(
    ack_at_s: int | None, checks_s: list[int], expected: list[tuple[int, int, tuple[str, ...]]]
) -> None:
    run = Run(Pipeline(policies=[POLICY]))
    run.rule(KEY, H, T0)
    got = []
    for s in checks_s:
        if ack_at_s is not None and ack_at_s <= s and run.alerts[KEY].state is State.ACTIVE_UNACK:
            acknowledge(run.alerts[KEY], "ann", T0 + ack_at_s * S)
        got += [((n.ts_ms - T0) // S, n.level, n.targets) for n in run.tick(T0 + s * S) if n.kind is ESC]
    assert got == expected


@pytest.mark.parametrize(
    ("key", "prepare", "expected_levels"),
    [
        pytest.param(_dev(1), lambda a: None, [1, 2], id="own-audience-escalates-past-both-levels"),
        pytest.param(_dev(1), lambda a: shelve(a, "ann", T0 + 60 * MIN, "known", T0), [], id="shelved-does-not"),
        pytest.param(_dev(1), lambda a: out_of_service(a, "tech", "repair", T0), [], id="out-of-service-does-not"),
        pytest.param(_dev(2, "plant2"), lambda a: None, [], id="audience-without-policy-does-not"),
    ],
)
def test_escalation_stage(key: AlertKey, prepare: Callable[[Alert], object], expected_levels: list[int]) -> None:
    alert = Alert(key)
    raise_(alert, H, 1.0, T0)
    prepare(alert)
    stage = Escalation([POLICY.model_copy(update={"audience": "ops"})])
    change = Suppression().run(Change(alert, _by_site(key), Cause.TICK), FakeStateTx(), T0 + 20 * MIN)
    got = stage.run(change, FakeStateTx(), T0 + 20 * MIN)
    assert [n.level for n in got.out] == expected_levels
    assert alert.escalation_level == (expected_levels[-1] if expected_levels else 0)


def test_escalation_does_not_fire_on_a_rule_change() -> None:
    run = Run(Pipeline(policies=[POLICY]))
    run.rule(KEY, M, T0)
    assert _kinds(run.rule(KEY, CR, T0 + 20 * MIN)) == [SEV]
    assert _kinds(run.tick(T0 + 20 * MIN)) == [ESC, ESC]


# --- the one save format --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "blob"),
    [
        pytest.param(chatter_name(KEY), {"version": 2}, id="chatter-unknown-version"),
        pytest.param(chatter_name(KEY), {"toggles": "many"}, id="chatter-bad-field"),
        pytest.param(flood_name("default"), {"version": 1, "surprise": 1}, id="flood-unknown-field"),
    ],
)
def test_bad_stage_state_is_refused_naming_the_blob(name: str, blob: dict[str, object]) -> None:
    run = Run()
    run.tx.blobs[name] = blob
    with pytest.raises(ValueError, match=re.escape(f"state blob {name!r}")):
        run.rule(KEY, H, T0)  # a raise: chattering loads its blob, then flood loads the audience's
