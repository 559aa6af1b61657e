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

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence

from reports._numbers import rounded, share
from reports.model import Cell, Column, Report, ReportPeriod, Table, Total, beijing_text
from reports.rows import MeanRow
from rules.standards import Basis, Permit, check_limit

__all__ = ["LOAD_SUFFIX", "ZS_SUFFIX", "source_report"]

ZS_SUFFIX = "_zs"  # the O2-corrected point (edge-derived or the station's ZsRtd/ZsAvg)
LOAD_SUFFIX = "_load"  # kg/h

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


def _pollutants(permit: Permit | None, points: set[str]) -> list[str]:
    """A permit's pollutants; without one, every point's base name (``so2`` for ``so2``, ``so2_zs``, ``so2_load``)."""
    if permit is not None:
        return sorted(permit.limits)
    return sorted({p.removesuffix(ZS_SUFFIX).removesuffix(LOAD_SUFFIX) for p in points})


def _summary(
    hourly: Sequence[MeanRow], daily: Sequence[MeanRow], permits: Mapping[tuple[str, str], Permit], hours: int
) -> tuple[list[tuple[Cell, ...]], dict[str, int | float]]:
    by_source: dict[tuple[str, str], list[MeanRow]] = defaultdict(list)
    days_by_source: dict[tuple[str, str], list[MeanRow]] = defaultdict(list)
    for r in hourly:
        by_source[(r.site, r.device)].append(r)
    for r in daily:
        days_by_source[(r.site, r.device)].append(r)
    out: list[tuple[Cell, ...]] = []
    totals: dict[str, int | float] = {"exceed_hours": 0, "exceed_days": 0, "valid_hours": 0, "judged_hours": 0}
    for key in sorted(set(by_source) | set(days_by_source)):
        permit = permits.get(key)
        rows, days = by_source.get(key, []), days_by_source.get(key, [])
        points = {p for r in (*rows, *days) for p in (*r.values, *r.invalid)}
        for pollutant in _pollutants(permit, points):
            zs = pollutant + ZS_SUFFIX
            point = (
                _judged_point(pollutant, permit, points) if permit is not None else (zs if zs in points else pollutant)
            )
            if point not in points:
                continue  # not monitored online (a permit's Hg, say): nothing to report, no capture to count
            values = [r.values[point] for r in rows if point in r.values]
            over_h = over_d = None
            if permit is not None:
                over_h = sum(bool(_exceeded(permit, pollutant, Basis.HOURLY_MEAN, v)) for v in values)
                over_d = sum(
                    bool(_exceeded(permit, pollutant, Basis.DAILY_MEAN, r.values[point]))
                    for r in days
                    if point in r.values
                )
            loads = [r.values[pollutant + LOAD_SUFFIX] for r in rows if pollutant + LOAD_SUFFIX in r.values]
            totals["exceed_hours"] += over_h or 0
            totals["exceed_days"] += over_d or 0
            totals["valid_hours"] += len(values)
            totals["judged_hours"] += hours
            out.append(
                (
                    key[0],
                    key[1],
                    pollutant,
                    point,
                    _limit_text(permit, pollutant, Basis.HOURLY_MEAN) if permit else "无许可",
                    _limit_text(permit, pollutant, Basis.DAILY_MEAN) if permit else None,
                    len(values),
                    share(len(values), hours),
                    over_h,
                    over_d,
                    max(values) if values else None,
                    rounded(sum(loads)) if loads else None,
                    len(loads),
                )
            )
    return out, totals


def source_report(
    period: ReportPeriod,
    hourly: Sequence[MeanRow],
    daily: Sequence[MeanRow],
    permits: Mapping[tuple[str, str], Permit],
    *,
    scope: str,
    generated_ms: int,
) -> Report:
    """The pollution-source report of ``period`` from the stored valid means of every source in the rows.

    A source with a permit in ``permits`` is judged against it; one without is reported (means, capture, totals)
    with its limits shown as "无许可" and no exceedance counted. Rows outside the period are left out.
    """
    inside = [r for r in hourly if period.start_ms <= r.time_ms < period.end_ms]
    days = [r for r in daily if period.start_ms <= r.time_ms < period.end_ms]
    summary, t = _summary(inside, days, permits, period.hours)
    bases = sorted({p.basis for p in permits.values()})
    tables = (
        Table("summary", "排放源汇总(许可限值、超标、排放量、数据有效率)", _SUMMARY, tuple(summary)),
        Table("hourly", "小时有效均值", _MEANS, _mean_rows(inside, permits, Basis.HOURLY_MEAN, True)),
        Table("daily", "日有效均值", _MEANS, _mean_rows(days, permits, Basis.DAILY_MEAN, False)),
    )
    totals = (
        Total("sources", "排放源数", len({(r.site, r.device) for r in (*inside, *days)})),
        Total(
            "unpermitted", "无许可数据的排放源数", len({(r.site, r.device) for r in (*inside, *days)} - set(permits))
        ),
        Total("exceed_hours", "超标小时数合计", int(t["exceed_hours"])),
        Total("exceed_days", "超标天数合计", int(t["exceed_days"])),
        Total("capture_pct", "数据有效率(%)", share(int(t["valid_hours"]), int(t["judged_hours"]))),
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
        tables=tables,
        totals=totals,
        notes=(
            "烟气浓度按折算值(基准氧含量)评价; 排放量为有效小时排放速率之和, 缺失小时未补遗.",
            "Flue gas judged on O2-corrected means; totals sum valid hourly loads, missing hours not substituted.",
        ),
    )
