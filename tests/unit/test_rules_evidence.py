"""A raise or escalation carries the readings that raised it (``rules.evidence``): the samples over which the
condition held (time, the rule's points, their quality when not good), at most ``SAMPLES``; a rate rule its window;
a window rule the window's figures; a clear carries none, and a restarted engine keeps what it had gathered."""

from __future__ import annotations

from typing import Any

import pytest

from rules import Engine, Evidence, Reading, Transition
from rules.evidence import SAMPLES
from rules.scheduled import WindowValue, judge, window_threshold
from tests.unit.test_rules_evaluate import LEVELS, msg, rule
from tests.unit.test_rules_window import END, HOUR, window_rule


def feed(engine: Engine, series: list[tuple[int, dict[str, Any]]]) -> list[Transition]:
    out: list[Transition] = []
    for ts, values in series:
        bad = tuple(values.pop("bad", ()))
        out += engine.observe(msg(ts, values, bad=bad))
    return out


def x(*pairs: tuple[int, float]) -> tuple[Reading, ...]:
    return tuple(Reading(ts, {"x": v}) for ts, v in pairs)


def test_a_raise_after_its_on_delay_carries_every_sample_the_condition_held() -> None:
    engine = Engine([rule(LEVELS + "\non_delay_s: 2")])
    got = feed(engine, [(0, {"x": 10}), (1000, {"x": 30}), (2000, {"x": 31}), (3000, {"x": 32}), (4000, {"x": 33})])
    (raised,) = got
    assert (raised.ts, raised.severity) == (3000, "warning")
    assert raised.evidence == Evidence(x((1000, 30), (2000, 31), (3000, 32)))


def test_an_escalation_carries_its_own_readings_and_a_clear_none() -> None:
    engine = Engine([rule(LEVELS)])
    got = feed(engine, [(0, {"x": 30}), (1000, {"x": 60}), (2000, {"x": 10})])
    assert [(t.severity, t.evidence) for t in got] == [
        ("warning", Evidence(x((0, 30)))),
        ("critical", Evidence(x((0, 30), (1000, 60)))),
        (None, None),
    ]


def test_a_new_raise_after_a_clear_starts_its_evidence_afresh() -> None:
    engine = Engine([rule(LEVELS)])
    got = feed(engine, [(0, {"x": 30}), (1000, {"x": 10}), (2000, {"x": 40})])
    assert got[-1].evidence == Evidence(x((2000, 40)))


def test_evidence_keeps_the_last_samples_only() -> None:
    engine = Engine([rule(LEVELS + "\non_delay_s: 100")])
    got = feed(engine, [(i * 1000, {"x": 30 + i}) for i in range(101)])
    (raised,) = got
    assert raised.evidence is not None
    assert raised.evidence.readings == x(*((i * 1000, 30 + i) for i in range(101 - SAMPLES, 101)))


def test_a_composite_rule_keeps_each_point_it_reads() -> None:
    composite = "severity: critical\nall: [{point: level, op: ge, value: 5}, {point: gate, op: le, value: 0.05}]"
    engine = Engine([rule(composite)])
    (raised,) = feed(engine, [(0, {"level": 5.5, "gate": 0.0, "other": 1})])
    assert raised.evidence == Evidence((Reading(0, {"level": 5.5, "gate": 0.0}),))


def test_a_bad_quality_raise_says_which_quality() -> None:
    engine = Engine([rule("severity: warning\nbad_quality: {point: x}")])
    (raised,) = feed(engine, [(0, {"bad": ["x"]})])
    assert raised.evidence == Evidence((Reading(0, {"x": None}, {"x": "bad"}),))


def test_a_rate_rule_keeps_its_window() -> None:
    engine = Engine([rule("severity: warning\nrate: {point: x, per_minute_above: 6, window_s: 60}")])
    got = feed(engine, [(0, {"x": 1.0}), (10_000, {"x": 1.5}), (20_000, {"x": 4.0})])
    (raised,) = got
    assert raised.evidence == Evidence(x((0, 1.0), (10_000, 1.5), (20_000, 4.0)))


def test_a_silence_keeps_no_evidence_row() -> None:
    engine = Engine([rule("severity: warning\ndeadman: {intervals: 5, interval_s: 1}")])
    engine.observe(msg(0, {"x": 1}, device="d1"))
    engine.observe(msg(5000, {"x": 1}, device="d2"))  # the site goes on: d1 is silent by sample time
    (raised,) = engine.tick(60_000)
    assert (raised.device, raised.severity) == ("d1", "warning")
    assert raised.evidence is None


def test_a_restarted_engine_keeps_the_evidence_it_gathered() -> None:
    rules = [rule(LEVELS + "\non_delay_s: 2")]
    first = Engine(rules)
    assert feed(first, [(1000, {"x": 30}), (2000, {"x": 31})]) == []
    again = Engine.from_state(rules, first.state())
    (raised,) = feed(again, [(3000, {"x": 32})])
    assert raised.evidence == Evidence(x((1000, 30), (2000, 31), (3000, 32)))


@pytest.mark.parametrize(
    ("held", "value", "has_evidence"),
    [(None, 50.0, True), ("warning", 120.0, True), ("critical", 1.0, False)],
    ids=["raise", "escalation", "clear"],
)
def test_a_window_verdict_keeps_the_windows_figures(held: str | None, value: float, has_evidence: bool) -> None:
    from rules.scheduled import WindowState

    r = window_rule()
    states = {("w.so2", "s1", "d1", "so2"): WindowState(held, 0.0, END - HOUR)} if held else {}
    got = judge(r, window_threshold(r), END, {("s1", "d1"): WindowValue("s1", "d1", value, 12, "p")}, states)
    (t,) = got.transitions
    if not has_evidence:
        assert t.evidence is None
        return
    assert t.evidence == Evidence(
        window={
            "point": "so2",
            "stat": "mean",
            "source": "raw",
            "period": "hour",
            "start_ms": END - HOUR,
            "end_ms": END,
            "value": value,
            "count": 12,
        }
    )
