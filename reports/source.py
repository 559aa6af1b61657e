"""Per pollution source (CEMS flue gas or a wastewater outlet), daily or monthly: its stored valid hourly and daily
means with their flags, the hours (and days) over the source's permit, the emitted totals, and data capture.

- A flue-gas concentration is judged on its O2-corrected point ``<P>_zs`` where the source stores one (emissions.md:
  limits apply at the reference O2), else on ``<P>``; a wastewater pollutant on ``<P>``.
- Exceedance hours: valid hourly means over the permit's ``hourly_mean`` limit (or outside its ``range``);
  exceedance days: valid daily means over its ``daily_mean`` limit (``rules.standards.check_limit``, a value equal to
  the limit complies). An invalid period is never an exceedance: it counts against data capture.
- Emitted total of ``P``: the sum of the valid hourly means of ``<P>_load`` (kg/h × 1 h = kg). Hours without a valid
  load mean are not estimated (a substitution rule, HJ 75 / HJ 356, is the permit's business): the hours behind the
  total are printed beside it.
- Data capture of a point: valid hourly means / hours of the period, in percent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from reports._numbers import rounded, share
from reports.model import Cell, Column, Report, ReportPeriod, Table, Total, beijing_text
from reports.rows import MeanRow
from rules.standards import Basis, Permit, check_limit

__all__ = ["LOAD_SUFFIX", "ZS_SUFFIX", "SourceReportBuilder", "source_report"]

ZS_SUFFIX = "_zs"  # the O2-corrected point (edge-derived or the station's ZsRtd/ZsAvg)
LOAD_SUFFIX = "_load"  # kg/h
NOT_POLLUTANTS = frozenset({"o2"})  # the reference gas of the O2 correction, averaged beside the pollutants

_MEANS = (
    Column("site", "企业/站点", "site"),
    Column("device", "排放源", "source"),
    Column("time", "时段(北京时间)", "period start (Beijing)"),
    Column("point", "监测项目", "point"),
    Column("value", "有效均值", "valid mean"),
    Column("count", "样本数", "count"),
    Column("flag", "数据标记", "flag"),
    Column("limit", "许可限值", "permit limit"),
    Column("exceeded", "是否超标", "over the limit"),
)
_SUMMARY = (
    Column("site", "企业/站点", "site"),
    Column("device", "排放源", "source"),
    Column("pollutant", "污染物", "pollutant"),
    Column("point", "评价项目", "judged point"),
    Column("hourly_limit", "小时均值限值", "hourly limit"),
    Column("daily_limit", "日均值限值", "daily limit"),
    Column("valid_hours", "有效小时数", "valid hours"),
    Column("capture_pct", "数据有效率(%)", "data capture (%)"),
    Column("exceed_hours", "超标小时数", "hours over the limit"),
    Column("exceed_days", "超标天数", "days over the limit"),
    Column("max_hourly", "小时均值最大值", "highest hourly mean"),
    Column("emitted_kg", "排放量(kg)", "emitted (kg)"),
    Column("load_hours", "排放量计入小时数", "hours in the total"),
)


def _judged_point(pollutant: str, permit: Permit, points: set[str]) -> str:
    zs = pollutant + ZS_SUFFIX
    return zs if permit.medium == "flue_gas" and zs in points else pollutant


def _limit_text(permit: Permit, pollutant: str, basis: Basis) -> str | None:
    lim = permit.limits.get(pollutant)
    if lim is None:
        return None
    if lim.range is not None:
        return f"{lim.range[0]:g}–{lim.range[1]:g}"
    value = lim.hourly_mean if basis is Basis.HOURLY_MEAN else lim.daily_mean
    return None if value is None else f"{value:g}"


def _exceeded(permit: Permit, pollutant: str | None, basis: Basis, value: float) -> bool | None:
    if pollutant is None:
        return None
    verdict = check_limit(permit, pollutant, basis, value)
    return None if verdict is None else verdict.exceeded


def _mean_rows(
    rows: Iterable[MeanRow], permits: Mapping[tuple[str, str], Permit], basis: Basis, with_time: bool
) -> tuple[tuple[Cell, ...], ...]:
    out: list[tuple[Cell, ...]] = []
    for r in sorted(rows, key=lambda r: (r.site, r.device, r.time_ms)):
        permit = permits.get((r.site, r.device))
        points = set(r.values) | set(r.invalid)
        judged: dict[str, str] = {}
        if permit is not None:
            judged = {_judged_point(p, permit, points): p for p in permit.limits}
        for point in sorted(points):
            pollutant = judged.get(point)
            limit = _limit_text(permit, pollutant, basis) if permit is not None and pollutant else None
            value = r.values.get(point)
            if value is None:
                flag, exceeded = "无效: " + r.invalid.get(point, ""), None
            else:
                flag = "有效"
                exceeded = _exceeded(permit, pollutant, basis, value) if permit is not None else None
            out.append(
                (
                    r.site,
                    r.device,
                    beijing_text(r.time_ms, with_time),
                    point,
                    value,
                    r.counts.get(point),
                    flag,
                    limit,
                    None if exceeded is None else ("是" if exceeded else "否"),
                )
            )
    return tuple(out)


@dataclass(slots=True)
class _Acc:
    """One source's pollutant over the period, accumulated in one pass over the hourly rows."""

    point: str = ""
    valid: int = 0
    over_h: int = 0
    over_d: int = 0
    highest: float | None = None
    load_kg: float = 0.0
    load_hours: int = 0
    monitored: bool = False


