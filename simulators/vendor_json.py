"""Vendor JSON as the field sensors send it, built from a profile's paths (the inverse of the edge's decoding).

Pure. A point with a ``map`` is written as the vendor's text: for points that share a path (the fire panel's
``state`` carries both ``fire_alarm`` and ``detector_fault``) the text is the one whose map gives every one of
them its value. Some vendors also put their device id in the body; ``ID_FIELD`` says where.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

import orjson

from device_profiles import JsonType, MqttPoint, Profile, TimestampFormat
from device_profiles.json_path import parse_path
from simulators.behaviours import Value

ID_FIELD: dict[str, str] = {
    "gas_detector": "sn",
    "toxic_gas_detector": "sn",  # the same vendor family as the combustible-gas detector
    "oxygen_detector": "sn",
    "fire_detector": "deviceId",
}
CHINA = timezone(timedelta(hours=8))

Json = dict[str, object]


def _put(obj: Json, path: str, value: object) -> None:
    """Set ``value`` at ``path`` (dotted keys and [index]) in ``obj``, making the objects and lists on the way."""
    parts = parse_path(path)
    cur: object = obj
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        child: object = value if last else [] if isinstance(parts[i + 1], int) else {}
        if isinstance(part, str) and isinstance(cur, dict):
            if last:
                cur[part] = value
            cur = cur.setdefault(part, child)
        elif isinstance(part, int) and isinstance(cur, list):
            cur.extend([None] * (part + 1 - len(cur)))
            if last or cur[part] is None:
                cur[part] = child
            cur = cur[part]
        else:
            raise TypeError(f"path {path!r} clashes with another point's path")


def _text_for(points: list[MqttPoint], values: Mapping[str, Value]) -> object:
    """The vendor text that maps to the values of all ``points`` (which share one path)."""
    first = points[0]
    assert first.map is not None
    for text in first.map:
        if all(p.map is not None and p.map.get(text) == values.get(p.name) for p in points):
            return text
    return values.get(first.name)


def timestamp(fmt: TimestampFormat, now: float) -> object:
    if fmt is TimestampFormat.EPOCH_MS:
        return int(now * 1000)
    if fmt is TimestampFormat.EPOCH_S:
        return int(now)
    return datetime.fromtimestamp(now, CHINA).isoformat(timespec="milliseconds")


def vendor_messages(
    profile: Profile, source_id: str, values: Mapping[str, Value], now: float
) -> list[tuple[str, bytes]]:
    """(topic, JSON payload) for each topic of the profile, as the vendor's device ``source_id`` sends them."""
    spec = profile.mqtt
    if spec is None:
        raise ValueError(f"profile {profile.name!r} is not an MQTT profile")
    by_topic: dict[str, dict[str, list[MqttPoint]]] = {}
    for p in spec.points:
        topic = (p.topic or spec.topic).replace("{device}", source_id)
        by_topic.setdefault(topic, {}).setdefault(p.path, []).append(p)
    out: list[tuple[str, bytes]] = []
    for topic, paths in by_topic.items():
        body: Json = {}
        if (id_field := ID_FIELD.get(profile.name)) is not None:
            body[id_field] = source_id
        if spec.timestamp is not None:
            _put(body, spec.timestamp.path, timestamp(spec.timestamp.format, now))
        for path, points in paths.items():
            if any(p.name in values for p in points):
                _put(body, path, _raw(points, values))
        out.append((topic, orjson.dumps(body)))
    return out


def _raw(points: list[MqttPoint], values: Mapping[str, Value]) -> object:
    if points[0].map is not None:
        return _text_for(points, values)
    p = points[0]
    value = values[p.name]
    if isinstance(value, int | float) and not isinstance(value, bool) and (p.scale != 1.0 or p.offset != 0.0):
        value = (value - p.offset) / p.scale
    if p.type is JsonType.INTEGER and isinstance(value, float):
        return round(value)
    return value
