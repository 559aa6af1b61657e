"""The bridge trusts no payload it did not expect: topic, profile, device, and each value's declared type."""

from __future__ import annotations

import pytest

from broker_bridge.validate import Declared, Invalid, Origin, Registry, ValueKind, check, declared_types
from device_profiles import Profile, load_catalogue
from telemetry import PointQuality, Quality, Sample, Telemetry, Value, encode, topics
from telemetry.wire import WireTelemetry

NOW = 1_760_000_000_000
DAY = 86_400_000

# an MQTT profile with a text point (the catalogue has none)
_TEXT = Profile.model_validate(
    {
        "name": "text_sensor",
        "kind": "sensor",
        "protocol": "mqtt",
        "measurement": "texts",
        "mqtt": {
            "topic": "vendor/{device}",
            "points": [
                {"name": "label", "path": "label", "type": "string"},
                {"name": "count", "path": "count", "type": "integer"},
            ],
        },
    }
)
REGISTRY = Registry({**load_catalogue(), "text_sensor": _TEXT})


def message(
    profile: str, values: dict[str, Value], *, device: str = "d1", site: str = "s1", seq: int = 7, run: str = "r1"
) -> Telemetry:
    quality = {k: PointQuality(q=Quality.BAD, reason="no answer") for k, v in values.items() if v is None}
    return Telemetry(
        site=site,
        device=device,
        profile=profile,
        measurement=REGISTRY.profiles[profile].measurement,
        seq=seq,
        run=run,
        samples=[Sample(ts=NOW - 1000, values=values, quality=quality)],
    )


def run_check(msg: Telemetry, topic: str | None = None, registry: Registry = REGISTRY) -> Telemetry | WireTelemetry:
    return check(topic or topics.telemetry(msg.site, msg.device), encode(msg), registry, NOW, 300_000, 30 * DAY)


@pytest.mark.parametrize(
    ("profile", "point", "value"),
    [
        pytest.param("water_quality_station", "ph", 7.1, id="float-for-float32"),
        pytest.param("water_quality_station", "ph", 7, id="int-for-float32"),
        pytest.param("water_quality_station", "ph", None, id="null-for-a-bad-point"),
        pytest.param("sluice_gate_plc", "fault_code", 3, id="int-for-uint16"),
        pytest.param("sluice_gate_plc", "gate_opening", 1.25, id="float-for-scaled-uint16"),
        pytest.param("sluice_gate_plc", "remote_mode", True, id="bool-for-bit"),
        pytest.param("sluice_gate_plc", "limit_open", False, id="bool-for-discrete-input"),
        pytest.param("air_quality_station", "station_code", "BS01", id="text-for-modbus-string"),
        pytest.param("fire_detector", "fire_alarm", True, id="bool-for-mqtt-bool"),
        pytest.param("gas_detector", "lel", 12.5, id="float-for-mqtt-number"),
        pytest.param("gas_detector", "alarm_level", 2, id="int-for-mqtt-integer"),
        pytest.param("text_sensor", "label", "door open", id="text-for-mqtt-string"),
    ],
)
def test_values_of_the_declared_type_pass(profile: str, point: str, value: Value) -> None:
    msg = message(profile, {point: value})
    assert run_check(msg).samples[0].values == {point: value}


@pytest.mark.parametrize(
    ("profile", "point", "value", "declared", "given"),
    [
        pytest.param("water_quality_station", "ph", "7.1", "float32 (a number)", "a str ('7.1')", id="text-for-float"),
        pytest.param("water_quality_station", "ph", True, "float32 (a number)", "a bool (True)", id="bool-for-float"),
        pytest.param(
            "sluice_gate_plc", "fault_code", False, "uint16 (a number)", "a bool (False)", id="bool-for-uint16"
        ),
        pytest.param("sluice_gate_plc", "remote_mode", 1, "bit (a boolean)", "an int (1)", id="int-for-bit"),
        pytest.param("sluice_gate_plc", "limit_open", "true", "bool (a boolean)", "a str ('true')", id="text-for-bool"),
        pytest.param(
            "air_quality_station", "station_code", 101, "string (a string)", "an int (101)", id="int-for-modbus-string"
        ),
        pytest.param("fire_detector", "fire_alarm", 0.0, "bool (a boolean)", "a float (0.0)", id="float-for-mqtt-bool"),
        pytest.param(
            "gas_detector", "alarm_level", "high", "integer (a number)", "a str ('high')", id="text-for-mqtt-integer"
        ),
        pytest.param("text_sensor", "label", 3.5, "string (a string)", "a float (3.5)", id="float-for-mqtt-string"),
        pytest.param(
            "water_quality_station",
            "ph",
            "x" * 100,
            "float32 (a number)",
            "a str ('" + "x" * 59 + "...)",
            id="long-text-shortened",
        ),
    ],
)
def test_a_value_of_another_type_is_refused_naming_point_declared_type_and_value_type(
    profile: str, point: str, value: Value, declared: str, given: str
) -> None:
    msg = message(profile, {point: value})
    with pytest.raises(Invalid) as caught:
        run_check(msg)
    text = str(caught.value)
    assert f"point {point!r} of profile {profile!r} is declared {declared}" in text
    assert f"sample 0 (ts {NOW - 1000}) has {given}" in text
    assert caught.value.origin == Origin("s1", "d1", "r1", 7)  # kept in the dead letters: confirmed to the edge


