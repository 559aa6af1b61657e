"""The gate interlocks (``telemetry.interlocks``, checked by the API and the edge) as a table, one row a case;
targets and directions; the edge's control config and its id log."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.commands import CommandLog
from edge_agent.config import load_site
from infra.config_loader import ConfigError
from telemetry.commands import Action, CommandResult, Interlock, ResultState
from telemetry.interlocks import (
    STATE_POINTS,
    GateState,
    Limits,
    Refusal,
    check,
    direction,
    fault_of,
    missing_points,
    target_of,
)

LIMITS = Limits(
    full_opening_m=6.5,
    min_opening_m=0.0,
    max_opening_m=6.0,
    tolerance_m=0.02,
    max_head_open_m=1.0,
    max_head_close_m=2.0,
)
OK = GateState(
    opening_m=2.0,
    level_up_m=3.0,
    level_down_m=2.5,
    remote=True,
    fault_code=0,
    estop=False,
    overload=False,
    power_ok=True,
    moving_open=False,
    moving_close=False,
    limit_open=False,
    limit_closed=False,
)


def state(**changes: object) -> GateState:
    return replace(OK, **changes)  # type: ignore[arg-type]


CASES = [
    # (id, action, target_m, state (None: not read), busy, expected interlock or None)
    ("open-ok", Action.SET_OPENING, 2.6, OK, False, None),
    ("close-ok", Action.SET_OPENING, 1.0, OK, False, None),
    ("at-target-ok", Action.SET_OPENING, 2.01, OK, False, None),
    ("stop-skips-everything", Action.STOP, None, None, True, None),
    ("stop-in-local-with-fault", Action.STOP, None, state(remote=False, fault_code=1), False, None),
    ("busy-first", Action.SET_OPENING, 9.0, None, True, Interlock.BUSY),
    ("out-of-limits-high", Action.SET_OPENING, 6.2, OK, False, Interlock.OUT_OF_LIMITS),
    ("out-of-limits-low", Action.SET_OPENING, -0.1, OK, False, Interlock.OUT_OF_LIMITS),
    ("at-max-ok", Action.OPEN, 6.0, OK, False, None),
    ("no-data", Action.SET_OPENING, 2.6, None, False, Interlock.NO_DATA),
    ("local-mode", Action.SET_OPENING, 2.6, state(remote=False), False, Interlock.LOCAL_MODE),
    ("fault-code", Action.SET_OPENING, 2.6, state(fault_code=2), False, Interlock.GATE_FAULT),
    ("estop", Action.SET_OPENING, 2.6, state(estop=True), False, Interlock.GATE_FAULT),
    ("overload", Action.SET_OPENING, 2.6, state(overload=True), False, Interlock.GATE_FAULT),
    ("power-lost", Action.SET_OPENING, 2.6, state(power_ok=False), False, Interlock.GATE_FAULT),
    ("local-before-fault", Action.SET_OPENING, 2.6, state(remote=False, fault_code=1), False, Interlock.LOCAL_MODE),
    ("moving-locally", Action.SET_OPENING, 2.6, state(moving_close=True), False, Interlock.BUSY),
    ("upper-limit-switch", Action.SET_OPENING, 2.6, state(limit_open=True), False, Interlock.OUT_OF_LIMITS),
    ("lower-limit-switch", Action.SET_OPENING, 1.0, state(limit_closed=True), False, Interlock.OUT_OF_LIMITS),
    ("head-open-too-large", Action.SET_OPENING, 2.6, state(level_up_m=4.0), False, Interlock.LEVEL_DIFFERENCE),
    ("head-reversed-too-large", Action.SET_OPENING, 2.6, state(level_down_m=4.5), False, Interlock.LEVEL_DIFFERENCE),
    ("head-at-limit-ok", Action.SET_OPENING, 2.6, state(level_up_m=3.5), False, None),
    ("head-close-within", Action.SET_OPENING, 1.0, state(level_up_m=4.0), False, None),
    ("head-close-too-large", Action.CLOSE, 0.0, state(level_up_m=5.0), False, Interlock.LEVEL_DIFFERENCE),
    ("head-unknown-opening", Action.SET_OPENING, 2.6, state(level_up_m=None), False, Interlock.NO_DATA),
    ("head-unknown-no-movement", Action.SET_OPENING, 2.0, state(level_up_m=None), False, None),
    ("moving-open-locally", Action.SET_OPENING, 1.0, state(moving_open=True), False, Interlock.BUSY),
    ("upper-limit-switch-closing-ok", Action.SET_OPENING, 1.0, state(limit_open=True), False, None),
    ("lower-limit-switch-opening-ok", Action.SET_OPENING, 2.6, state(limit_closed=True), False, None),
    ("limit-switch-no-movement-ok", Action.SET_OPENING, 2.0, state(limit_open=True, limit_closed=True), False, None),
    (
        "fault-before-moving",
        Action.SET_OPENING,
        2.6,
        state(power_ok=False, moving_open=True),
        False,
        Interlock.GATE_FAULT,
    ),
    ("moving-before-head", Action.SET_OPENING, 2.6, state(moving_open=True, level_up_m=9.0), False, Interlock.BUSY),
    (
        "limit-before-head",
        Action.SET_OPENING,
        2.6,
        state(limit_open=True, level_up_m=9.0),
        False,
        Interlock.OUT_OF_LIMITS,
    ),
]


@pytest.mark.parametrize(
    ("action", "target", "gate", "busy", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_interlocks(
    action: Action, target: float | None, gate: GateState | None, busy: bool, expected: Interlock | None
) -> None:
    refusal = check(action, target, gate, LIMITS, busy=busy, fault_labels={2: "phase loss"})
    assert (refusal.interlock if refusal else None) is expected
    if refusal is not None:
        assert refusal.reason


@pytest.mark.parametrize("field", ["max_head_open_m", "max_head_close_m"])
def test_head_unlimited_when_not_configured(field: str) -> None:
    limits = replace(LIMITS, **{field: None})  # type: ignore[arg-type]
    target = 6.0 if field == "max_head_open_m" else 0.0
    assert check(Action.SET_OPENING, target, state(level_up_m=9.0), limits, busy=False) is None


# The words of every refusal: the API and the edge give the same ones (the API adds why it has no data).
REASONS = [
    ("busy", 2.6, OK, True, Refusal(Interlock.BUSY, "another command runs on this gate")),
    (
        "out-of-limits",
        6.2,
        OK,
        False,
        Refusal(Interlock.OUT_OF_LIMITS, "target 6.2 m outside the gate's range [0, 6] m", "target_pct"),
    ),
    ("no-data", 2.6, None, False, Refusal(Interlock.NO_DATA, "the gate's state could not be read")),
    (
        "local-mode",
        2.6,
        state(remote=False),
        False,
        Refusal(Interlock.LOCAL_MODE, "selector in local: local operators have priority"),
    ),
    ("estop", 2.6, state(estop=True, fault_code=6), False, Refusal(Interlock.GATE_FAULT, "emergency stop pressed")),
    (
        "fault-code-labelled",
        2.6,
        state(fault_code=2),
        False,
        Refusal(Interlock.GATE_FAULT, "fault_code 2 (phase loss)"),
    ),
    ("fault-code-unlabelled", 2.6, state(fault_code=9), False, Refusal(Interlock.GATE_FAULT, "fault_code 9")),
    ("overload", 2.6, state(overload=True), False, Refusal(Interlock.GATE_FAULT, "motor overload trip")),
    ("power-lost", 2.6, state(power_ok=False), False, Refusal(Interlock.GATE_FAULT, "power lost")),
    ("moving", 2.6, state(moving_open=True), False, Refusal(Interlock.BUSY, "the gate is moving (stop it first)")),
    ("upper-limit", 2.6, state(limit_open=True), False, Refusal(Interlock.OUT_OF_LIMITS, "upper limit switch is on")),
    ("lower-limit", 1.0, state(limit_closed=True), False, Refusal(Interlock.OUT_OF_LIMITS, "lower limit switch is on")),
    (
        "level-unknown",
        2.6,
        state(level_down_m=None),
        False,
        Refusal(Interlock.NO_DATA, "a water level could not be read"),
    ),
    (
        "head-opening",
        2.6,
        state(level_up_m=4.0),
        False,
        Refusal(Interlock.LEVEL_DIFFERENCE, "head 1.50 m above 1 m allowed for opening"),
    ),
    (
        "head-closing",
        0.0,
        state(level_up_m=5.0),
        False,
        Refusal(Interlock.LEVEL_DIFFERENCE, "head 2.50 m above 2 m allowed for closing"),
    ),
]


@pytest.mark.parametrize(("target", "gate", "busy", "expected"), [c[1:] for c in REASONS], ids=[c[0] for c in REASONS])
def test_reasons(target: float, gate: GateState | None, busy: bool, expected: Refusal) -> None:
    assert check(Action.SET_OPENING, target, gate, LIMITS, busy=busy, fault_labels={2: "phase loss"}) == expected


@pytest.mark.parametrize(
    ("action", "pct", "expected"),
    [
        (Action.OPEN, None, 6.0),
        (Action.CLOSE, None, 0.0),
        (Action.SET_OPENING, 40.0, 2.6),
        (Action.SET_OPENING, 0.0, 0.0),
        (Action.SET_OPENING, 100.0, 6.5),
        (Action.STOP, None, None),
    ],
    ids=["open-max-limit", "close-min-limit", "pct-of-full", "zero", "full", "stop"],
)
def test_targets(action: Action, pct: float | None, expected: float | None) -> None:
    assert target_of(action, pct, LIMITS) == expected


@pytest.mark.parametrize(
    ("opening", "target", "expected"), [(2.0, 2.6, 1), (2.6, 2.0, -1), (2.0, 2.02, 0), (2.0, 1.98, 0), (2.0, 2.021, 1)]
)
def test_direction(opening: float, target: float, expected: int) -> None:
    assert direction(opening, target, 0.02) == expected


def test_fault_words_in_priority_order() -> None:
    assert fault_of(OK) is None
    assert fault_of(state(estop=True, fault_code=6)) == "emergency stop pressed"
    assert fault_of(state(fault_code=1, overload=True), {1: "motor overload"}) == "fault_code 1 (motor overload)"
    assert fault_of(state(overload=True)) == "motor overload trip"


VALUES: dict[str, bool | int | float | str | None] = {
    "gate_opening": 2.0,
    "level_up": 3.0,
    "level_down": 2.5,
    "fault_code": 0,
    "remote_mode": True,
    "moving_open": False,
    "moving_close": False,
    "estop": False,
    "power_ok": True,
    "limit_open": False,
    "limit_closed": False,
    "overload": False,
}


@pytest.mark.parametrize(
    ("change", "missing"),
    [
        ({}, []),
        ({"level_up": None, "level_down": "x"}, []),
        ({"estop": None}, ["estop"]),
        ({"gate_opening": None, "power_ok": 1}, ["gate_opening", "power_ok"]),
        ({"fault_code": True}, ["fault_code"]),
        ({"limit_open": "on"}, ["limit_open"]),
    ],
    ids=[
        "all-read",
        "levels-may-be-unknown",
        "flag-unread",
        "number-and-flag-as-number",
        "bool-is-no-number",
        "text-is-no-flag",
    ],
)
def test_missing_points(change: dict[str, bool | int | float | str | None], missing: list[str]) -> None:
    values = {**VALUES, **change}
    assert missing_points(values) == missing
    assert (GateState.from_values(values) is None) is bool(missing)


def test_every_state_point_is_read() -> None:
    assert set(VALUES) == set(STATE_POINTS)
    assert GateState.from_values(VALUES) == OK
    assert missing_points({}) == [p for p in STATE_POINTS if p not in ("level_up", "level_down")]


def test_state_from_values_needs_every_flag() -> None:
    values: dict[str, bool | int | float | str | None] = {
        **{k: v for k, v in OK.as_values().items() if not k.endswith("_m") and k != "remote"},
        "gate_opening": 1.5,
        "level_up": 2.0,
        "level_down": None,
        "remote_mode": True,
    }
    got = GateState.from_values(values)
    assert got is not None
    assert (got.opening_m, got.level_down_m, got.head_m) == (1.5, None, None)
    assert GateState.from_values({**values, "estop": None}) is None
    assert GateState.from_values({**values, "gate_opening": None}) is None


# -- the control section of a site file ---------------------------------------------------------------------------
SITE = """\
site: plant-1
devices:
  - id: gate-1
    profile: sluice_gate_plc
    host: 127.0.0.1
    control: {CONTROL}
  - id: wq-1
    profile: water_quality_station
    host: 127.0.0.1
