"""Decode an MQTT sensor's own JSON (not our contract) by its profile's paths. Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import orjson

from device_profiles import JsonType, MqttPoint, TimestampFormat
from device_profiles.json_path import parse_path
from device_profiles.registers import SCALED_DIGITS, rounded
from device_profiles.schema import SequenceSpec, TimestampSpec
from edge_agent.decode import Reading, bad, check_range
from telemetry import PointQuality, Quality, Sample, Value


class VendorError(ValueError):
    """A sensor message that yields no usable reading; it goes to the dead letters with this reason."""


class _Missing:
    pass


MISSING = _Missing()


def lookup(obj: object, path: Sequence[str | int]) -> object:
    cur = obj
    for part in path:
        in_list = isinstance(part, int) and isinstance(cur, list) and 0 <= part < len(cur)
        in_dict = isinstance(part, str) and isinstance(cur, dict) and part in cur
        if not (in_list or in_dict):
            return MISSING
        cur = cur[part]  # type: ignore[index]
    return cur


def convert(point: MqttPoint, raw: object) -> Reading:
    """The point's value from the raw JSON value: mapped, typed, scaled and range-checked."""
    if point.map is not None and isinstance(raw, str | int | float | bool) and not isinstance(raw, dict):
        key = raw if isinstance(raw, str) else str(raw).lower() if isinstance(raw, bool) else str(raw)
        if key in point.map:
            raw = point.map[key]
        elif isinstance(raw, str):
            return bad(f"{raw!r} is not one of {sorted(point.map)}")
    value: Value
    if point.type is JsonType.BOOL:
        if not isinstance(raw, bool | int) or (isinstance(raw, int) and raw not in (0, 1)):
            return bad(f"{raw!r} is not a boolean")
        value = bool(raw)
    elif point.type is JsonType.STRING:
        if not isinstance(raw, str):
            return bad(f"{raw!r} is not a string")
        value = raw[:200]
    else:
        number = _number(raw)
        if number is None:
            return bad(f"{raw!r} is not a number")
        if point.type is JsonType.INTEGER:
            if number != int(number):
                return bad(f"{raw!r} is not an integer")
            number = int(number)
        if point.scale != 1.0 or point.offset != 0.0:  # 15 digits: 287 × 0.1 is 28.7, not 28.700000000000003
            number = rounded(number * point.scale + point.offset, None, SCALED_DIGITS)
        if point.decimals is not None:
            number = round(number, point.decimals)
        value = number
    return value, check_range(point.range, value)


def _number(raw: object) -> float | int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        return raw if math.isfinite(raw) else None
    if isinstance(raw, str):
        try:
            number = float(raw)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def sample_time(spec: TimestampSpec | None, obj: object, received_ms: int) -> tuple[int, str | None]:
    """The device's own time in ms, or the receipt time with the reason it could not be used."""
    if spec is None:
        return received_ms, None
    raw = lookup(obj, parse_path(spec.path))
    if raw is MISSING:
        return received_ms, f"no timestamp at {spec.path!r}: receipt time used"
    try:
        if spec.format is TimestampFormat.ISO8601:
            if not isinstance(raw, str):
                raise TypeError
            when = datetime.fromisoformat(raw)
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone(timedelta(hours=spec.naive_utc_offset_h)))
            ms = int(when.timestamp() * 1000)
        else:
            number = _number(raw)
            if number is None:
                raise TypeError
            ms = int(number * (1000 if spec.format is TimestampFormat.EPOCH_S else 1))
    except (TypeError, ValueError, OverflowError):
        return received_ms, f"timestamp {raw!r} at {spec.path!r} is not {spec.format.value}: receipt time used"
    return ms, None


def decode_message(points: Sequence[MqttPoint], spec: TimestampSpec | None, payload: bytes, received_ms: int) -> Sample:
    """A sample from one vendor message; VendorError when nothing usable is in it."""
    return decode_vendor(points, spec, None, payload, received_ms)[0]


def sequence_of(spec: SequenceSpec | None, obj: object) -> int | None:
    """The sensor's own message counter, when its profile says where it sits and the message has a whole number."""
    if spec is None:
        return None
    raw = lookup(obj, parse_path(spec.path))
    number = None if raw is MISSING else _number(raw)
    if number is None or number != int(number) or number < 0:
        return None
    return int(number)


def decode_vendor(
    points: Sequence[MqttPoint],
    spec: TimestampSpec | None,
    sequence: SequenceSpec | None,
    payload: bytes,
    received_ms: int,
) -> tuple[Sample, int | None]:
    """A sample from one vendor message and the sensor's own counter (None: it has none, or the message lacks it);
    VendorError when nothing usable is in it."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise VendorError(f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise VendorError(f"expected a JSON object, got {type(obj).__name__}")
    ts, time_problem = sample_time(spec, obj, received_ms)
    readings: dict[str, Reading] = {}
    for point in points:
        raw = lookup(obj, parse_path(point.path))
        if raw is not MISSING:
            readings[point.name] = convert(point, raw)
    if not readings:
        raise VendorError(f"none of the points {[p.path for p in points]} is in the message")
    values = {name: value for name, (value, _) in readings.items()}
    quality = {name: q for name, (_, q) in readings.items() if q is not None}
    if time_problem:
        for name in values:
            quality.setdefault(name, PointQuality(q=Quality.UNCERTAIN, reason=time_problem))
    return Sample(ts=ts, values=values, quality=quality), sequence_of(sequence, obj)
