"""The API's side of the gate interlocks as a table, one row a case: the request's shape, the telemetry's age, then
the shared checks (``telemetry.interlocks``, the edge's too) on the gate's latest telemetry."""

from __future__ import annotations

import pytest

from api._gate_checks import Refusal, check, fault_labels, gate_snapshot, limits_of
from api.live import DeviceState
from device_profiles import load_catalogue
from telemetry import PointQuality, Quality, Value
from telemetry.commands import Action, Interlock
from telemetry.interlocks import STATE_POINTS, GateLimits, Limits

NOW = 1_795_600_800_000
LIMITS = GateLimits(full_opening_m=6.0, max_opening_m=4.8, max_head_open_m=2.0, max_head_close_m=None)  # 80 %
GOOD: dict[str, Value] = {
    "gate_opening": 1.5,
    "level_up": 3.0,
    "level_down": 2.0,
    "remote_mode": True,
    "fault_code": 0.0,
    "estop": False,
    "overload": False,
    "power_ok": True,
    "moving_open": False,
    "moving_close": False,
    "limit_open": False,
    "limit_closed": False,
}


def gate(age_ms: int = 1000, online: bool | None = True, **values: Value) -> DeviceState:
    state = DeviceState("s", "g", "sluice_gate_plc", "sluice_gate", online=online, last_seen_ms=NOW - age_ms)
    state.values = {**GOOD, **values}
    return state


def without(point: str) -> DeviceState:
    state = gate()
    del state.values[point]
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
        pytest.param(Action.SET_OPENING, 81.0, None, Interlock.OUT_OF_LIMITS, id="limits-before-no-data"),
        pytest.param(Action.OPEN, None, None, Interlock.NO_DATA, id="never-seen"),
        pytest.param(Action.OPEN, None, gate(age_ms=31_000), Interlock.NO_DATA, id="stale-telemetry"),
        pytest.param(Action.OPEN, None, gate(age_ms=30_000), None, id="telemetry-at-max-age"),
        pytest.param(Action.OPEN, None, gate(online=False), Interlock.NO_DATA, id="offline"),
        pytest.param(Action.OPEN, None, gate(online=None), None, id="no-status-yet"),
        pytest.param(Action.OPEN, None, without("power_ok"), Interlock.NO_DATA, id="point-missing"),
        pytest.param(Action.OPEN, None, gate(remote_mode=1), Interlock.NO_DATA, id="flag-as-number-is-no-flag"),
        pytest.param(Action.OPEN, None, gate(remote_mode=False), Interlock.LOCAL_MODE, id="local-mode"),
        pytest.param(Action.OPEN, None, gate(fault_code=3.0), Interlock.GATE_FAULT, id="fault-code"),
        pytest.param(Action.OPEN, None, gate(estop=True), Interlock.GATE_FAULT, id="estop"),
        pytest.param(Action.OPEN, None, gate(overload=True), Interlock.GATE_FAULT, id="overload"),
        pytest.param(Action.OPEN, None, gate(power_ok=False), Interlock.GATE_FAULT, id="power-lost"),
        pytest.param(Action.CLOSE, None, gate(moving_close=True), Interlock.BUSY, id="moving-locally"),
        pytest.param(Action.OPEN, None, gate(limit_open=True), Interlock.OUT_OF_LIMITS, id="upper-limit-switch"),
        pytest.param(Action.CLOSE, None, gate(limit_closed=True), Interlock.OUT_OF_LIMITS, id="lower-limit-switch"),
        pytest.param(Action.CLOSE, None, gate(limit_open=True), None, id="upper-limit-switch-closing"),
        pytest.param(Action.OPEN, None, gate(level_up=4.5), Interlock.LEVEL_DIFFERENCE, id="head-too-high-open"),
        pytest.param(Action.CLOSE, None, gate(level_up=4.5), None, id="head-no-limit-for-close"),
        pytest.param(Action.SET_OPENING, 10.0, gate(level_up=4.5), None, id="set-lower-is-closing"),
        pytest.param(Action.SET_OPENING, 50.0, gate(level_up=4.5), Interlock.LEVEL_DIFFERENCE, id="set-higher-opens"),
        pytest.param(Action.SET_OPENING, 25.0, gate(level_up=4.5), None, id="set-at-opening-no-movement"),
        pytest.param(Action.OPEN, None, gate(level_up=None), Interlock.NO_DATA, id="level-unknown"),
        pytest.param(Action.STOP, None, gate(remote_mode=False, estop=True), None, id="stop-passes-everything"),
        pytest.param(Action.STOP, None, None, None, id="stop-without-data"),
    ],
)
def test_interlocks(
    action: Action, target: float | None, state: DeviceState | None, expected: Interlock | None
) -> None:
    refusal = check(action, target, state, LIMITS, NOW, 30_000)
    assert (refusal.interlock if refusal else None) == expected, refusal


