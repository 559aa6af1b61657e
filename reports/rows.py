"""The rows the builders take: stored valid means, daily AQI and water class rows, alarm histories. The shell
(``reports.read``) fills them from ``storage`` and the alert store; tests and the bench build them by hand."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["AlarmRecord", "AqiDay", "MeanRow", "StateStep", "WaterDay"]


@dataclass(frozen=True, slots=True)
class MeanRow:
    """One stored valid mean row (``<measurement>_hourly`` / ``_daily``) of a device at its period's start."""

    site: str
    device: str
    time_ms: int
    values: Mapping[str, float]  # valid means
    counts: Mapping[str, int] = field(default_factory=dict)
    invalid: Mapping[str, str] = field(default_factory=dict)  # point: why the period has no valid mean


@dataclass(frozen=True, slots=True)
class AqiDay:
    """One stored daily AQI row (``air_quality_aqi_daily``)."""

    site: str
    device: str
    day_ms: int
    aqi: int | None  # absent: no indicator had a valid daily mean
    level: int | None
    category: str | None
    primary: tuple[str, ...]
    missing: tuple[str, ...]
    edition: str | None


@dataclass(frozen=True, slots=True)
class WaterDay:
    """One stored daily water class row (``water_quality_class_daily``)."""

    site: str
    device: str
    day_ms: int
    water_class: int | None  # 1-5, 6 = worse than V
    target: int | None
    deciding: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StateStep:
    """One transition of an alarm's history."""

    ts_ms: int
    action: str  # alerts.Action value: raise, ack, clear, ...
    to_state: str  # alerts.State value: active_unack, active_ack, cleared_unack, normal


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    """A safety alarm of a detector (one alert key) and its history, oldest first."""

    site: str  # the enterprise
    device: str  # the detector
    rule: str
    severity: str
    title: str
    history: Sequence[StateStep]
