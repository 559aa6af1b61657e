"""Message models of the wire contract (version 1).

A telemetry message carries one or more samples of one device. Each sample has the edge's sampling time in
milliseconds since the Unix epoch (UTC), the values by point name and the quality of every point that is not
``good``: a point absent from ``quality`` is good. A ``bad`` point's value is ``null``.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

CONTRACT_VERSION = 1

# A value is a number, a boolean (coils, bits, alarms), a short string (device texts) or null (bad).
Value = bool | int | float | str | None


def _not_time(name: str) -> str:
    # InfluxDB drops a field or tag named "time" (it is the timestamp column): no point may be called that
    if name == "time":
        raise ValueError("'time' is reserved (the timestamp) and cannot name a point")
    return name


PointName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$"), AfterValidator(_not_time)]
# Site and device ids as the topic scheme allows them (telemetry.topics.check_id).
Id = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
# One run of an edge agent (a process start): ``seq`` counts per device within it. Empty: a producer without runs.
RunId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{0,40}$")]


class Quality(StrEnum):
    GOOD = "good"
    UNCERTAIN = "uncertain"  # read, but not to be trusted (outside the engineering range, ...)
    BAD = "bad"  # not read: the value is null and the reason says why


class PointQuality(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    q: Literal[Quality.UNCERTAIN, Quality.BAD]
    reason: str = Field(min_length=1, max_length=300)


GOOD = None  # quality of a point that is absent from Sample.quality


class Sample(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ts: int = Field(ge=0, description="edge sampling time, ms since the Unix epoch (UTC)")
    values: dict[PointName, Value]
    quality: dict[PointName, PointQuality] = Field(default_factory=dict)

    @field_validator("values")
    @classmethod
    def _finite(cls, values: dict[str, Value]) -> dict[str, Value]:
        for name, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"point {name!r}: {value} is not a finite number (send null with quality bad)")
        return values

    @model_validator(mode="after")
    def _quality_names_values(self) -> Sample:
        for name, pq in self.quality.items():
            if name not in self.values:
                raise ValueError(f"quality given for point {name!r}, which has no value entry")
            if pq.q is Quality.BAD and self.values[name] is not None:
                raise ValueError(f"point {name!r} is bad, so its value must be null")
        for name, value in self.values.items():
            if value is None and name not in self.quality:
                raise ValueError(f"point {name!r} is null but has no quality saying why")
        return self

    def quality_of(self, point: str) -> Quality:
        pq = self.quality.get(point)
        return Quality.GOOD if pq is None else pq.q


class Telemetry(BaseModel):
    """One device's samples, as published on ``lifeline/v1/{site}/{device}/telemetry``."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    site: Id
    device: Id
    profile: str
    measurement: str
    seq: int = Field(ge=0, description="per-device message counter of this agent run; a gap means loss")
    run: RunId = Field("", description="the agent run that counted seq (changes at every agent start)")
    tags: dict[str, str] = Field(default_factory=dict)
    units: dict[PointName, str] = Field(default_factory=dict)
    samples: list[Sample] = Field(min_length=1)


class DeviceStatus(BaseModel):
    """Retained on ``lifeline/v1/{site}/{device}/status``; published on every change."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    site: Id
    device: Id
    profile: str
    online: bool
    ts: int = Field(ge=0, description="time of the change, ms since the epoch")
    reason: str = ""


class AgentState(BaseModel):
    """Retained on ``lifeline/v1/{site}/agent/state``: birth on connect, death by last will or clean stop."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1] = 1
    site: Id
    agent: str
    online: bool
    ts: int = Field(ge=0)
    version: str = ""
    devices: list[str] = Field(default_factory=list)
    reason: str = ""
    run: RunId = Field("", description="this agent run's id, as carried by its telemetry (birth shows a restart)")


class StoredRange(BaseModel):
    """Messages ``first``..``last`` (inclusive ``seq``) of one device and agent run that the centre has stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Id
    run: RunId
    first: int = Field(ge=0)
    last: int = Field(ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> StoredRange:
        if self.last < self.first:
            raise ValueError(f"last ({self.last}) is before first ({self.first})")
        return self


class Stored(BaseModel):
    """Published by a bridge on ``lifeline/v1/{site}/agent/stored`` (QoS 1, not retained) once InfluxDB accepted,
    or the dead-letter store kept, telemetry messages of the site's devices: the edge may then forget them.

    Each bridge of a shared group sees only some of a device's messages, so an acknowledgement names the ranges this
    bridge wrote, not a watermark: the edge removes what any bridge confirms, and resends the rest after a time-out
    (redelivery overwrites the same points). See docs/decisions/010.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = 1
    site: Id
    bridge: str = Field(min_length=1, max_length=64, description="which bridge wrote them (for diagnosis)")
    ts: int = Field(ge=0, description="when the write was confirmed, ms since the epoch")
    ranges: list[StoredRange] = Field(min_length=1)
