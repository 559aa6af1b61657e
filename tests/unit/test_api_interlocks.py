"""The API's gate interlocks as a table: one row a case, from the gate's latest telemetry."""

from __future__ import annotations

import pytest

from api.config import GateLimits
from api.interlocks import check, movement
from api.live import DeviceState
from telemetry import PointQuality, Quality
from telemetry.commands import Action, Interlock

NOW = 1_795_600_800_000
LIMITS = GateLimits(min_pct=0, max_pct=80, full_opening_m=6.0, max_head_open_m=2.0, max_head_close_m=None)
GOOD = {"gate_opening": 1.5, "level_up": 3.0, "level_down": 2.0, "remote_mode": True, "fault_code": 0.0,
        "estop": False, "overload": False}  # fmt: skip


def gate(age_ms: int = 1000, online: bool | None = True, **values: object) -> DeviceState:
    state = DeviceState("s", "g", "sluice_gate_plc", "sluice_gate", online=online, last_seen_ms=NOW - age_ms)
    state.values = {**GOOD, **values}  # type: ignore[dict-item]
    return state


@pytest.mark.parametrize(
    ("action", "target", "state", "expected"),
    [
        pytest.param(Action.OPEN, None, gate(), None, id="open-all-good"),
        pytest.param(Action.SET_OPENING, 50.0, gate(), None, id="set-within-limits"),
        pytest.param(Action.SET_OPENING, 80.0, gate(), None, id="set-at-max-limit"),
        pytest.param(Action.SET_OPENING, 81.0, gate(), Interlock.OUT_OF_LIMITS, id="set-above-max-limit"),
        pytest.param(Action.SET_OPENING, -1.0, gate(), Interlock.OUT_OF_LIMITS, id="set-below-zero"),
        pytest.param(Action.SET_OPENING, None, gate(), Interlock.OUT_OF_LIMITS, id="set-without-target"),
        pytest.param(Action.OPEN, 10.0, gate(), Interlock.OUT_OF_LIMITS, id="open-with-target"),
        pytest.param(Action.OPEN, None, None, Interlock.NO_DATA, id="never-seen"),
        pytest.param(Action.OPEN, None, gate(age_ms=31_000), Interlock.NO_DATA, id="stale-telemetry"),
        pytest.param(Action.OPEN, None, gate(online=False), Interlock.NO_DATA, id="offline"),
        pytest.param(Action.OPEN, None, gate(remote_mode=False), Interlock.LOCAL_MODE, id="local-mode"),
        pytest.param(Action.OPEN, None, gate(fault_code=3.0), Interlock.GATE_FAULT, id="fault-code"),
        pytest.param(Action.OPEN, None, gate(estop=True), Interlock.GATE_FAULT, id="estop"),
        pytest.param(Action.OPEN, None, gate(overload=True), Interlock.GATE_FAULT, id="overload"),
        pytest.param(Action.OPEN, None, gate(level_up=4.5), Interlock.LEVEL_DIFFERENCE, id="head-too-high-open"),
        pytest.param(Action.CLOSE, None, gate(level_up=4.5), None, id="head-no-limit-for-close"),
        pytest.param(Action.SET_OPENING, 10.0, gate(level_up=4.5), None, id="set-lower-is-closing"),
        pytest.param(Action.SET_OPENING, 50.0, gate(level_up=4.5), Interlock.LEVEL_DIFFERENCE, id="set-higher-opens"),
        pytest.param(Action.OPEN, None, gate(level_up=None), Interlock.NO_DATA, id="level-unknown"),
        pytest.param(Action.STOP, None, gate(remote_mode=False, estop=True), None, id="stop-passes-everything"),
        pytest.param(Action.STOP, None, None, None, id="stop-without-data"),
    ],
)  # fmt: skip
def test_interlocks(
    action: Action, target: float | None, state: DeviceState | None, expected: Interlock | None
) -> None:
    refusal = check(action, target, state, LIMITS, NOW, 30_000)
    assert (refusal.interlock if refusal else None) == expected, refusal


def test_bad_quality_value_is_no_data() -> None:
    state = gate()
    state.values["gate_opening"] = None
    state.quality["gate_opening"] = PointQuality(q=Quality.BAD, reason="modbus timeout")
    refusal = check(Action.OPEN, None, state, LIMITS, NOW, 30_000)
    assert refusal is not None
    assert refusal.interlock is Interlock.NO_DATA


@pytest.mark.parametrize(
    ("action", "target", "opening", "expected"),
    [(Action.OPEN, None, 1.0, "open"), (Action.CLOSE, None, 1.0, "close"), (Action.SET_OPENING, 50.0, 3.0, None),
     (Action.SET_OPENING, 60.0, 3.0, "open"), (Action.SET_OPENING, 40.0, 3.0, "close"), (Action.STOP, None, 1.0, None)],
)  # fmt: skip
def test_movement(action: Action, target: float | None, opening: float, expected: str | None) -> None:
    assert movement(action, target, opening, LIMITS) == expected
