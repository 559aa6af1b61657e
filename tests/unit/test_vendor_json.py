"""Decoding MQTT sensors' own JSON by the profile's paths, maps, types, ranges and timestamps."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles import MqttPoint, load_catalogue
from device_profiles.json_path import parse_path
from device_profiles.schema import TimestampSpec
from edge_agent.vendor_json import VendorError, convert, decode_message
from telemetry import Quality

CAT = load_catalogue()
RECEIVED = 1_764_000_000_000


def point(**kw: object) -> MqttPoint:
    return MqttPoint.model_validate({"name": "p", "path": "v", **kw})


@pytest.mark.parametrize(
    ("path", "parts"),
    [("a", ["a"]), ("data.lel", ["data", "lel"]), ("ch[2].v", ["ch", 2, "v"]), ("a[0][1]", ["a", 0, 1])],
)
def test_parse_path(path: str, parts: list[object]) -> None:
    assert parse_path(path) == parts


@pytest.mark.parametrize(
    ("spec", "raw", "value", "quality"),
    [
        pytest.param({}, 12.5, 12.5, None, id="number"),
        pytest.param({}, "12.5", 12.5, None, id="numeric-text"),
        pytest.param({"scale": 0.1, "offset": 1}, 100, 11.0, None, id="scaled"),
        pytest.param({"range": [0, 100]}, 120, 120, Quality.UNCERTAIN, id="outside-range-uncertain"),
        pytest.param({}, "abc", None, Quality.BAD, id="text-not-number-bad"),
        pytest.param({}, True, None, Quality.BAD, id="bool-is-not-a-number"),
        pytest.param({"type": "integer"}, 3.5, None, Quality.BAD, id="integer-with-fraction-bad"),
        pytest.param({"type": "integer", "map": {"low": 1}}, "low", 1, None, id="mapped-integer"),
        pytest.param({"type": "integer", "map": {"low": 1}}, "LOW?", None, Quality.BAD, id="unmapped-text-bad"),
        pytest.param({"type": "bool", "map": {"FIRE": True, "NORMAL": False}}, "FIRE", True, None, id="mapped-bool"),
        pytest.param({"type": "bool"}, 1, True, None, id="bool-from-1"),
        pytest.param({"type": "bool"}, 7, None, Quality.BAD, id="bool-from-7-bad"),
        pytest.param({"type": "string"}, "ok", "ok", None, id="string"),
    ],
)
def test_convert(spec: dict[str, object], raw: object, value: object, quality: Quality | None) -> None:
    got, q = convert(point(**spec), raw)
    assert got == value
    assert (q.q if q else None) == quality


def gas(payload: object) -> bytes:
    return orjson.dumps(payload)


def test_gas_detector_message() -> None:
    mqtt = CAT["gas_detector"].mqtt
    assert mqtt is not None
    payload = gas({"sn": "x", "ts": RECEIVED - 500, "data": {"lel": 31.5, "alarm": "low", "battery": 88}})
    sample = decode_message(mqtt.points, mqtt.timestamp, payload, RECEIVED)
    assert sample.ts == RECEIVED - 500
    assert sample.values == {"lel": 31.5, "alarm_level": 1, "battery": 88}
    assert sample.quality == {}


def test_fire_detector_iso_time_and_state() -> None:
    mqtt = CAT["fire_detector"].mqtt
    assert mqtt is not None
    payload = gas({"time": "2026-11-25T18:00:00+08:00", "state": "FIRE", "readings": {"smoke": 0.4, "temp": 31}})
    sample = decode_message(mqtt.points, mqtt.timestamp, payload, RECEIVED)
    assert sample.ts == 1_795_600_800_000  # 10:00 UTC
    assert sample.values["fire_alarm"] is True
    assert sample.values["detector_fault"] is False


def test_missing_timestamp_uses_receipt_time_and_says_so() -> None:
    mqtt = CAT["noise_meter"].mqtt
    assert mqtt is not None
    sample = decode_message(mqtt.points, mqtt.timestamp, gas({"v": {"laeq": 55, "lmax": 70}}), RECEIVED)
    assert sample.ts == RECEIVED
    assert sample.quality_of("noise_laeq") is Quality.UNCERTAIN
    assert "receipt time" in sample.quality["noise_laeq"].reason


def test_partial_message_carries_the_points_it_has() -> None:
    mqtt = CAT["noise_meter"].mqtt
    assert mqtt is not None
    sample = decode_message(mqtt.points, mqtt.timestamp, gas({"t": 1_764_000_000, "v": {"laeq": 55}}), RECEIVED)
    assert sample.values == {"noise_laeq": 55}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(b"{not json", "not JSON", id="bad-json"),
        pytest.param(b"[1, 2]", "expected a JSON object", id="not-an-object"),
        pytest.param(b'{"other": 1}', "none of the points", id="no-known-point"),
    ],
)
def test_unusable_messages_raise_vendor_error(payload: bytes, reason: str) -> None:
    mqtt = CAT["gas_detector"].mqtt
    assert mqtt is not None
    with pytest.raises(VendorError, match=reason):
        decode_message(mqtt.points, mqtt.timestamp, payload, RECEIVED)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_give_a_sample_or_vendor_error(payload: bytes) -> None:
    mqtt = CAT["gas_detector"].mqtt
    assert mqtt is not None
    try:
        sample = decode_message(mqtt.points, TimestampSpec(path="ts"), payload, RECEIVED)
    except VendorError:
        return
    assert sample.values


def test_iso_time_without_offset_is_taken_as_china_time_by_default() -> None:
    mqtt = CAT["fire_detector"].mqtt
    assert mqtt is not None
    payload = gas({"time": "2026-11-25T18:00:00", "state": "NORMAL"})
    assert decode_message(mqtt.points, mqtt.timestamp, payload, RECEIVED).ts == 1_795_600_800_000
