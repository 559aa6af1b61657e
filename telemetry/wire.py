"""Fast decoding of telemetry messages: msgspec Structs that mirror the pydantic models of telemetry.models.

The pydantic models stay the contract's definition and its error texts. msgspec decodes and checks a payload in
one pass, several times faster; whatever msgspec refuses is decoded again by the pydantic models, so a refused
message gets exactly the ``ContractError`` text it always had, and a message that only pydantic's lax mode accepts
(an integral float for ``ts``, a numeric string, ...) is still accepted, as the pydantic model it was. msgspec is
never laxer than the models: tests/unit/test_wire.py compares both on a corpus of valid and invalid messages.

Patterns are matched with ``fullmatch``, not ``$``: in Python's ``re`` a ``$`` also matches before a trailing
newline, and in pydantic's regex engine it does not.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Annotated, Literal

import msgspec

from telemetry.codec import decode_telemetry as _decode_pydantic
from telemetry.models import Quality, Sample, Telemetry

__all__ = ["SampleLike", "TelemetryLike", "WireSample", "WireTelemetry", "decode_telemetry"]

# The models' patterns, checked in __post_init__ against a cache of names already seen (msgspec's own pattern
# check costs microseconds a key, and a district sends the same few hundred names again and again).
_POINT = re.compile(r"[a-z][a-z0-9_]{0,63}").fullmatch
_ID = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}").fullmatch
_RUN = re.compile(r"[A-Za-z0-9_-]{0,40}").fullmatch
_MAX_SEEN = 100_000
_seen_points: set[str] = set()
_seen_ids: set[str] = set()


def _points_ok(names: Iterable[str]) -> bool:
    for name in names:
        if name not in _seen_points:
            if name == "time" or _POINT(name) is None:
                return False
            if len(_seen_points) >= _MAX_SEEN:
                _seen_points.clear()
            _seen_points.add(name)
    return True


def _id_ok(text: str) -> bool:
    if text in _seen_ids:
        return True
    if _ID(text) is None:
        return False
    if len(_seen_ids) >= _MAX_SEEN:
        _seen_ids.clear()
    _seen_ids.add(text)
    return True


# orjson reads an integer outside [-2**63, 2**64) as a float: msgspec refuses those (ts, seq: from 2**63),
# and the models decide
_Ts = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
_INT_MIN, _INT_END = -(2**63), 2**64


class WirePointQuality(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    q: Quality  # the enum member, as the model gives it (``pq.q is Quality.BAD`` holds); never good
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=300)]

    def __post_init__(self) -> None:
        if self.q is Quality.GOOD:
            raise ValueError("good is no quality entry")


class WireSample(msgspec.Struct, forbid_unknown_fields=True):
    ts: _Ts
    values: dict[str, bool | int | float | str | None]
    quality: dict[str, WirePointQuality] = {}

    def __post_init__(self) -> None:  # the model's validators; the text comes from the model on fallback
        values, quality = self.values, self.quality
        if not _points_ok(values):  # (quality names must be value names, checked below)
            raise ValueError("point name")
        for name, value in values.items():
            if value is None:
                if name not in quality:
                    raise ValueError("null without quality")
            elif type(value) is float:
                if not math.isfinite(value):
                    raise ValueError("not finite")
            elif type(value) is int and not _INT_MIN <= value < _INT_END:
                raise ValueError("beyond 64 bits")
        for name, pq in quality.items():
            if name not in values:
                raise ValueError("quality without value")
            if pq.q is Quality.BAD and values[name] is not None:
                raise ValueError("bad but not null")

    def quality_of(self, point: str) -> Quality:
        pq = self.quality.get(point)
        return Quality.GOOD if pq is None else pq.q


class WireTelemetry(msgspec.Struct, forbid_unknown_fields=True):
    site: str
    device: str
    profile: str
    measurement: str
    seq: _Ts
    samples: Annotated[list[WireSample], msgspec.Meta(min_length=1)]
    v: Literal[1] = 1
    run: str = ""
    tags: dict[str, str] = {}
    units: dict[str, str] = {}

    def __post_init__(self) -> None:
        if not (_id_ok(self.site) and _id_ok(self.device)):
            raise ValueError("id")
        if self.run and _RUN(self.run) is None:
            raise ValueError("run")
        if self.units and not _points_ok(self.units):
            raise ValueError("unit name")


# What the bridge and the rules engine read of a message: the same attributes either way.
TelemetryLike = Telemetry | WireTelemetry
SampleLike = Sample | WireSample

_decoder = msgspec.json.Decoder(WireTelemetry)


def _has_surrogate(payload: bytes | str) -> bool:
    # orjson refuses a lone surrogate (escaped or not); msgspec decodes an escaped one into the str
    return b"\\u" in payload if isinstance(payload, bytes) else "\\u" in payload


def decode_telemetry(payload: bytes | str, topic: str | None = None) -> TelemetryLike:
    """The message, decoded by msgspec; anything msgspec refuses goes through the pydantic models, which either
    accept it (lax coercions) or raise the contract's ``ContractError``."""
    try:
        msg = _decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return _decode_pydantic(payload, topic)
    if _has_surrogate(payload):
        return _decode_pydantic(payload, topic)  # rare: \\u escapes; the models decide (via orjson)
    return msg


def msgspec_accepts(payload: bytes | str) -> bool:
    """Whether the fast path alone decodes this payload (for tests and benchmarks)."""
    try:
        _decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError):
        return False
    return not _has_surrogate(payload)
