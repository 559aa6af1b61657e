"""Ambient air, daily or monthly (HJ 633): each station's daily AQI, category and primary pollutant, the days per
category and the share of good days (优良天数比例: AQI 1–100, levels I and II, over the days with an AQI).

HJ 633-2026 §5.3: a day with a missing indicator whose AQI is at most 100 is published as ``NA`` (no AQI, category
or primary pollutant); it is not a day with an AQI. A day with a missing indicator and an AQI over 100 counts.
The edition is the one the rules engine stored with the day (HJ 633-2012 before 2026-03-01, HJ 633-2026 since).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from reports._numbers import share
from reports.model import Cell, Column, Report, ReportPeriod, Table, Total, beijing_text
from reports.rows import AqiDay

__all__ = ["CATEGORIES", "air_report", "published"]

# HJ 633-2026 Table 1 (air.md "Levels"): level -> category
CATEGORIES: dict[int, str] = {1: "优", 2: "良", 3: "轻度污染", 4: "中度污染", 5: "重度污染", 6: "严重污染"}
GOOD_LEVELS = frozenset({1, 2})
_PUBLISH_FLOOR = 100  # HJ 633-2026 §5.3

_DAYS = (
    Column("site", "站点", "site"),
    Column("device", "监测点", "station"),
    Column("date", "日期(北京时间)", "date (Beijing)"),
    Column("aqi", "AQI", "AQI"),
    Column("level", "级别", "level"),
    Column("category", "类别", "category"),
    Column("primary", "首要污染物", "primary pollutant"),
    Column("missing", "缺测项目", "missing"),
    Column("edition", "标准版本", "edition"),
)
_STATIONS = (
    Column("site", "站点", "site"),
    Column("device", "监测点", "station"),
    *(Column(f"days_{lvl}", f"{cat}天数", f"days level {lvl}") for lvl, cat in CATEGORIES.items()),
    Column("na_days", "无效(NA)天数", "NA days"),
    Column("good_pct", "优良天数比例(%)", "good days (%)"),
)


def published(day: AqiDay) -> bool:
    """Whether the day has a published AQI (HJ 633-2026 §5.3)."""
    if day.aqi is None or day.level is None:
        return False
    return not day.missing or day.aqi > _PUBLISH_FLOOR


def air_report(period: ReportPeriod, days: Sequence[AqiDay], *, scope: str, generated_ms: int) -> Report:
    """The air quality report of ``period`` from the stored daily AQI rows."""
    inside = sorted(
        (d for d in days if period.start_ms <= d.day_ms < period.end_ms), key=lambda d: (d.site, d.device, d.day_ms)
    )
    rows: list[tuple[Cell, ...]] = []
    per_station: dict[tuple[str, str], Counter[int]] = {}
    na: Counter[tuple[str, str]] = Counter()
    overall: Counter[int] = Counter()
    for d in inside:
        key = (d.site, d.device)
        per_station.setdefault(key, Counter())
        ok = published(d)
        if ok and d.level is not None:
            per_station[key][d.level] += 1
            overall[d.level] += 1
        else:
            na[key] += 1
        rows.append(
            (
                d.site,
                d.device,
                beijing_text(d.day_ms, with_time=False),
                d.aqi if ok else "NA",
                d.level if ok else None,
                (d.category or CATEGORIES.get(d.level or 0)) if ok else None,
                "、".join(d.primary) if ok and d.primary else ("—" if ok else None),
                ",".join(d.missing) or None,
                d.edition,
            )
        )
    stations: list[tuple[Cell, ...]] = []
    for key, counts in sorted(per_station.items()):
        valid = sum(counts.values())
        good = sum(counts[lvl] for lvl in GOOD_LEVELS)
        stations.append((*key, *(counts[lvl] for lvl in CATEGORIES), na[key], share(good, valid)))
    valid_all = sum(overall.values())
    totals = (
        Total("stations", "监测点数", len(per_station)),
        Total("station_days", "有效监测点·天", valid_all),
        *(Total(f"days_{lvl}", f"{cat}(点·天)", overall[lvl]) for lvl, cat in CATEGORIES.items()),
        Total("na_days", "无效(NA)点·天", sum(na.values())),
        Total("good_pct", "优良天数比例(%)", share(sum(overall[lvl] for lvl in GOOD_LEVELS), valid_all)),
    )
    editions = sorted({d.edition for d in inside if d.edition}) or ["HJ 633-2026"]
    kind_zh = "日报" if period.kind == "day" else "月报"
    return Report(
        kind="air",
        title=f"环境空气质量{kind_zh} {period.label}",
        title_en=f"Ambient air quality, {period.kind} report",
        standards=(*editions, "GB 3095 (二级)"),
        period=period,
        scope=scope,
        generated_ms=generated_ms,
        tables=(
            Table("days", "日空气质量指数(AQI)", _DAYS, tuple(rows)),
            Table("stations", "各监测点类别天数与优良天数比例", _STATIONS, tuple(stations)),
        ),
        totals=totals,
        notes=("NA: 缺测且AQI≤100, 不计入有效天数 (HJ 633-2026 §5.3).",),
    )
