"""Turn a Modbus response into point values and qualities. Pure: no I/O."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence

from device_profiles import DataType, ModbusPoint, Order, Profile, decode_point
from device_profiles.derive import derive
from device_profiles.registers import _STRUCT, DecodeError, precision, rounded, shortest_float32
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
    try:
        value = decode_point(point, words)
    except DecodeError as exc:  # e.g. a BCD counter that reads 0x12A4
        return bad(f"device sent {exc}")
    if isinstance(value, float) and not math.isfinite(value):
        return bad(f"device sent {value} (not a finite number)")
    return value, check_range(point.range, value)


PointDecoder = Callable[[Sequence[int]], Reading]  # the block's registers -> one point's reading
# by id(request), with the request itself (kept alive, and checked: an id is reused only once it is gone); a
# poller's requests live as long as it does, so this holds its plan and its splits
_decoders: dict[int, tuple[ReadRequest, list[tuple[str, PointDecoder]]]] = {}


def decode_block(request: ReadRequest, data: Sequence[int] | Sequence[bool]) -> dict[str, Reading]:
    """Readings of every point of ``request`` from the registers (or bits) the device answered."""
    if len(data) < request.count:
        reason = f"device answered {len(data)} of {request.count} registers"
        return {p.name: bad(reason) for p in request.points}
    if request.function.is_bit:
        return {p.name: (bool(data[p.address - request.start]), None) for p in request.points}
    cached = _decoders.get(id(request))
    if cached is None or cached[0] is not request:
        cached = _decoders[id(request)] = (
            request,
            [(p.name, _decoder(p, p.address - request.start)) for p in request.points],
        )
    decoders = cached[1]
    words = [int(w) for w in data]
    return {name: decode(words) for name, decode in decoders}


def _decoder(point: ModbusPoint, offset: int) -> PointDecoder:
    """One point's decoding, its struct formats and scaling worked out once (same results as decode_point)."""
    end = offset + point.count
    fmt = _STRUCT.get(point.type)
    if fmt is None:  # bool, bit, string: the general path
        return lambda words: decode_point_reading(point, words[offset:end])
    value_struct = struct.Struct(fmt)
    little = point.order in (Order.BADC, Order.DCBA)
    words_struct = struct.Struct(("<" if little else ">") + f"{point.count}H")
    reverse = point.order in (Order.CDAB, Order.DCBA)
    factor, shift, point_range = point.scale, point.offset, point.range
    identity = factor == 1.0 and shift == 0.0
    places, digits = precision(point)
    exact = places is None and digits is None
    float32 = point.type is DataType.FLOAT32

    def decode(words: Sequence[int]) -> Reading:
        ws = words[offset:end]
        raw: int | float = value_struct.unpack(words_struct.pack(*(ws[::-1] if reverse else ws)))[0]
        if float32:
            raw = shortest_float32(raw)
        value = raw if identity else raw * factor + shift
        if isinstance(value, float):
            if not math.isfinite(value):
                return bad(f"device sent {value} (not a finite number)")
            if not exact:
                value = rounded(value, places, digits)
        return value, None if point_range is None else check_range(point_range, value)

    return decode


def with_derived(profile: Profile, tags: Mapping[str, str], readings: Mapping[str, Reading]) -> dict[str, Reading]:
    """The readings with the profile's maintenance marks and derived points (``device_profiles.derive``)."""
    if profile.derived is None:
        return dict(readings)
    values = {name: value for name, (value, _) in readings.items()}
    quality = {name: q for name, (_, q) in readings.items() if q is not None}
    values, quality = derive(profile, tags, values, quality)
    return {name: (value, quality.get(name)) for name, value in values.items()}
