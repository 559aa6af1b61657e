"""Valid hourly and daily means, stored back in InfluxDB for window rules to judge (``source: valid``).

``ValidMeans`` is the job: once each local hour is over (plus ``delay_s``) it reads the hour's minute sums of every
configured measurement, keeps the good samples only, applies the validity rule and rounding (``rules._means``) and
writes ``<measurement>_hourly``; once each natural day is over it averages the stored hourly means into
``<measurement>_daily`` (with the O3 daily maximum 8-hour mean). ``ScheduledRules(..., means=job)`` runs it on the
same APScheduler jobs, before the window rules, so a rule never reads a period the job has not written.

Reads and writes go through ``storage``: the minute sums and stored rows by ``storage.means`` queries, the rows by
``storage.means.means_row`` and the index rows (``rules.indices``) by the one encoder, written by
``storage.derived_writer`` on either transport (InfluxDB 1.x ``/write`` or 2.x/3.x), with storage's retry policy.
A line InfluxDB refuses for good is logged and counted, the others are written. A bad mean of one source (a
negative concentration, refused by ``rules._means``; or any value the AQI cannot take) is logged once per source and
point, counted (``refused_means``, ``index_failures``), stored as invalid, and never stops the other sources.

Writing the same period again overwrites it (same measurement, tags and time), so a rerun after a failure or a
restart is harmless. Missed periods are caught up after a restart (at most ``max_catchup`` hours).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from infra.config_loader import read_yaml, validate
from rules._means import (
    MEANS_FILE,
    Mean,
    MeansConfig,
    Tags,
    daily_means,
    energy_points,
    hourly_means,
)
from rules._windows import HOUR_MS, period_bounds
from rules.indices import (
    StationTagError,
    aqi_line,
    daily_class,
    daily_index,
    hourly_index,
    noise_fields,
    water_class_line,
    water_station,
)
from rules.standards import AqiResult
from storage import Refusal, Series
from storage.lineproto import FieldValue
from storage.means import means_row, minute_query, stored_fields, stored_query
from storage.schema import AIR, AQI_DAILY, AQI_HOURLY, NOISE, WATER, daily, hourly

log = logging.getLogger(__name__)
STATE_VERSION = 1

__all__ = ["STATE_VERSION", "MeansConfig", "ValidMeans", "Writer", "load_means_config"]


class QuerySource(Protocol):
    retention_policy: str | None

    async def query(self, influxql: str, epoch: str = "ms") -> list[Series]: ...


class Writer(Protocol):
    """What the job needs of ``storage.RetryingWriter`` (``storage.derived_writer``)."""

    async def write_lines(self, lines: Sequence[str], what: str | None = None) -> list[Refusal]: ...


def load_means_config(path: Path = MEANS_FILE) -> MeansConfig:
    """``rules/means.yaml`` (or another file); ConfigError names file, line and field."""
    return validate(MeansConfig, read_yaml(path), "means config")


@dataclass(slots=True)
class Counters:
    hours: int = 0
    days: int = 0
    rows: int = 0
    invalid: int = 0  # point means stored as invalid
    unclassed: int = 0  # water days or noise hours not judged: the device's tags do not say how (logged)
    refused: int = 0  # rows InfluxDB refused for good (logged; the others written)
    refused_means: int = 0  # hourly means refused (a negative concentration): stored invalid, logged once
    index_failures: int = 0  # a source's AQI not computed from its means (logged once per source); others go on


class ValidMeans:
    """Computes and stores valid means; ``last_hour`` / ``last_day``: the end of the newest period written."""

    def __init__(self, config: MeansConfig, query: QuerySource, writer: Writer, *, max_catchup: int = 24) -> None:
        self.config = config
        self.query = query
        self.writer = writer
        self.max_catchup = max(1, max_catchup)
        self.last_hour: int | None = None
        self.last_day: int | None = None
        self.counters = Counters()
        self._unclassed: set[Tags] = set()
        self._refused: set[tuple[Tags, str]] = set()  # (source, point) whose refused mean was logged
        self._index_failed: set[Tags] = set()

    # --- persistence -------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {"version": STATE_VERSION, "last_hour": self.last_hour, "last_day": self.last_day}

    def restore(self, data: dict[str, Any]) -> None:
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"valid means state version {data.get('version')!r} is not {STATE_VERSION}")
        self.last_hour, self.last_day = data.get("last_hour"), data.get("last_day")

    # --- what is due -------------------------------------------------------------------------------------------
    def due(self, now_ms: int) -> list[tuple[str, int]]:
        """("hour" | "day", period end) due at ``now_ms`` and not written yet, in the order to write them: a day
        right after its last hour. Never run before: only the newest hour (and the newest day it completes)."""
        tz, delay = self.config.timezone, int(self.config.delay_s * 1000)
        hours: list[int] = []
        end = period_bounds("hour", tz, now_ms - delay)[0]
        while (self.last_hour is None or end > self.last_hour) and len(hours) < (
            1 if self.last_hour is None else self.max_catchup
        ):
            hours.append(end)
            end -= HOUR_MS
        upto = max([*hours, self.last_hour or 0])
        days: list[int] = []
        day = period_bounds("day", tz, upto)[0]  # the newest midnight at or before upto
        while (self.last_day is None or day > self.last_day) and len(days) < (1 if self.last_day is None else 7):
            days.append(day)
            day = period_bounds("day", tz, day - 1)[0]
        if not upto:
            return []
        out = [("hour", h) for h in hours] + [("day", d) for d in days]
        return sorted(out, key=lambda item: (item[1], item[0] == "day"))

    async def run_due(self, now_ms: int) -> int:
        """Write every period due; the rows written. InfluxDB errors rise (the caller logs and retries later)."""
        rows = 0
        for kind, end in self.due(now_ms):
            rows += await (self.run_hour(end) if kind == "hour" else self.run_day(end))
        return rows

    # --- one period --------------------------------------------------------------------------------------------
    async def run_hour(self, end_ms: int) -> int:
        """Compute and store the hourly means of the hour that ends at ``end_ms``."""
        start = end_ms - HOUR_MS
        lines: list[str] = []
        for spec in self.config.measurements:
            points = [p.point for p in spec.points]
            rp, energy = self.query.retention_policy, energy_points(spec)  # sound levels: summed as energy
            influxql = minute_query(spec.measurement, points, start, end_ms, rp, energy)
            series = await self.query.query(influxql)
            for tags, means in hourly_means(spec, series).items():
                if all(m.count == 0 for m in means.values()):
                    continue  # a source that sent none of these points this hour
                extra = self._noise(means, tags, start) if spec.measurement == NOISE else {}  # the zone's limit
                lines.append(means_row(hourly(spec.measurement), tags, means, start, extra))
                self.counters.invalid += sum(1 for m in means.values() if not m.valid)
                self._note_refused(spec.measurement, tags, means, start)
                if spec.measurement == AIR:  # the hourly AQI of the station, from the same valid means
                    lines += self._aqi(AQI_HOURLY, tags, means, start, hourly_index)
        await self._write(lines, "valid hourly means")
        self.last_hour = max(self.last_hour or end_ms, end_ms)
        self.counters.hours += 1
        self.counters.rows += len(lines)
        log.info("valid hourly means stored period_start=%d rows=%d", start, len(lines))
        return len(lines)

    async def run_day(self, end_ms: int) -> int:
        """Average the stored hourly means of the natural day that ends at ``end_ms``."""
        start = period_bounds("day", self.config.timezone, end_ms - 1)[0]
        hours = round((end_ms - start) / HOUR_MS)
        lines: list[str] = []
        for spec in self.config.measurements:
            fields = stored_fields(p.point for p in spec.points)
            influxql = stored_query(hourly(spec.measurement), fields, start, end_ms, self.query.retention_policy)
            series = await self.query.query(influxql)
            for tags, means in daily_means(spec, series, start, hours).items():
                lines.append(means_row(daily(spec.measurement), tags, means, start))
                self.counters.invalid += sum(1 for m in means.values() if not m.valid)
                if spec.measurement == AIR:  # the daily AQI (24-h means, O3 daily maximum 8-h (and 1-h) mean)
                    lines += self._aqi(AQI_DAILY, tags, means, start, daily_index)
                if spec.measurement == WATER:  # the day's GB 3838-2002 class from the daily means
                    lines += self._water_class(tags, means, start)
        await self._write(lines, "valid daily means")
        self.last_day = max(self.last_day or end_ms, end_ms)
        self.counters.days += 1
        self.counters.rows += len(lines)
        log.info("valid daily means stored period_start=%d rows=%d", start, len(lines))
        return len(lines)

    async def _write(self, lines: list[str], what: str) -> None:
        """Write the rows; InfluxDB unavailable (after storage's retries) rises, a refused row is logged."""
        for refusal in await self.writer.write_lines(lines, what):
            self.counters.refused += 1
            log.error("%s row refused by InfluxDB row=%r reason=%r", what, refusal.line[:300], refusal.reason)

    def _note_refused(self, measurement: str, tags: Tags, means: dict[str, Mean], start: int) -> None:
        for point, m in means.items():
            if m.refused is None:
                continue
            self.counters.refused_means += 1  # counted every hour; logged once per source and point
            if (tags, point) not in self._refused:
                self._refused.add((tags, point))
                log.warning(
                    "hourly mean refused measurement=%s source=%s point=%s period_start=%d %s",
                    measurement,
                    ",".join(f"{k}={v}" for k, v in tags),
                    point,
                    start,
                    m.refused,
                )

    def _aqi(
        self,
        measurement: str,
        tags: Tags,
        means: dict[str, Mean],
        start: int,
        index: Callable[[dict[str, Mean], int], AqiResult],
    ) -> list[str]:
        """The source's AQI row; a mean the AQI refuses (ValueError) costs this source's row only (logged once)."""
        try:
            return [aqi_line(measurement, tags, index(means, start), start)]
        except ValueError as exc:
            self.counters.index_failures += 1
            if tags not in self._index_failed:
                self._index_failed.add(tags)
                log.warning("AQI not computed source=%s period_start=%d error=%s", dict(tags), start, exc)
            return []

    def _noise(self, means: dict[str, Mean], tags: Tags, start: int) -> dict[str, FieldValue]:
        try:
            return noise_fields(means, tags, start)
        except StationTagError as exc:
            self.counters.unclassed += 1
            if tags not in self._unclassed:
                self._unclassed.add(tags)
                log.warning("noise verdict not computed: %s", exc)
            return {}

    def _water_class(self, tags: Tags, means: dict[str, Mean], start: int) -> list[str]:
        try:
            station = water_station(tags)
        except StationTagError as exc:
            self.counters.unclassed += 1
            if tags not in self._unclassed:  # logged once per station; counted every day
                self._unclassed.add(tags)
                log.warning("water class not computed: %s", exc)
            return []
        return [water_class_line(tags, daily_class(means, station), station, start)]
