"""Turn a Modbus response into point values and qualities. Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from device_profiles import ModbusPoint, Profile, decode_point
from device_profiles.derive import derive
from edge_agent.planner import ReadRequest
from telemetry import PointQuality, Quality, Value

Reading = tuple[Value, PointQuality | None]  # (value, None when good)


def bad(reason: str) -> Reading:
    return None, PointQuality(q=Quality.BAD, reason=reason)


def check_range(point_range: tuple[float, float] | None, value: Value) -> PointQuality | None:
    """``uncertain`` when a number lies outside the point's engineering range."""
    if point_range is None or isinstance(value, bool) or not isinstance(value, int | float):
        return None
    low, high = point_range
    if low <= value <= high:
        return None
    return PointQuality(q=Quality.UNCERTAIN, reason=f"{value:g} outside the range [{low:g}, {high:g}]")


def decode_point_reading(point: ModbusPoint, words: Sequence[int]) -> Reading:
    value = decode_point(point, words)
    if isinstance(value, float) and not math.isfinite(value):
        return bad(f"device sent {value} (not a finite number)")
    return value, check_range(point.range, value)


def decode_block(request: ReadRequest, data: Sequence[int] | Sequence[bool]) -> dict[str, Reading]:
    """Readings of every point of ``request`` from the registers (or bits) the device answered."""
    if len(data) < request.count:
        reason = f"device answered {len(data)} of {request.count} registers"
        return {p.name: bad(reason) for p in request.points}
    out: dict[str, Reading] = {}
    for p in request.points:
        offset = p.address - request.start
        if request.function.is_bit:
            out[p.name] = (bool(data[offset]), None)
        else:
            out[p.name] = decode_point_reading(p, [int(w) for w in data[offset : offset + p.count]])
    return out


def with_derived(profile: Profile, tags: Mapping[str, str], readings: Mapping[str, Reading]) -> dict[str, Reading]:
    """The readings with the profile's maintenance marks and derived points (``device_profiles.derive``)."""
    if profile.derived is None:
        return dict(readings)
    values = {name: value for name, (value, _) in readings.items()}
    quality = {name: q for name, (_, q) in readings.items() if q is not None}
    values, quality = derive(profile, tags, values, quality)
    return {name: (value, quality.get(name)) for name, value in values.items()}