def test_the_first_wrong_sample_is_named() -> None:
    msg = message("water_quality_station", {"ph": 7.0})
    msg.samples.append(Sample(ts=NOW - 500, values={"ph": 7.0, "do": "8"}))
    with pytest.raises(Invalid, match=r"point 'do' .* but sample 1 \(ts .*\) has a str \('8'\)"):
        run_check(msg)


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        pytest.param("water_quality_station", {"ph": Declared("float32", ValueKind.NUMBER)}, id="modbus-float"),
        pytest.param(
            "sluice_gate_plc",
            {
                "remote_mode": Declared("bit", ValueKind.BOOL),
                "limit_open": Declared("bool", ValueKind.BOOL),
                "level_up": Declared("int16", ValueKind.NUMBER),
            },
            id="modbus-bits-and-ints",
        ),
        pytest.param("air_quality_station", {"station_code": Declared("string", ValueKind.STRING)}, id="modbus-string"),
        pytest.param(
            "gas_detector",
            {"lel": Declared("number", ValueKind.NUMBER), "alarm_level": Declared("integer", ValueKind.NUMBER)},
            id="mqtt-numbers",
        ),
        pytest.param("fire_detector", {"fire_alarm": Declared("bool", ValueKind.BOOL)}, id="mqtt-bool"),
        pytest.param("text_sensor", {"label": Declared("string", ValueKind.STRING)}, id="mqtt-string"),
    ],
)
def test_declared_types_follow_the_profile_schema(profile: str, expected: dict[str, Declared]) -> None:
    types = declared_types(REGISTRY.profiles[profile])
    assert set(types) == set(REGISTRY.profiles[profile].point_names())
    assert {name: types[name] for name in expected} == expected


ORIGIN = Origin("s1", "d1", "r1", 7)


@pytest.mark.parametrize(
    ("build", "topic", "registry", "reason", "origin"),
    [
        pytest.param(
            lambda: message("water_quality_station", {"ph": 7.0}),
            topics.telemetry("s1", "d2"),
            REGISTRY,
            "message is for s1/d1 but came on topic",
            None,
            id="other-device's-topic-never-confirmed",
        ),
        pytest.param(
            lambda: message("water_quality_station", {"ph": 7.0}),
            topics.telemetry("s2", "d1"),
            REGISTRY,
            "message is for s1/d1 but came on topic",
            None,
            id="other-site's-topic-never-confirmed",
        ),
        pytest.param(
            lambda: message("water_quality_station", {"ph": 7.0}),
            topics.status("s1", "d1"),
            REGISTRY,
            "is not a telemetry topic",
            None,
            id="status-topic",
        ),
        pytest.param(
            lambda: message("water_quality_station", {"ph": 7.0}).model_copy(update={"profile": "nope"}),
            None,
            REGISTRY,
            "unknown profile 'nope'",
            ORIGIN,
            id="unknown-profile-strict",
        ),
        pytest.param(
            lambda: message("water_quality_station", {"ph": 7.0}),
            None,
            Registry({}),
            "unknown profile 'water_quality_station'",
            ORIGIN,
            id="profile-the-bridge-lacks",
        ),
        pytest.param(
            lambda: message("water_quality_station", {"ph": 7.0}),
            None,
            Registry(REGISTRY.profiles, {("s1", "d9"): "water_quality_station"}),
            "unknown device 'd1' of site 's1'",
            ORIGIN,
            id="unknown-device",
        ),
        pytest.param(
            lambda: message("water_quality_station", {"ph": 7.0}),
            None,
            Registry(REGISTRY.profiles, {("s1", "d1"): "gas_detector"}),
            "device 'd1' has profile 'gas_detector'",
            ORIGIN,
            id="device's-other-profile",
        ),
        pytest.param(
            lambda: message("water_quality_station", {"ph": 7.0}).model_copy(update={"measurement": "x"}),
            None,
            REGISTRY,
            "is stored in 'water_quality', not 'x'",
            ORIGIN,
            id="other-measurement",
        ),
        pytest.param(
            lambda: message("water_quality_station", {"ph": 7.0, "zz": 1.0}),
            None,
            REGISTRY,
            "points ['zz'] are not in profile",
            ORIGIN,
            id="unknown-point",
        ),
    ],
)
def test_refusals_say_why_and_which_edge_message_was_kept(
    build: object, topic: str | None, registry: Registry, reason: str, origin: Origin | None
) -> None:
    with pytest.raises(Invalid) as caught:
        run_check(build(), topic, registry)  # type: ignore[operator]
    assert reason in str(caught.value)
    assert caught.value.origin == origin