def _row_pollutants(permit: Permit | None, row: MeanRow) -> list[tuple[str, str]]:
    """(pollutant, the point that judges it) of one row: a permit's pollutants, or without one the base name of every
    concentration point (``so2`` for ``so2`` or ``so2_zs``); the O2-corrected point where the row has it."""
    points = set(row.values) | set(row.invalid)
    if permit is not None:
        names: set[str] = set(permit.limits)
    else:
        names = {p.removesuffix(ZS_SUFFIX) for p in points if not p.endswith(LOAD_SUFFIX)} - NOT_POLLUTANTS
    out = []
    for name in names:
        zs = name + ZS_SUFFIX
        flue = permit is None or permit.medium == "flue_gas"
        out.append((name, zs if flue and zs in points else name))
    return out


class _Sources:
    """The summary accumulators of every source (bounded by sources x pollutants, not by rows)."""

    def __init__(self, permits: Mapping[tuple[str, str], Permit]) -> None:
        self.permits = permits
        self.acc: dict[tuple[str, str], dict[str, _Acc]] = {}

    def hour(self, row: MeanRow) -> None:
        permit = self.permits.get((row.site, row.device))
        mine = self.acc.setdefault((row.site, row.device), {})
        for pollutant, point in _row_pollutants(permit, row):
            a = mine.get(pollutant)
            if a is None:
                a = mine[pollutant] = _Acc(point)
            if point.endswith(ZS_SUFFIX) or not a.point.endswith(ZS_SUFFIX):
                a.point = point
            load = row.values.get(pollutant + LOAD_SUFFIX)
            if load is not None:
                a.load_kg += load
                a.load_hours += 1
            value = row.values.get(point)
            a.monitored = a.monitored or point in row.values or point in row.invalid
            if value is None:
                continue
            a.valid += 1
            a.highest = value if a.highest is None else max(a.highest, value)
            if permit is not None and _exceeded(permit, pollutant, Basis.HOURLY_MEAN, value):
                a.over_h += 1

    def day(self, row: MeanRow) -> None:
        permit = self.permits.get((row.site, row.device))
        mine = self.acc.setdefault((row.site, row.device), {})
        for pollutant, point in _row_pollutants(permit, row):
            a = mine.get(pollutant)
            if a is None:
                a = mine[pollutant] = _Acc(point)
            a.monitored = a.monitored or point in row.values or point in row.invalid
            value = row.values.get(point)
            if value is not None and permit is not None and _exceeded(permit, pollutant, Basis.DAILY_MEAN, value):
                a.over_d += 1

    def rows(self, hours: int) -> tuple[list[tuple[Cell, ...]], dict[str, int]]:
        out: list[tuple[Cell, ...]] = []
        totals = {"exceed_hours": 0, "exceed_days": 0, "valid_hours": 0, "judged_hours": 0}
        for key in sorted(self.acc):
            permit = self.permits.get(key)
            for pollutant, a in sorted(self.acc[key].items()):
                if not a.monitored:
                    continue  # not monitored online (a permit's Hg, say): nothing to report, no capture to count
                totals["exceed_hours"] += a.over_h
                totals["exceed_days"] += a.over_d
                totals["valid_hours"] += a.valid
                totals["judged_hours"] += hours
                out.append(
                    (
                        key[0],
                        key[1],
                        pollutant,
                        a.point,
                        _limit_text(permit, pollutant, Basis.HOURLY_MEAN) if permit else "无许可",
                        _limit_text(permit, pollutant, Basis.DAILY_MEAN) if permit else None,
                        a.valid,
                        share(a.valid, hours),
                        a.over_h if permit else None,
                        a.over_d if permit else None,
                        a.highest,
                        rounded(a.load_kg) if a.load_hours else None,
                        a.load_hours,
                    )
                )
        return out, totals


