"""Device profiles: the shipped catalogue loads and uses canonical names; a broken profile is refused with an
error that names the file, the line of the bad value, the point, the field and the reason."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from device_profiles import CATALOGUE, Profile, load_catalogue, load_profile, load_profiles
from infra.config_loader import ConfigError

SHIPPED = {
    "sluice_gate_plc": ("modbus", "sluice_gate"),
    "water_quality_station": ("modbus", "water_quality"),
    "air_quality_station": ("modbus", "air_quality"),
    "flue_gas_cems": ("modbus", "cems"),
    "gas_detector": ("mqtt", "gas_detector"),
    "toxic_gas_detector": ("mqtt", "gas_detector"),
    "oxygen_detector": ("mqtt", "gas_detector"),
    "fire_detector": ("mqtt", "fire_detector"),
    "noise_meter": ("mqtt", "noise"),
    "flue_gas_cems_hj212": ("hj212", "cems"),
    "wastewater_outlet_hj212": ("hj212", "wastewater_outlet"),
    "edge_agent": ("internal", "edge_agent"),
}


@pytest.fixture(scope="module")
def catalogue() -> dict[str, Profile]:
    return load_catalogue()


def test_catalogue_has_the_shipped_profiles(catalogue: dict[str, Profile]) -> None:
    assert {name: (p.protocol, p.kind) for name, p in catalogue.items()} == SHIPPED


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_profile_file_is_named_after_its_profile(name: str) -> None:
    assert load_profile(CATALOGUE / f"{name}.yaml").name == name


# Canonical point names and units (shared standards/README.md "Canonical point names").
CANONICAL: dict[str, dict[str, str]] = {
    "water_quality_station": {
        "ph": "pH",  # the README lists pH as dimensionless; the profile labels the scale "pH"
        "do": "mg/L",
        "codmn": "mg/L",
        "cod": "mg/L",
        "nh3_n": "mg/L",
        "tp": "mg/L",
        "tn": "mg/L",
        "turbidity": "NTU",
        "conductivity": "µS/cm",
        "water_temp": "°C",
    },
    "flue_gas_cems": {
        "so2": "mg/m³",
        "nox": "mg/m³",
        "dust": "mg/m³",
        "o2": "%",
        "flue_flow": "m³/s",
        "flue_temp": "°C",
        "flue_velocity": "m/s",
        "flue_pressure": "kPa",
        "flue_humidity": "%",
    },
    "air_quality_station": {
        "pm25": "µg/m³",
        "pm10": "µg/m³",
        "so2": "µg/m³",
        "no2": "µg/m³",
        "co": "mg/m³",
        "o3": "µg/m³",
    },
    "noise_meter": {"noise_laeq": "dB(A)"},
    "gas_detector": {"lel": "%LEL"},
    "toxic_gas_detector": {"conc": "mg/m³"},
    "oxygen_detector": {"o2": "%VOL"},
    "sluice_gate_plc": {"level_up": "m", "level_down": "m", "gate_opening": "m"},
}


@pytest.mark.parametrize(("name", "expected"), list(CANONICAL.items()), ids=list(CANONICAL))
def test_profile_uses_canonical_names_and_units(
    catalogue: dict[str, Profile], name: str, expected: dict[str, str]
) -> None:
    units = catalogue[name].units
    assert {point: units.get(point) for point in expected} == expected


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_point_names_are_unique_and_ranged_points_have_units(catalogue: dict[str, Profile], name: str) -> None:
    profile = catalogue[name]
    names = profile.point_names()
    assert len(names) == len(set(names))
    points = (
        profile.modbus.points
        if profile.modbus
        else profile.mqtt.points
        if profile.mqtt
        else profile.hj212.points
        if profile.hj212
        else []
    )
    assert [p.name for p in points if p.range is not None and not p.unit] == []


# Broken profiles ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broken:
    source: str  # shipped profile the broken copy starts from
    old: str  # text replaced (must occur in the file)
    new: str
    bad_line: str  # text on the line the error must name (unique in the broken copy)
    field: str  # field path the error must name (the point's name is in it where there is one)
    reason: str  # part of the reason


BROKEN = [
    pytest.param(
        Broken(
            "sluice_gate_plc",
            "address: 3, type: uint16",
            "address: 3, type: uint24",
            "type: uint24",
            "modbus.points[3] (motor_current).type",
            "Input should be 'bool', 'bit'",
        ),
        id="unknown-data-type",
    ),
    pytest.param(
        Broken(
            "sluice_gate_plc",
            "{name: cmd_open, function: coil, address: 0, type: bool",
            "{name: cmd_open, function: coil, address: 0, type: int16",
            "name: cmd_open",
            "modbus.points[15] (cmd_open).type",
            "type must be 'bool', not 'int16'",
        ),
        id="coil-with-type-int16",
    ),
    pytest.param(
        Broken(
            "sluice_gate_plc",
            "type: bit, bit: 1}",
            "type: bit}",
            "name: moving_open",
            "modbus.points[6] (moving_open).type",
            "'bit' is required for type 'bit'",
        ),
        id="bit-without-bit-number",
    ),
    pytest.param(
        Broken(
            "sluice_gate_plc",
            "address: 3, type: uint16",
            "address: 3, type: uint16, bit: 0",
            "type: uint16, bit: 0",
            "modbus.points[3] (motor_current).bit",
            "allowed only there",
        ),
        id="bit-number-0-on-a-uint16",
    ),
    pytest.param(
        Broken(
            "air_quality_station",
            "type: string, length: 4,",
            "type: string,",
            "name: station_code",
            "modbus.points[12] (station_code).type",
            "'length' (in registers) is required for type 'string'",
        ),
        id="string-without-length",
    ),
    pytest.param(
        Broken(
            "water_quality_station",
            "unit: NTU,",
            "unit: NTU, writable: true,",
            "writable: true",
            "modbus.points[7] (turbidity).writable",
            "input_register cannot be written",
        ),
        id="writable-input-register",
    ),
    pytest.param(
        Broken(
            "sluice_gate_plc",
            "address: 3, type: uint16",
            "address: 2, type: uint16",
            "name: motor_current",
            "modbus.points[3] (motor_current).address",
            "points 'level_down' and 'motor_current' both use holding_register 2",
        ),
        id="overlapping-addresses",
    ),
    pytest.param(
        Broken(
            "flue_gas_cems",
            "address: 20, type: int64",
            "address: 17, type: int64",
            "name: flow_total",
            "modbus.points[9] (flow_total).address",
            "points 'flue_velocity' and 'flow_total' both use holding_register 17",
        ),
        id="int64-overlaps-the-float-before-it",
    ),
    pytest.param(
        Broken(
            "sluice_gate_plc",
            "name: moving_close",
            "name: moving_open",
            "bit: 2}",
            "modbus.points[7] (moving_open).name",
            "point name 'moving_open' is used twice",
        ),
        id="duplicate-point-name",
    ),
    pytest.param(
        Broken(
            "water_quality_station",
            "range: [0, 14]",
            "range: [14, 0]",
            "range: [14, 0]",
            "modbus.points[0] (ph).range",
            "range [14.0, 0.0] must have min < max",
        ),
        id="range-min-above-max",
    ),
    pytest.param(
        Broken(
            "water_quality_station",
            "range: [0, 14]",
            "range: [7, 7]",
            "range: [7, 7]",
            "modbus.points[0] (ph).range",
            "must have min < max",
        ),
        id="range-min-equals-max",
    ),
    pytest.param(
        Broken(
            "sluice_gate_plc",
            "scale: 0.1, unit: A",
            "scale: 0, unit: A",
            "scale: 0,",
            "modbus.points[3] (motor_current).scale",
            "scale must not be 0",
        ),
        id="scale-zero",
    ),
    pytest.param(
        Broken(
            "flue_gas_cems",
            "max_registers_per_request: 64",
            "max_registers_per_request: 200",
            "max_registers_per_request: 200",
            "modbus.max_registers_per_request",
            "less than or equal to 125",
        ),
        id="max-registers-per-request-200",
    ),
    pytest.param(
        Broken(
            "gas_detector",
            'topic: "vendor/gasdet/{device}/up"',
            'topic: "vendor/gasdet/up"',
            'topic: "vendor/gasdet/up"',
            "mqtt.topic",
            "must contain {device}",
        ),
        id="mqtt-topic-without-device",
    ),
    pytest.param(
        Broken(
            "noise_meter",
            'path: "v.laeq",',
            'path: "v.laeq", topic: "vendor/+/{device}",',
            'topic: "vendor/+',
            "mqtt.points[0] (noise_laeq).topic",
            "must not contain MQTT wildcards",
        ),
        id="point-topic-with-wildcard",
    ),
    pytest.param(
        Broken(
            "gas_detector",
            "mqtt:\n",
            "modbus:\n  points:\n    - {name: x, function: coil, address: 0, type: bool}\nmqtt:\n",
            "modbus:",
            "modbus",
            "protocol 'mqtt' needs an 'mqtt' section and no 'modbus' section",
        ),
        id="both-modbus-and-mqtt-sections",
    ),
    pytest.param(
        Broken(
            "sluice_gate_plc",
            "protocol: modbus",
            "protocol: mqtt",
            "protocol: mqtt",
            "protocol",
            "protocol 'mqtt' needs an 'mqtt' section",
        ),
        id="protocol-without-its-section",
    ),
    pytest.param(
        Broken(
            "water_quality_station",
            "unit: NTU,",
            "unit: NTU, colour: brown,",
            "colour: brown",
            "modbus.points[7] (turbidity).colour",
            "Extra inputs are not permitted",
        ),
        id="unknown-key-in-a-point",
    ),
    pytest.param(
        Broken(
            "noise_meter",
            "stale_after_s: 120",
            "stale_after_s: 120\n  stale_after: 60",
            "stale_after: 60",
            "mqtt.stale_after",
            "Extra inputs are not permitted",
        ),
        id="unknown-key-in-a-section",
    ),
    pytest.param(
        Broken(
            "air_quality_station",
            "poll_interval_s: 1",
            "poll_interval: 1",
            "poll_interval: 1",
            "poll_interval",
            "Extra inputs are not permitted",
        ),
        id="unknown-top-level-key",
    ),
]


def write_broken(tmp_path: Path, case: Broken) -> tuple[Path, int]:
    """A copy of a shipped profile with one change, and the 1-based line the error must name."""
    text = (CATALOGUE / f"{case.source}.yaml").read_text(encoding="utf-8")
    assert text.count(case.old) == 1, f"{case.old!r} must occur once in {case.source}.yaml"
    broken = text.replace(case.old, case.new)
    lines = [n for n, line in enumerate(broken.splitlines(), 1) if case.bad_line in line]
    assert len(lines) == 1, f"{case.bad_line!r} must occur on one line of the broken copy"
    path = tmp_path / f"{case.source}.yaml"
    path.write_text(broken, encoding="utf-8")
    return path, lines[0]


@pytest.mark.parametrize("case", BROKEN)
def test_broken_profile_error_names_file_line_field_and_reason(tmp_path: Path, case: Broken) -> None:
    path, line = write_broken(tmp_path, case)
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}:{line}: profile '{case.source}', field {case.field}: ")
    assert case.reason in err.value.problems[0]


@pytest.mark.parametrize("case", BROKEN)
def test_load_profiles_reports_the_same_problem(tmp_path: Path, case: Broken) -> None:
    path, line = write_broken(tmp_path, case)
    with pytest.raises(ConfigError, match=f"{path}:{line}: ") as err:
        load_profiles([tmp_path])
    assert case.reason in str(err.value)


@pytest.mark.parametrize(
    ("old", "new", "bad_line"),
    [
        pytest.param("range: [0, 14]}", "range: [0, 14}", "name: ph", id="unclosed-flow-sequence"),
        pytest.param(
            "measurement: water_quality",
            "measurement: water_quality\n  bad: indent",
            "bad: indent",
            id="bad-indentation",
        ),
        pytest.param(
            "unit: mg/L, range: [0, 20],", "unit: mg/L, range: [0, 20],, x: 1", "range: [0, 20],,", id="stray-comma"
        ),
    ],
)
def test_yaml_syntax_error_names_file_and_line(tmp_path: Path, old: str, new: str, bad_line: str) -> None:
    path, line = write_broken(tmp_path, Broken("water_quality_station", old, new, bad_line, "", ""))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert len(err.value.problems) == 1
    assert err.value.problems[0].startswith(f"{path}:{line}: not valid YAML: ")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("- just\n- a list\n", ":1: profile must be a mapping of keys to values", id="not-a-mapping"),
        pytest.param("", ":1: profile must be a mapping of keys to values", id="empty-file"),
    ],
)
def test_profile_that_is_not_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_profile(path)


def test_missing_profile_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{tmp_path / 'nope.yaml'}: cannot read"):
        load_profile(tmp_path / "nope.yaml")


def test_profile_name_used_twice_across_files(tmp_path: Path) -> None:
    text = (CATALOGUE / "noise_meter.yaml").read_text(encoding="utf-8")
    first, second = tmp_path / "a" / "noise.yaml", tmp_path / "b" / "noise_copy.yaml"
    for path in (first, second):
        path.parent.mkdir()
        path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profiles([tmp_path])
    assert err.value.problems == [f"{second}: profile name 'noise_meter' is already used by {first}"]


def test_load_profiles_collects_problems_of_every_file(tmp_path: Path) -> None:
    for source, old, new in [
        ("noise_meter", "unit: dB(A), range: [20, 130]", "unit: dB(A), range: [130, 20]"),
        ("gas_detector", "stale_after_s: 120", "stale_after_s: 0"),
    ]:
        text = (CATALOGUE / f"{source}.yaml").read_text(encoding="utf-8")
        (tmp_path / f"{source}.yaml").write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_profiles([tmp_path])
    assert [p.split(":")[0] for p in err.value.problems] == [
        str(tmp_path / "gas_detector.yaml"),
        str(tmp_path / "noise_meter.yaml"),
    ]


def test_load_profiles_without_any_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no profile files"):
        load_profiles([tmp_path])


def test_extra_profiles_load_next_to_the_catalogue(tmp_path: Path) -> None:
    text = (CATALOGUE / "noise_meter.yaml").read_text(encoding="utf-8")
    (tmp_path / "site_noise.yml").write_text(text.replace("name: noise_meter", "name: site_noise"), encoding="utf-8")
    profiles = load_profiles([CATALOGUE, tmp_path])
    assert set(profiles) == {*SHIPPED, "site_noise"}
    assert profiles["site_noise"].units == {"noise_laeq": "dB(A)", "noise_lmax": "dB(A)"}


# HJ 212 profiles ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hj212", "modbus"),
    [("flue_gas_cems_hj212", "flue_gas_cems"), ("wastewater_outlet_hj212", "water_quality_station")],
)
def test_hj212_profiles_use_the_point_names_and_units_of_their_modbus_kin(
    catalogue: dict[str, Profile], hj212: str, modbus: str
) -> None:
    spec = catalogue[hj212].hj212
    assert spec is not None
    kin = catalogue[modbus].units
    shared = {p.name for p in spec.points} & set(kin)
    assert shared, "the profiles share point names"
    assert {n: catalogue[hj212].units[n] for n in shared} == {n: kin[n] for n in shared}


# Codes as in shared standards/README.md "Canonical point names" (HJ 212-2017 code [HJ/T 212-2005 code]).
HJ212_CODES = {
    "flue_gas_cems_hj212": {
        "so2": ("a21026", "02"),
        "nox": ("a21002", "03"),
        "dust": ("a34013", "01"),
        "o2": ("a19001", "S01"),
        "flue_flow": ("a00000", "B02"),
        "flue_temp": ("a01012", "S03"),
        "flue_velocity": ("a01011", "S02"),
        "flue_pressure": ("a01013", "S08"),
        "flue_humidity": ("a01014", "S05"),
    },
    "wastewater_outlet_hj212": {
        "cod": ("w01018", "011"),
        "nh3_n": ("w21003", "060"),
        "tp": ("w21011", "101"),
        "tn": ("w21001", "065"),
        "ph": ("w01001", "001"),
        "flow": ("w00000", "B01"),
    },
}


@pytest.mark.parametrize(("name", "codes"), list(HJ212_CODES.items()), ids=list(HJ212_CODES))
def test_hj212_codes_are_the_canonical_ones(
    catalogue: dict[str, Profile], name: str, codes: dict[str, tuple[str, str]]
) -> None:
    spec = catalogue[name].hj212
    assert spec is not None
    assert {p.name: (p.code, p.legacy_code) for p in spec.points} == codes


def test_hj212_derived_point_names() -> None:
    profile = load_catalogue()["flue_gas_cems_hj212"]
    names = set(profile.point_names())
    assert {"so2", "so2_zs", "so2_hour_avg", "so2_zs_day_max", "so2_minute_total", "flue_flow_day_total"} <= names
    assert "o2_zs" not in names  # O2 declares no converted values
    assert "o2_hour_total" not in names
    assert profile.units["flue_flow_hour_total"] == "m³"
    assert profile.units["so2_day_total"] == "kg"


@pytest.mark.parametrize(
    ("replace", "by", "message"),
    [
        pytest.param("legacy_code: B01", 'legacy_code: "011"', "code '011' is mapped twice", id="code-twice"),
        pytest.param(
            "protocol: hj212",
            "protocol: mqtt",
            "protocol 'mqtt' needs an 'mqtt' section and no 'hj212'",
            id="hj212-section-with-mqtt",
        ),
        pytest.param("code: w01018", "code: w01-018", "should match pattern", id="bad-code"),
    ],
)
def test_broken_hj212_profile(tmp_path: Path, replace: str, by: str, message: str) -> None:
    text = (CATALOGUE / "wastewater_outlet_hj212.yaml").read_text(encoding="utf-8")
    assert replace in text
    path = tmp_path / "ww.yaml"
    path.write_text(text.replace(replace, by), encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_profile(path)