"""


def test_control_defaults_come_from_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace("{CONTROL}", "{max_head_open_m: 1.2}"), encoding="utf-8")
    site = load_site(path)
    gate = site.config.devices[0]
    assert gate.control is not None
    profile = site.profile_of(gate)
    assert (gate.control.full_m(profile), gate.control.max_m(profile), gate.control.min_opening_m) == (6.5, 6.5, 0.0)
    assert (gate.control.tolerance_m, gate.control.timeout_s, gate.control.enabled) == (0.02, 120.0, True)


@pytest.mark.parametrize(
    ("control", "message"),
    [
        ("{}", "control.max_head_open_m"),
        ("{max_head_open_m: 1, min_opening_m: 3, max_opening_m: 2}", "min_opening_m < max_opening_m"),
        ("{max_head_open_m: 1, max_opening_m: 7}", "max_opening_m <= full_opening_m"),
        ("{max_head_open_m: 1, speed: 3}", "control.speed"),
        ("{max_head_open_m: -1}", "control.max_head_open_m"),
    ],
    ids=["head-required", "min-above-max", "max-above-full", "unknown-key", "negative-head"],
)
def test_bad_control_is_refused_naming_the_field(tmp_path: Path, control: str, message: str) -> None:
    path = tmp_path / "site.yaml"
    path.write_text(SITE.replace("{CONTROL}", control), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_site(path)
    assert message in str(err.value)
    assert "site.yaml:" in str(err.value)


def test_gate_limits_only_for_sluice_gates(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    text = SITE.replace("{CONTROL}", "{max_head_open_m: 1}") + "    control: {max_head_open_m: 1}\n"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"field control\.max_head_open_m: gate limits apply to sluice"):
        load_site(path)


# -- remembered command ids ---------------------------------------------------------------------------------------
def result(cid: str, ts: int, state: ResultState = ResultState.COMPLETED) -> CommandResult:
    return CommandResult(id=cid, site="s", device="g", state=state, ts=ts)


def test_command_log_survives_a_restart_and_ends_interrupted_commands(tmp_path: Path) -> None:
    path = tmp_path / "state" / "commands.jsonl"
    log = CommandLog(path)
    log.put(result("a", 1000), 1000)
    log.put(result("b", 2000, ResultState.ACCEPTED), 2000)
    with path.open("ab") as f:
        f.write(b'{"id": "cut-short')  # a crash in the middle of a line
    again = CommandLog(path)
    assert again.get("a") == result("a", 1000)
    (ended,) = again.interrupted(3000)
    assert (ended.id, ended.state, ended.ts) == ("b", ResultState.FAILED, 3000)
    assert CommandLog(path).get("b") == ended


def test_command_log_is_bounded_by_count_and_age(tmp_path: Path) -> None:
    path = tmp_path / "commands.jsonl"
    log = CommandLog(path, max_ids=3, max_age_ms=10_000)
    for i in range(10):
        log.put(result(f"c{i}", 1000 * i), 1000 * i)
    assert list(log.results) == ["c7", "c8", "c9"]
    assert len(path.read_bytes().splitlines()) <= 2 * 3 + 1  # rewritten when it grows past twice the bound
    log.put(result("late", 30_000), 30_000)
    assert list(log.results) == ["late"]  # the others are older than 10 s
    assert list(CommandLog(path, max_ids=3, max_age_ms=10_000).results)[-1] == "late"
