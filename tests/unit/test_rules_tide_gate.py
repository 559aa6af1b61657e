"""The tide gate rule (sluice.high_level_gate_closed): judged by the head across the gate and by which side is the
flood (outer, tidal) side, the device tag ``flood_side`` (shared standards/sluice.md "Alarms on a tidal river gate").
Correct flood defence raises nothing; an inner river that could drain behind a closed gate, one that cannot drain by
gravity, and the tide flowing inland through an open gate raise by their level; a gate without the tag gets no
verdict (logged once). Also: the simulated Baoshan gates' sides, and the rule over a simulated tide."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import load_site
from infra.config_loader import ConfigError
from rules import PACKS, Engine, Rule, Transition, load_rules
from rules._conditions import tide_gate_target
from rules.schema import TideGate
from simulators.behaviours.sluice_gate_plc import M2_PERIOD_S, GateParams, SluiceGate
from simulators.scenario import load_scenario
from telemetry.models import Telemetry

RULE = next(r for r in load_rules([PACKS]) if r.id == "sluice.high_level_gate_closed")


def _tide_gate(rule: Rule) -> TideGate:
    assert rule.tide_gate is not None
    return rule.tide_gate


TG = _tide_gate(RULE)
SECOND = 1000


def msg(ts: int, up: float, down: float, opening: float, tags: dict[str, str], device: str = "g1") -> Telemetry:
    return Telemetry.model_validate(
        {
            "site": "yzb",
            "device": device,
            "profile": "sluice_gate_plc",
            "measurement": "sluice_gate",
            "seq": 0,
            "tags": tags,
            "samples": [{"ts": ts, "values": {"level_up": up, "level_down": down, "gate_opening": opening}}],
        }
    )


def held(
    up: float, down: float, opening: float, side: str | None, rule: Rule = RULE, seconds: int = 60
) -> list[Transition]:
    """The same reading every 10 s for ``seconds`` (past the rule's 30 s on-delay)."""
    engine = Engine([rule])
    tags = {} if side is None else {"flood_side": side}
    return [
        t
        for i in range(0, seconds + 1, 10)
        for t in engine.observe(msg(1_800_000_000_000 + i * SECOND, up, down, opening, tags))
    ]


# flood_side downstream: the inner river is level_up, the tide level_down (a gate at an inner river's mouth);
# flood_side upstream: the tide is level_up. Inner levels: warning 3.5, critical 3.8 m; inflow head 0.1 / 0.5 m.
CASES = [
    # (id, flood_side, level_up, level_down, opening, severity, detail starts with)
    ("flood-defence-tide-5.3-outside-river-2.5-inside-gate-shut", "downstream", 2.5, 5.3, 0.0, None, "flood defence"),
    ("flood-defence-tide-upstream-side", "upstream", 5.3, 2.5, 0.0, None, "flood defence"),
    ("dangerous-river-high-inside-tide-low-gate-shut", "downstream", 3.6, 1.0, 0.0, "warning", "inner level high with"),
    ("drainable-critical-by-the-inner-level", "downstream", 3.9, 1.0, 0.02, "critical", "inner level high with"),
    ("drainable-same-on-a-tide-upstream-gate", "upstream", 1.0, 3.6, 0.0, "warning", "inner level high with"),
    ("undrainable-outer-higher-gate-shut", "downstream", 3.6, 4.2, 0.0, "warning", "inner level high and cannot"),
    ("undrainable-critical", "downstream", 3.85, 4.5, 0.0, "critical", "inner level high and cannot"),
    ("draining-inner-high-gate-open-outer-lower", "downstream", 3.6, 1.0, 2.0, None, "outer 1 m"),
    ("tide-flowing-inland-small-head-warning", "downstream", 2.6, 2.8, 1.5, "warning", "tide flowing inland"),
    ("tide-flowing-inland-large-head-critical", "downstream", 2.6, 3.3, 1.5, "critical", "tide flowing inland"),
    ("tide-inland-on-a-tide-upstream-gate", "upstream", 3.3, 2.6, 1.5, "critical", "tide flowing inland"),
    ("head-below-the-inflow-level", "downstream", 2.6, 2.65, 1.5, None, "outer 2.65 m"),
    ("gate-open-draining-normal-levels", "downstream", 2.6, 1.2, 1.5, None, "outer 1.2 m"),
    ("normal-closed-at-low-tide", "downstream", 2.6, 1.2, 0.0, None, "outer 1.2 m"),
    ("inflow-and-undrainable-highest-wins", "downstream", 3.6, 4.2, 1.0, "critical", "tide flowing inland"),
]


@pytest.mark.parametrize(
    ("side", "up", "down", "opening", "severity", "detail"), [pytest.param(*c[1:], id=c[0]) for c in CASES]
)
def test_tide_gate_table(side: str, up: float, down: float, opening: float, severity: str | None, detail: str) -> None:
    target, why = tide_gate_target(TG, side, up, down, opening, None)
    assert target == severity
    assert why.startswith(detail) or detail in why
    got = held(up, down, opening, side)
    assert [(t.severity, t.point) for t in got if t.severity is not None] == ([(severity, None)] if severity else [])
    if severity:
        assert got[0].ts == 1_800_000_000_000 + 30 * SECOND  # the on-delay


def test_the_old_false_alarm_and_the_missed_danger() -> None:
    """Issue 22: tide 5.3 m outside, river 2.5 m inside, gate shut raised a critical alert under the old rule (which
    read level_up alone); river high inside with a low tide and the gate shut raised nothing."""
    assert held(2.5, 5.3, 0.0, "downstream") == []
    (raised,) = held(3.6, 1.0, 0.0, "downstream")
    assert raised.severity == "warning"
    assert "could drain" in raised.reason
    assert "outer 1 m, inner 3.6 m, gate closed" in raised.reason


def test_deadband_holds_a_level_until_the_value_is_back_past_it() -> None:
    assert tide_gate_target(TG, "downstream", 3.47, 1.0, 0.0, "warning")[0] == "warning"  # 3.5 - 0.05 < 3.47
    assert tide_gate_target(TG, "downstream", 3.44, 1.0, 0.0, "warning")[0] is None
    assert tide_gate_target(TG, "downstream", 3.47, 1.0, 0.0, None)[0] is None


def test_the_alert_clears_when_the_gate_opens_to_drain() -> None:
    engine = Engine([RULE])
    tags = {"flood_side": "downstream"}
    t0 = 1_800_000_000_000
    raised = [t for i in range(0, 61, 10) for t in engine.observe(msg(t0 + i * SECOND, 3.6, 1.0, 0.0, tags))]
    assert [t.severity for t in raised] == ["warning"]
    cleared = engine.observe(msg(t0 + 70 * SECOND, 3.6, 1.0, 2.0, tags))
    assert [(t.severity, t.previous) for t in cleared] == [(None, "warning")]


@pytest.mark.parametrize("tags", [{}, {"flood_side": "outer"}], ids=["no-tag", "bad-tag"])
def test_a_gate_without_a_valid_flood_side_gets_no_verdict_logged_once(
    tags: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    engine = Engine([RULE])
    with caplog.at_level(logging.WARNING, logger="rules.evaluate"):
        got = [t for i in range(10) for t in engine.observe(msg(1_800_000_000_000 + i * 10_000, 3.9, 1.0, 0.0, tags))]
    assert got == []
    assert len([r for r in caplog.records if "flood side" in r.getMessage()]) == 1


def test_a_missing_level_gives_no_verdict() -> None:
    engine = Engine([RULE])
    m = Telemetry.model_validate(
        {
            "site": "yzb",
            "device": "g1",
            "profile": "sluice_gate_plc",
            "measurement": "sluice_gate",
            "seq": 0,
            "tags": {"flood_side": "downstream"},
            "samples": [
                {"ts": 1_800_000_000_000 + i * 10_000, "values": {"level_up": 3.9, "gate_opening": 0.0}}
                for i in range(10)
            ],
        }
    )
    assert engine.observe(m) == []


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        pytest.param({"inner": {"levels": [{"severity": "warning", "value": 3.5}]}}, "inflow_head", id="no-inflow"),
        pytest.param(
            {
                "inner": {"levels": [{"severity": "critical", "value": 3.5}, {"severity": "warning", "value": 3.8}]},
                "inflow_head": {"levels": [{"severity": "warning", "value": 0.1}]},
            },
            "severity",
            id="levels-out-of-order",
        ),
    ],
)
def test_tide_gate_schema(body: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        TideGate.model_validate(body)


def test_a_tide_gate_rule_takes_its_severity_from_its_levels() -> None:
    raw = RULE.model_dump(by_alias=True, exclude_none=True) | {"severity": "critical"}
    with pytest.raises(ValueError, match="levels carry the severity"):
        Rule.model_validate(raw)


# --- the simulated district ---------------------------------------------------------------------------------------
def test_baoshan_gates_have_the_tide_downstream_and_say_so() -> None:
    sc = load_scenario("baoshan")
    gates = [d for s in sc.sites for d in s.devices if d.profile == "sluice_gate_plc"]
    assert len(gates) == 8
    for d in gates:
        assert d.tags.get("flood_side") == "downstream"
        assert GateParams.model_validate(d.params).flood_side == "downstream"


def test_a_simulated_tide_cycle_at_a_closed_gate_raises_nothing_and_rain_behind_it_does() -> None:
    g = SluiceGate(7, GateParams(flood_side="downstream", tide_amplitude_m=1.4, tide_mean_m=3.0))  # spring tides
    engine = Engine([RULE])
    tags = {"flood_side": "downstream"}
    t0 = 1_800_000_000.0
    out: list[Transition] = []
    for i in range(0, int(M2_PERIOD_S), 60):  # a whole tide, high 4.4 m outside, the gate shut
        v = g.step(t0 + i)
        out += engine.observe(msg(int((t0 + i) * 1000), float(v["level_up"]), float(v["level_down"]), 0.0, tags))
    assert out == []
    g.rain(t0 + M2_PERIOD_S, rise_m=1.2, hours=6)  # the river rises behind the shut gate
    for i in range(int(M2_PERIOD_S), int(M2_PERIOD_S) + 2 * 3600, 60):
        v = g.step(t0 + i)
        out += engine.observe(msg(int((t0 + i) * 1000), float(v["level_up"]), float(v["level_down"]), 0.0, tags))
    assert out
    assert out[0].severity == "warning"


# --- the site file ------------------------------------------------------------------------------------------------
GATE_SITE = """\
site: yzb
broker: {host: 127.0.0.1, port: 1883}
devices:
  - id: gate-1
    profile: sluice_gate_plc
    host: 127.0.0.2
    tags: {flood_side: SIDE}
"""


@pytest.mark.parametrize(("side", "ok"), [("downstream", True), ("upstream", True), ("outer", False)])
def test_the_site_file_refuses_a_flood_side_that_is_no_side(tmp_path: Path, side: str, ok: bool) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(GATE_SITE.replace("SIDE", side), encoding="utf-8")
    if ok:
        assert load_site(path).config.devices[0].tags == {"flood_side": side}
        return
    with pytest.raises(ConfigError) as err:
        load_site(path)
    (problem,) = err.value.problems
    assert "flood_side='outer' must be upstream or downstream" in problem
