"""Set points: what may be written to a point (device_profiles.setpoints, the API's and the edge's check), the
profile's write fields, and the edge's ``control.points`` (edge_agent.config). One row a case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from device_profiles import ModbusPoint
from device_profiles.setpoints import WritablePoint
from edge_agent.config import load_site
from infra.config_loader import ConfigError


def point(**fields: Any) -> ModbusPoint:
    base: dict[str, Any] = {"name": "sp", "function": "holding_register", "address": 16, "type": "uint16"}
    return ModbusPoint.model_validate({**base, "writable": True, **fields})


THRESHOLD = point(range=[5, 60], step=1)
SCALED = point(scale=0.1, range=[0, 100])
FLOAT = point(type="float32", range=[0, 60], step=0.01)
COIL = point(function="coil", address=3, type="bool")
TEXT = point(type="string", length=4)

REFUSALS: list[tuple[str, WritablePoint, float | bool, str | None]] = [
    ("within-range", WritablePoint.of(THRESHOLD), 25, None),
    ("range-edges", WritablePoint.of(THRESHOLD), 60, None),
    ("above-range", WritablePoint.of(THRESHOLD), 61, "above the highest value 60"),
    ("below-range", WritablePoint.of(THRESHOLD), 4, "below the lowest value 5"),
    ("off-step", WritablePoint.of(THRESHOLD), 25.5, "not a multiple of the step 1 from 5"),
    ("float-step-decimal-input", WritablePoint.of(FLOAT), 37.37, None),
    ("float-off-step", WritablePoint.of(FLOAT), 37.375, "not a multiple of the step 0.01"),
    ("device-narrows-range", WritablePoint.of(FLOAT, high=50), 55, "above the highest value 50"),
    ("device-cannot-widen-range", WritablePoint.of(THRESHOLD, low=0), 3, "below the lowest value 5"),
    ("boolean-for-number", WritablePoint.of(THRESHOLD), True, "takes a number"),
    ("coil-takes-boolean", WritablePoint.of(COIL), True, None),
    ("coil-refuses-number", WritablePoint.of(COIL), 1, "takes true or false"),
    ("text-not-by-command", WritablePoint.of(TEXT), 1, "is text"),
    ("no-range-no-bounds", WritablePoint.of(point()), 65535, None),
]


@pytest.mark.parametrize(("wp", "value", "words"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_what_may_be_written(wp: WritablePoint, value: float | bool, words: str | None) -> None:
    why = wp.refusal(value)
    if words is None:
        assert why is None
    else:
        assert why is not None
        assert words in why


READBACKS: list[tuple[str, WritablePoint, float | bool, object, bool]] = [
    ("exact", WritablePoint.of(THRESHOLD), 25, 25, True),
    ("half-a-step-off", WritablePoint.of(THRESHOLD), 25, 25.5, True),
    ("a-step-off", WritablePoint.of(THRESHOLD), 25, 26, False),
    ("scaled-register-rounds", WritablePoint.of(SCALED), 12.34, 12.3, True),
    ("float32-noise", WritablePoint.of(point(type="float32")), 49.9, 49.900001525878906, True),
    ("configured-tolerance", WritablePoint.of(THRESHOLD, tolerance=2), 25, 27, True),
    ("nothing-read", WritablePoint.of(THRESHOLD), 25, None, False),
    ("coil-on", WritablePoint.of(COIL), True, True, True),
    ("coil-off-read", WritablePoint.of(COIL), True, False, False),
]


@pytest.mark.parametrize(
    ("wp", "written", "read", "matches"), [r[1:] for r in READBACKS], ids=[r[0] for r in READBACKS]
)
def test_read_back_within_the_tolerance(wp: WritablePoint, written: float | bool, read: object, matches: bool) -> None:
    assert wp.matches(written, read) is matches


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"write_function": 16, "writable": False}, "for writable points only"),
        ({"write_function": 5}, "written with function 6 or 16, not 5"),
        ({"type": "float32", "write_function": 6}, "function 6 writes one register; this point has 2"),
        ({"function": "coil", "type": "bool", "write_function": 16}, "written with function 5 or 15"),
        ({"step": 0}, "greater than 0"),
    ],
    ids=["not-writable", "coil-function-on-register", "fc06-for-two-registers", "register-function-on-coil", "step"],
)
def test_profile_write_fields_are_checked(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as err:
        point(**fields)
    assert words in str(err.value)


SITE = """\
site: plant-1
devices:
  - id: gas-1
    profile: {PROFILE}
    host: 127.0.0.1
    control: {CONTROL}
"""
PROFILE = """\
name: gas_controller_test
kind: gas_controller
protocol: modbus
measurement: gas_safety
modbus:
  points:
    - {name: ch1_lel, function: holding_register, address: 0, type: uint16, scale: 0.1, range: [0, 100]}
    - {name: alarm_l1, function: holding_register, address: 16, type: uint16, range: [5, 60], step: 1, writable: true}
"""


def _site(tmp_path: Path, control: str) -> Path:
    (tmp_path / "profiles").mkdir(exist_ok=True)
    (tmp_path / "profiles" / "gas.yaml").write_text(PROFILE, encoding="utf-8")
    path = tmp_path / "site.yaml"
    text = "profile_paths: [profiles]\n" + SITE.replace("{PROFILE}", "gas_controller_test").replace(
        "{CONTROL}", control
    )
    path.write_text(text, encoding="utf-8")
    return path


def test_any_modbus_device_may_open_writable_points_without_gate_limits(tmp_path: Path) -> None:
    site = load_site(_site(tmp_path, "{points: {alarm_l1: {max: 40}}}"))
    control = site.config.devices[0].control
    assert control is not None
    assert control.points["alarm_l1"].max == 40


@pytest.mark.parametrize(
    ("control", "words"),
    [
        ("{points: {ch1_lel: {}}}", "control.points.ch1_lel: profile 'gas_controller_test' does not mark"),
        ("{points: {alarm_l9: {}}}", "control.points.alarm_l9: profile 'gas_controller_test' has no point"),
        ("{points: {alarm_l1: {max: 70}}}", "must lie within the profile's range [5, 60]"),
        ("{points: {alarm_l1: {min: 30, max: 20}}}", "min 30 must not be above max 20"),
        ("{}", "control.points: name the writable points"),
        ("{max_head_open_m: 1, points: {alarm_l1: {}}}", "control.max_head_open_m: gate limits apply to sluice gates"),
    ],
    ids=["read-only-point", "unknown-point", "beyond-profile-range", "min-above-max", "no-points", "gate-limit"],
)
def test_bad_control_points_are_refused_naming_the_field(tmp_path: Path, control: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_site(_site(tmp_path, control))
    assert words in str(err.value)
