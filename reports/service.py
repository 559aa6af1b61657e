"""One report made end to end: read its rows (``reports.read``), build it, for the API and the CLI alike. The callers
decide which sites a user may see and pass them here; this module decides nothing about roles."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from alerts.store import AlertStore
from reports import read
from reports.air import air_report
from reports.model import DAY_MS, Report, ReportPeriod
from reports.safety import safety_report
from reports.source import SourceReportBuilder
from reports.water import water_report
from rules.standards import Permit
from storage import InfluxQuery

__all__ = ["Kind", "build_report"]

Kind = Literal["source", "air", "water", "safety"]


async def build_report(
    kind: Kind,
    period: ReportPeriod,
    *,
    reader: InfluxQuery | None,
    store: AlertStore | None,
    sites: Sequence[str] | None,
    scope: str,
    now_ms: int,
    permits: Mapping[tuple[str, str], Permit] | None = None,
    include_hourly: bool | None = None,
) -> Report:
    """The ``kind`` report of ``period`` over ``sites`` (None: every site). Environment reports read InfluxDB
    (``reader``), the safety report the alert store (``store``); a missing one is a ``ValueError``. ``include_hourly``:
    the source report's hourly table (default: in a day report, not in a month report)."""
    start, end = period.start_ms, period.end_ms
    if kind == "safety":
        if store is None:
            raise ValueError("the safety report reads the alert store: none given")
        records = await store.call(read.alarm_records, store, start, sites)
        return safety_report(period, records, scope=scope, generated_ms=now_ms)
    if reader is None:
        raise ValueError(f"the {kind} report reads InfluxDB: no reader given")
    if kind == "source":
        known = {k: p for k, p in (permits or {}).items() if sites is None or k[0] in sites}
        builder = SourceReportBuilder(period, known, include_hourly=include_hourly)
        days = [(period.day_start_ms(d), period.day_start_ms(d) + DAY_MS) for d in period.days]
        async for chunk in read.source_hours_by_day(reader, days, sites):
            builder.add_hours(chunk)
        builder.add_days(await read.source_days(reader, start, end, sites))
        return builder.report(scope=scope, generated_ms=now_ms)
    if kind == "air":
        return air_report(period, await read.aqi_days(reader, start, end, sites), scope=scope, generated_ms=now_ms)
    return water_report(period, await read.water_days(reader, start, end, sites), scope=scope, generated_ms=now_ms)