class SourceReportBuilder:
    """The source report fed in pieces (a day of hourly rows at a time, in any order): what it keeps is bounded by
    the sources and pollutants, plus the hourly rows only when the hourly table is asked for."""

    def __init__(
        self, period: ReportPeriod, permits: Mapping[tuple[str, str], Permit], *, include_hourly: bool | None = None
    ) -> None:
        self.period = period
        self.permits = permits
        self.with_hours = period.kind == "day" if include_hourly is None else include_hourly
        self._acc = _Sources(permits)
        self._hours: list[MeanRow] = []
        self._days: list[MeanRow] = []
        self._sources: set[tuple[str, str]] = set()

    def add_hours(self, rows: Iterable[MeanRow]) -> None:
        """Stored valid hourly means; rows outside the period are left out."""
        start, end = self.period.start_ms, self.period.end_ms
        for r in rows:
            if start <= r.time_ms < end:
                self._acc.hour(r)
                self._sources.add((r.site, r.device))
                if self.with_hours:
                    self._hours.append(r)

    def add_days(self, rows: Iterable[MeanRow]) -> None:
        """Stored valid daily means; rows outside the period are left out."""
        for r in rows:
            if self.period.start_ms <= r.time_ms < self.period.end_ms:
                self._acc.day(r)
                self._days.append(r)
                self._sources.add((r.site, r.device))

    def report(self, *, scope: str, generated_ms: int) -> Report:
        period, permits, sources = self.period, self.permits, self._sources
        summary, t = self._acc.rows(period.hours)
        bases = sorted({p.basis for p in permits.values()})
        tables = [Table("summary", "排放源汇总(许可限值、超标、排放量、数据有效率)", _SUMMARY, tuple(summary))]
        if self.with_hours:
            hourly = _mean_rows(self._hours, permits, Basis.HOURLY_MEAN, True)
            tables.append(Table("hourly", "小时有效均值", _MEANS, hourly))
        tables.append(Table("daily", "日有效均值", _MEANS, _mean_rows(self._days, permits, Basis.DAILY_MEAN, False)))
        return _source_report(period, tables, sources, permits, t, bases, scope, generated_ms)


def source_report(
    period: ReportPeriod,
    hourly: Iterable[MeanRow],
    daily: Iterable[MeanRow],
    permits: Mapping[tuple[str, str], Permit],
    *,
    scope: str,
    generated_ms: int,
    include_hourly: bool | None = None,
) -> Report:
    """The pollution-source report of ``period`` from the stored valid means of every source in the rows.

    A source with a permit in ``permits`` is judged against it; one without is reported (means, capture, totals)
    with its limits shown as "无许可" and no exceedance counted. Rows outside the period are left out. ``hourly`` is
    read once, in any order, and kept only for the hourly table: a day report lists the hourly means
    (``include_hourly`` default), a month report the daily means (its hourly table on request), so a month of a
    district is summed in memory bounded by its sources, not its rows (``SourceReportBuilder`` takes it in pieces).
    """
    builder = SourceReportBuilder(period, permits, include_hourly=include_hourly)
    builder.add_hours(hourly)
    builder.add_days(daily)
    return builder.report(scope=scope, generated_ms=generated_ms)


def _source_report(
    period: ReportPeriod,
    tables: list[Table],
    sources: set[tuple[str, str]],
    permits: Mapping[tuple[str, str], Permit],
    t: dict[str, int],
    bases: list[str],
    scope: str,
    generated_ms: int,
) -> Report:
    totals = (
        Total("sources", "排放源数", len(sources)),
        Total("unpermitted", "无许可数据的排放源数", len(sources - set(permits))),
        Total("exceed_hours", "超标小时数合计", t["exceed_hours"]),
        Total("exceed_days", "超标天数合计", t["exceed_days"]),
        Total("capture_pct", "数据有效率(%)", share(t["valid_hours"], t["judged_hours"])),
    )
    kind_zh = "日报" if period.kind == "day" else "月报"
    return Report(
        kind="source",
        title=f"污染源排放{kind_zh} {period.label}",
        title_en=f"Pollution sources, {period.kind} report",
        standards=("HJ 75-2017 有效小时均值 (≥45 min)", *bases),
        period=period,
        scope=scope,
        generated_ms=generated_ms,
        tables=tuple(tables),
        totals=totals,
        notes=(
            "烟气浓度按折算值(基准氧含量)评价; 排放量为有效小时排放速率之和, 缺失小时未补遗.",
            "Flue gas judged on O2-corrected means; totals sum valid hourly loads, missing hours not substituted.",
        ),
    )
