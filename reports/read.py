"""The shell of the reports: the rows a builder takes, read from InfluxDB through ``storage.queries`` (the stored
valid means and daily indices the rules engine writes) and from the alert store. Errors are the reader's
(``storage.QueryUnavailableError``, ``storage.QueryError``); the callers (API, CLI) turn them into their answers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Iterable, Sequence

from alerts.store import AlertStore
from reports.rows import AlarmRecord, AqiDay, MeanRow, StateStep, WaterDay
from storage import InfluxQuery, Series, queries
from storage.schema import (
    AQI_DAILY,
    COUNT_SUFFIX,
    DEVICE,
    QUALITY_SUFFIX,
    REASON_SUFFIX,
    SITE,
    WATER_CLASS_DAILY,
    Aqi,
    WaterClassField,
    daily,
    hourly,
)

__all__ = [
    "SAFETY_AUDIENCE",
    "alarm_records",
    "aqi_days",
    "mean_rows",
    "source_days",
    "source_hours_by_day",
    "water_days",
]

SAFETY_AUDIENCE = "safety"
SOURCE_MEASUREMENTS = ("flue_gas", "wastewater")
MAX_ALARMS = 100_000


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _int(v: object) -> int | None:
    n = _num(v)
    return None if n is None else int(n)


def _names(v: object) -> tuple[str, ...]:
    return tuple(x for x in v.split(",") if x) if isinstance(v, str) else ()


def _site_device(s: Series, row: dict[str, object]) -> tuple[str, str]:
    return str(s.tags.get(SITE, row.get(SITE, ""))), str(s.tags.get(DEVICE, row.get(DEVICE, "")))


def mean_rows(series: Iterable[Series]) -> list[MeanRow]:
    """Stored valid-mean rows as ``MeanRow``: ``P`` the mean, ``P.n`` its count, ``P.reason`` why it is invalid."""
    out: list[MeanRow] = []
    for s in series:
        for row in s.rows():
            site, device = _site_device(s, row)
            values: dict[str, float] = {}
            counts: dict[str, int] = {}
            invalid: dict[str, str] = {}
            for col, v in row.items():
                if v is None or col in ("time", SITE, DEVICE):
                    continue
                if col.endswith(COUNT_SUFFIX):
                    n = _int(v)
                    if n is not None:
                        counts[col.removesuffix(COUNT_SUFFIX)] = n
                elif col.endswith(REASON_SUFFIX):
                    invalid[col.removesuffix(REASON_SUFFIX)] = str(v)
                elif not col.endswith(QUALITY_SUFFIX) and (x := _num(v)) is not None:
                    values[col] = x
            out.append(MeanRow(site, device, int(row["time"]), values, counts, invalid))  # type: ignore[call-overload]
    return out


async def source_hours_by_day(
    reader: InfluxQuery,
    period_days: Sequence[tuple[int, int]],
    sites: Sequence[str] | None,
    measurements: Sequence[str] = SOURCE_MEASUREMENTS,
) -> AsyncIterator[list[MeanRow]]:
    """The stored valid hourly means of the pollution sources, one ``(start_ms, end_ms)`` day at a time: a month is
    never held whole (the source report sums it as it comes)."""
    for start_ms, end_ms in period_days:
        series = await queries.period_rows(
            reader, [hourly(m) for m in measurements], start_ms=start_ms, end_ms=end_ms, sites=sites
        )
        yield mean_rows(series)


async def source_days(
    reader: InfluxQuery,
    start_ms: int,
    end_ms: int,
    sites: Sequence[str] | None,
    measurements: Sequence[str] = SOURCE_MEASUREMENTS,
) -> list[MeanRow]:
    """The stored valid daily means of the pollution sources."""
    series = await queries.period_rows(
        reader, [daily(m) for m in measurements], start_ms=start_ms, end_ms=end_ms, sites=sites
    )
    return mean_rows(series)


async def aqi_days(reader: InfluxQuery, start_ms: int, end_ms: int, sites: Sequence[str] | None) -> list[AqiDay]:
    """The stored daily AQI rows (``air_quality_aqi_daily``)."""
    out: list[AqiDay] = []
    for s in await queries.period_rows(reader, [AQI_DAILY], start_ms=start_ms, end_ms=end_ms, sites=sites):
        for row in s.rows():
            site, device = _site_device(s, row)
            cat = row.get(Aqi.CATEGORY)
            edition = row.get(Aqi.EDITION)
            out.append(
                AqiDay(
                    site,
                    device,
                    int(row["time"]),  # type: ignore[call-overload]
                    _int(row.get(Aqi.AQI)),
                    _int(row.get(Aqi.LEVEL)),
                    cat if isinstance(cat, str) and cat else None,
                    _names(row.get(Aqi.PRIMARY)),
                    _names(row.get(Aqi.MISSING)),
                    edition if isinstance(edition, str) and edition else None,
                )
            )
    return out


async def water_days(reader: InfluxQuery, start_ms: int, end_ms: int, sites: Sequence[str] | None) -> list[WaterDay]:
    """The stored daily water class rows (``water_quality_class_daily``)."""
    out: list[WaterDay] = []
    for s in await queries.period_rows(reader, [WATER_CLASS_DAILY], start_ms=start_ms, end_ms=end_ms, sites=sites):
        for row in s.rows():
            site, device = _site_device(s, row)
            cls = _int(row.get(WaterClassField.CLASS))
            out.append(
                WaterDay(
                    site,
                    device,
                    int(row["time"]),  # type: ignore[call-overload]
                    cls if cls and cls > 0 else None,
                    _int(row.get(WaterClassField.TARGET)),
                    _names(row.get(WaterClassField.DECIDING)),
                )
            )
    return out


def alarm_records(store: AlertStore, since_ms: int, sites: Collection[str] | None) -> list[AlarmRecord]:
    """The safety alerts active since ``since_ms`` (on the sites given; None: all) with their histories."""
    out: list[AlarmRecord] = []
    for a in store.list_alerts(audiences=[SAFETY_AUDIENCE], sites=sites, since_ms=since_ms, limit=MAX_ALARMS):
        steps = [StateStep(h.ts_ms, h.action.value, h.to_state.value) for h in store.history(a.id)]
        key = a.alert.key
        out.append(AlarmRecord(key.site, key.device, key.rule_id, a.alert.severity.value, a.meta.title, steps))
    return out