@pytest.mark.parametrize(
    ("action", "target", "state", "expected"),
    [
        pytest.param(
            Action.SET_OPENING,
            None,
            gate(),
            Refusal(Interlock.OUT_OF_LIMITS, "set_opening needs target_pct", 422, "target_pct"),
            id="set-without-target",
        ),
        pytest.param(
            Action.CLOSE,
            5.0,
            gate(),
            Refusal(Interlock.OUT_OF_LIMITS, "close takes no target_pct", 422, "target_pct"),
            id="close-with-target",
        ),
        pytest.param(
            Action.SET_OPENING,
            90.0,
            gate(),
            Refusal(Interlock.OUT_OF_LIMITS, "target 5.4 m outside the gate's range [0, 4.8] m", 409, "target_pct"),
            id="out-of-limits-names-the-field",
        ),
        pytest.param(
            Action.OPEN,
            None,
            None,
            Refusal(
                Interlock.NO_DATA, "the gate's state could not be read: no telemetry of this gate has been received"
            ),
            id="never-seen",
        ),
        pytest.param(
            Action.OPEN,
            None,
            gate(age_ms=31_000),
            Refusal(Interlock.NO_DATA, "the gate's state could not be read: the gate's last telemetry is 31 s old"),
            id="stale",
        ),
        pytest.param(
            Action.OPEN,
            None,
            without("limit_open"),
            Refusal(Interlock.NO_DATA, "the gate's state could not be read: point(s) limit_open not known"),
            id="point-missing",
        ),
        pytest.param(
            Action.OPEN,
            None,
            gate(fault_code=2.0),
            Refusal(Interlock.GATE_FAULT, "fault_code 2 (phase loss)"),
            id="fault-words-of-the-profile",
        ),
        pytest.param(
            Action.OPEN,
            None,
            gate(moving_open=True),
            Refusal(Interlock.BUSY, "the gate is moving (stop it first)"),
            id="moving-as-at-the-edge",
        ),
    ],
)
def test_reasons(action: Action, target: float | None, state: DeviceState | None, expected: Refusal) -> None:
    labels = fault_labels(load_catalogue()["sluice_gate_plc"])
    assert check(action, target, state, LIMITS, NOW, 30_000, labels) == expected


def test_bad_quality_value_is_no_data() -> None:
    state = gate()
    state.quality["gate_opening"] = PointQuality(q=Quality.BAD, reason="modbus timeout")
    refusal = check(Action.OPEN, None, state, LIMITS, NOW, 30_000)
    assert refusal == Refusal(Interlock.NO_DATA, "the gate's state could not be read: point(s) gate_opening not known")
    state.quality["gate_opening"] = PointQuality(q=Quality.UNCERTAIN, reason="out of range")
    assert check(Action.OPEN, None, state, LIMITS, NOW, 30_000) is None


def test_limits_are_the_edge_model_resolved_as_the_edge_resolves_them() -> None:
    limits = GateLimits(
        min_opening_m=0.6,
        max_opening_m=4.8,
        full_opening_m=6.0,
        tolerance_m=0.05,
        max_head_open_m=None,
        max_head_close_m=1.5,
    )
    assert limits_of(limits) == Limits(6.0, 0.6, 4.8, 0.05, None, 1.5)
    # no full opening given: the top of the profile's gate_opening range (sluice_gate_plc: 6.5 m), as at the edge
    profile = dict(load_catalogue())["sluice_gate_plc"]
    assert limits_of(GateLimits(max_head_open_m=2.5), profile) == Limits(6.5, 0.0, 6.5, 0.02, 2.5, None)


def test_a_gate_the_api_has_no_limits_for_is_refused() -> None:
    refusal = check(Action.OPEN, None, gate(), None, NOW, 30_000)
    assert refusal is not None
    assert refusal.interlock is Interlock.UNKNOWN_DEVICE
    assert check(Action.STOP, None, gate(), None, NOW, 30_000) is None  # stop is never refused


def test_snapshot_holds_every_state_point_and_the_time() -> None:
    out = gate_snapshot(gate(motor_current=3.5))
    assert set(out) == {*STATE_POINTS, "ts"}
    assert out["ts"] == NOW - 1000
    assert gate_snapshot(None) == {}
