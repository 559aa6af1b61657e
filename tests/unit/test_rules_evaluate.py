"""The evaluator as tables: a series of (ts ms, values) in, the transitions (ts, severity) out."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from rules import Engine, Rule, RuleFile
from telemetry.models import Telemetry

Value = bool | int | float | str | None


def rule(text: str) -> Rule:
    base = {"id": "r", "title": "t", "select": {"profile": "p"}}
    return RuleFile.model_validate({"rules": [{**base, **yaml.safe_load(text)}]}).rules[0]


def msg(ts: int, values: dict[str, Value], device: str = "d1", bad: tuple[str, ...] = ()) -> Telemetry:
    quality = {p: {"q": "bad", "reason": "timeout"} for p in bad}
    vals = {**values, **dict.fromkeys(bad)}
    return Telemetry.model_validate(
        {
            "site": "s1",
            "device": device,
            "profile": "p",
            "measurement": "m",
            "seq": 0,
            "samples": [{"ts": ts, "values": vals, "quality": quality}],
        }
    )


def run(r: Rule, series: list[tuple[int, dict[str, Any]]], ticks: tuple[int, ...] = ()) -> list[tuple[int, str | None]]:
    """Feed samples (ts, values) and ticks in time order; a values dict {'bad': 'x'} marks point x bad."""
    engine = Engine([r])
    events: list[tuple[int, Any]] = [(ts, v) for ts, v in series] + [(t, None) for t in ticks]
    out: list[tuple[int, str | None]] = []
    for ts, values in sorted(events, key=lambda e: e[0]):
        if values is None:
            trs = engine.tick(ts)
        else:
            bad = tuple(values.pop("bad", ()))
            trs = engine.observe(msg(ts, values, bad=bad))
        out += [(t.ts, t.severity) for t in trs]
    return out  # severities compare equal to their names (rules.Severity is a StrEnum)


LEVELS = """threshold: {point: x, direction: high, deadband: 2,
  levels: [{severity: warning, value: 25}, {severity: critical, value: 50}]}"""
LOW = """threshold: {point: x, direction: low, deadband: 0.5,
  levels: [{severity: warning, value: 3}, {severity: critical, value: 2}]}"""


def s(*vals: Value, step: int = 1000) -> list[tuple[int, dict[str, Any]]]:
    return [(i * step, {"x": v}) for i, v in enumerate(vals)]


CASES = [
    pytest.param(
        LEVELS,
        s(20, 25, 24, 26, 24.5, 23.5, 25.5, 22.9, 24),
        [(1000, "warning"), (7000, None)],
        (),
        id="noise-around-threshold-raises-once-clears-once",
    ),
    pytest.param(
        LEVELS,
        s(10, 30, 55, 49, 47.9, 30, 10),
        [(1000, "warning"), (2000, "critical"), (4000, "warning"), (6000, None)],
        (),
        id="escalate-deescalate-with-deadband",
    ),
    pytest.param(LEVELS, s(10, 60, 10), [(1000, "critical"), (2000, None)], (), id="jump-straight-to-critical"),
    pytest.param(
        LOW,
        s(5, 3, 3.4, 3.6, 1.5, 2.6),
        [(1000, "warning"), (3000, None), (4000, "critical"), (5000, "warning")],
        (),
        id="low-direction",
    ),
    pytest.param(
        LEVELS,
        [(0, {"x": 30}), (1000, {"bad": ["x"]}), (2000, {"y": 1}), (3000, {"x": 10})],
        [(0, "warning"), (3000, None)],
        (),
        id="bad-value-neither-raises-nor-clears",
    ),
    pytest.param(
        LEVELS + "\non_delay_s: 3",
        s(30, 30, 30, 10, 30, 30, 30, 30),
        [(7000, "warning")],
        (),
        id="on-delay-needs-continuous-hold",
    ),
    pytest.param(
        LEVELS + "\noff_delay_s: 2", s(30, 10, 30, 10, 10, 10), [(0, "warning"), (5000, None)], (), id="off-delay"
    ),
    pytest.param(
        LEVELS + "\non_delay_s: 5", s(30), [(5000, "warning")], (2000, 5000, 9000), id="on-delay-expires-on-tick"
    ),
    pytest.param(
        "severity: warning\nrate: {point: x, per_minute_above: 6, window_s: 60}",
        [(0, {"x": 10}), (10000, {"x": 10.5}), (20000, {"x": 14}), (80000, {"x": 14})],
        [(20000, "warning"), (80000, None)],
        (),
        id="rate-of-change",
    ),
    pytest.param(
        "severity: critical\nstate: {point: x, equals: true}",
        s(False, True, True, 1, False),
        [(1000, "critical"), (3000, None)],
        (),
        id="state-equals-bool-not-int",
    ),
    pytest.param(
        "severity: warning\nstate: {point: x, equals: 0, when: mismatch}",
        s(0, 4, 4, 0),
        [(1000, "warning"), (3000, None)],
        (),
        id="state-not-equal",
    ),
    pytest.param(
        "severity: warning\nstate: {point: x, range: [6, 9], when: mismatch}",
        s(7, 9, 9.2, 8, 5.9),
        [(2000, "warning"), (3000, None), (4000, "warning")],
        (),
        id="state-outside-range",
    ),
    pytest.param(
        "severity: info\nstate: {point: x, in: [LOCAL, MANUAL]}",
        s("REMOTE", "LOCAL", "MANUAL", "REMOTE"),
        [(1000, "info"), (3000, None)],
        (),
        id="state-in-list",
    ),
    pytest.param(
        "severity: warning\nfrozen: {point: x, samples: 3}",
        s(1, 2, 2, 2, 2, 3),
        [(3000, "warning"), (5000, None)],
        (),
        id="frozen",
    ),
    pytest.param(
        "severity: warning\nbad_quality: {point: x, for_s: 2}",
        [(0, {"x": 1}), (1000, {"bad": ["x"]}), (2000, {"bad": ["x"]}), (3000, {"bad": ["x"]}), (4000, {"x": 1})],
        [(3000, "warning"), (4000, None)],
        (),
        id="bad-quality-lasting",
    ),
    pytest.param(
        "severity: warning\nbad_quality: {point: x, for_s: 5}",
        [(0, {"bad": ["x"]}), (2000, {"x": 1})],
        [],
        (),
        id="bad-quality-too-short",
    ),
]


@pytest.mark.parametrize(("text", "series", "expected", "ticks"), CASES)
def test_transitions(
    text: str, series: list[tuple[int, dict[str, Any]]], expected: list[tuple[int, str | None]], ticks: tuple[int, ...]
) -> None:
    assert run(rule(text), series, ticks) == expected


COMPOSITE = "severity: critical\nall: [{point: level, op: ge, value: 5}, {point: gate, op: le, value: 0.05}]"


@pytest.mark.parametrize(
    ("series", "expected"),
    [
        pytest.param(
            [
                (0, {"level": 5.5, "gate": 1.0}),
                (1000, {"level": 5.5, "gate": 0.0}),
                (2000, {"level": 4.0, "gate": 0.0}),
            ],
            [(1000, "critical"), (2000, None)],
            id="high-and-closed",
        ),
        pytest.param(
            [(0, {"level": 5.5, "gate": 0.0}), (1000, {"level": 5.5}), (2000, {"level": 5.5, "gate": 0.5})],
            [(0, "critical"), (2000, None)],
            id="missing-point-holds",
        ),
    ],
)
def test_composite(series: list[tuple[int, dict[str, Any]]], expected: list[tuple[int, str | None]]) -> None:
    assert run(rule(COMPOSITE), series) == expected


def test_deadman_via_tick_per_device() -> None:
    # silence by sample time: a device is silent once the rest of its site is 5 s past its last sample
    engine = Engine([rule("severity: warning\ndeadman: {intervals: 5, interval_s: 1}")])
    assert engine.observe(msg(0, {"x": 1}, device="d1")) == []
    assert engine.observe(msg(3000, {"x": 1}, device="d2")) == []
    assert engine.tick(60_000) == []  # the wall clock alone says nothing: the whole site may be unheard
    assert engine.observe(msg(4999, {"x": 1}, device="d2")) == []
    assert engine.tick(60_000) == []
    assert engine.observe(msg(5000, {"x": 1}, device="d2")) == []
    (t,) = engine.tick(60_000)
    assert (t.device, t.severity, t.ts) == ("d1", "warning", 5000)  # dated when it fell silent, by sample time
    assert engine.tick(61_000) == []  # no repeat while still silent
    assert engine.observe(msg(8000, {"x": 1}, device="d1")) != []  # d1 back: cleared
    assert engine.observe(msg(13_000, {"x": 1}, device="d1")) == []
    assert [(t.device, t.severity, t.ts) for t in engine.tick(61_000)] == [("d2", "warning", 10_000)]
    assert [(t.device, t.severity) for t in engine.observe(msg(13_500, {"x": 1}, device="d2"))] == [("d2", None)]


def test_state_export_import_keeps_active_alert() -> None:
    rules = [rule(LEVELS)]
    engine = Engine(rules)
    assert [t.severity for t in engine.observe(msg(0, {"x": 30}))] == ["warning"]
    data = yaml.safe_load(yaml.safe_dump(engine.state()))  # survives a text round trip
    restarted = Engine.from_state(rules, data)
    assert restarted.observe(msg(1000, {"x": 31})) == []  # no duplicate raise
    assert [t.severity for t in restarted.observe(msg(2000, {"x": 10}))] == [None]


def test_one_rule_many_devices_separate_state() -> None:
    engine = Engine([rule(LEVELS)])
    assert [(t.device, t.severity) for t in engine.observe(msg(0, {"x": 30}, device="d1"))] == [("d1", "warning")]
    assert engine.observe(msg(0, {"x": 10}, device="d2")) == []
    assert [(t.device, t.severity) for t in engine.observe(msg(1000, {"x": 60}, device="d2"))] == [("d2", "critical")]
    assert engine.observe(msg(1000, {"x": 30}, device="d1")) == []
    assert set(engine.active().values()) == {"warning", "critical"}


def test_selector_filters_profile_and_tags() -> None:
    r = rule(LEVELS + "\nselect: {profile: other}")
    assert Engine([r]).observe(msg(0, {"x": 99})) == []


def test_transition_carries_value_point_and_reason() -> None:
    (t,) = Engine([rule(LEVELS)]).observe(msg(7, {"x": 30}))
    assert (t.rule, t.site, t.device, t.point, t.value, t.ts, t.previous) == ("r", "s1", "d1", "x", 30.0, 7, None)
    assert "raised" in t.reason
    assert "x = 30" in t.reason


def test_deadman_stays_quiet_while_a_backlog_of_old_samples_arrives() -> None:
    engine = Engine([rule("severity: warning\ndeadman: {intervals: 5, interval_s: 1}")])
    now = 10_000_000
    # an hour of samples of two devices, replayed now (store and forward after an outage), ticks in between
    for i in range(0, 3_600_000, 1000):
        for device in ("d1", "d2"):
            assert engine.observe(msg(now - 3_600_000 + i, {"x": 1.0}, device=device), received_ms=now + i // 100) == []
        if i % 60_000 == 0:
            assert engine.tick(now + i // 100) == []
    assert engine.active() == {}


def test_offline_rule_follows_device_status() -> None:
    from telemetry.models import DeviceStatus

    engine = Engine([rule("severity: warning\noffline: {for_s: 2}")])
    down = DeviceStatus(site="s1", device="d1", profile="p", online=False, ts=1000, reason="timeout")
    assert engine.status(down) == []
    (raised,) = engine.tick(3000)
    assert (raised.severity, raised.reason.endswith("device offline (timeout)")) == ("warning", True)
    (cleared,) = engine.status(DeviceStatus(site="s1", device="d1", profile="p", online=True, ts=4000))
    assert cleared.severity is None


def test_deviation_between_two_points_after_its_on_delay() -> None:
    r = rule(
        "severity: warning\non_delay_s: 60\ndeviation: {point: gate_opening, reference: target_opening, "
        "more_than: 0.05}"
    )
    series = [
        (0, {"gate_opening": 1.0, "target_opening": 2.0}),
        (30_000, {"gate_opening": 1.5, "target_opening": 2.0}),
        (60_000, {"gate_opening": 1.8, "target_opening": 2.0}),
        (90_000, {"gate_opening": 1.97, "target_opening": 2.0}),
    ]
    assert run(r, series) == [(60_000, "warning"), (90_000, None)]


def _quality_msg(ts: int, values: dict[str, Value], quality: dict[str, str]) -> Telemetry:
    q = {p: {"q": level, "reason": "r"} for p, level in quality.items()}
    return Telemetry.model_validate(
        {
            "site": "s1",
            "device": "d1",
            "profile": "p",
            "measurement": "m",
            "seq": 0,
            "samples": [{"ts": ts, "values": values, "quality": q}],
        }
    )


@pytest.mark.parametrize("include_uncertain", [False, True])
def test_bad_quality_of_every_point_one_state_each(include_uncertain: bool) -> None:
    """Without ``point`` every point of the sample is watched on its own; uncertain counts when asked."""
    flag = "true" if include_uncertain else "false"
    engine = Engine([rule(f"severity: warning\nbad_quality: {{include_uncertain: {flag}}}")])
    series: list[tuple[int, dict[str, Value], dict[str, str]]] = [
        (0, {"a": 1.0, "b": 2.0}, {}),
        (1000, {"a": None, "b": 2.0}, {"a": "bad"}),
        (2000, {"a": None, "b": 3.0}, {"a": "bad", "b": "uncertain"}),
        (3000, {"a": 1.0, "b": 3.0}, {}),
    ]
    seen: list[tuple[int, str | None, str | None]] = []
    for ts, values, quality in series:
        seen += [(t.ts, t.point, t.severity) for t in engine.observe(_quality_msg(ts, values, quality))]
    expected: list[tuple[int, str | None, str | None]] = [(1000, "a", "warning")]
    if include_uncertain:
        expected.append((2000, "b", "warning"))
    expected += [(3000, "a", None)] + ([(3000, "b", None)] if include_uncertain else [])
    assert seen == expected
