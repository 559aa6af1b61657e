"""Surface water, daily or monthly (GB 3838-2002): each station's daily class against its target class, and the
share of days on target (class at or better than the target, over the days with both a class and a target)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from reports._numbers import share
from reports.model import Cell, Column, Report, ReportPeriod, Table, Total, beijing_text
from reports.rows import WaterDay

__all__ = ["LABELS", "on_target", "water_report"]

LABELS = {1: "I", 2: "II", 3: "III", 4: "IV", 5: "V", 6: "劣V"}

_DAYS = (
    Column("site", "站点", "site"),
    Column("device", "断面/监测点", "station"),
    Column("date", "日期(北京时间)", "date (Beijing)"),
    Column("class", "水质类别", "class"),
    Column("target", "目标类别", "target class"),
    Column("on_target", "是否达标", "on target"),
    Column("deciding", "定类项目", "deciding parameters"),
)
_STATIONS = (
    Column("site", "站点", "site"),
    Column("device", "断面/监测点", "station"),
    Column("target", "目标类别", "target class"),
    Column("days", "有效天数", "days classed"),
    Column("on_target_days", "达标天数", "days on target"),
    Column("on_target_pct", "达标率(%)", "on target (%)"),
    Column("worst", "最差类别", "worst class"),
)


def on_target(day: WaterDay) -> bool | None:
    """Whether the day's class meets the station's target (None: no class or no target)."""
    if day.water_class is None or day.target is None:
        return None
    return day.water_class <= day.target


def water_report(period: ReportPeriod, days: Sequence[WaterDay], *, scope: str, generated_ms: int) -> Report:
    """The surface-water report of ``period`` from the stored daily class rows."""
    inside = sorted(
        (d for d in days if period.start_ms <= d.day_ms < period.end_ms), key=lambda d: (d.site, d.device, d.day_ms)
    )
    rows: list[tuple[Cell, ...]] = []
    judged: Counter[tuple[str, str]] = Counter()
    met: Counter[tuple[str, str]] = Counter()
    worst: dict[tuple[str, str], int] = {}
    target: dict[tuple[str, str], int | None] = {}
    for d in inside:
        key = (d.site, d.device)
        verdict = on_target(d)
        target.setdefault(key, d.target)
        if d.water_class is not None:
            worst[key] = max(worst.get(key, 0), d.water_class)
        if verdict is not None:
            judged[key] += 1
            met[key] += verdict
        rows.append(
            (
                d.site,
                d.device,
                beijing_text(d.day_ms, with_time=False),
                LABELS.get(d.water_class or 0),
                LABELS.get(d.target or 0),
                None if verdict is None else ("是" if verdict else "否"),
                ",".join(d.deciding) or None,
            )
        )
    stations: list[tuple[Cell, ...]] = [
        (
            *key,
            LABELS.get(target[key] or 0),
            judged[key],
            met[key],
            share(met[key], judged[key]),
            LABELS.get(worst.get(key, 0)),
        )
        for key in sorted(target)
    ]
    kind_zh = "日报" if period.kind == "day" else "月报"
    return Report(
        kind="water",
        title=f"地表水水质{kind_zh} {period.label}",
        title_en=f"Surface water quality, {period.kind} report",
        standards=("GB 3838-2002", "地表水环境质量评价办法(试行) 2011"),
        period=period,
        scope=scope,
        generated_ms=generated_ms,
        tables=(
            Table("days", "日水质类别与目标", _DAYS, tuple(rows)),
            Table("stations", "各断面达标率", _STATIONS, tuple(stations)),
        ),
        totals=(
            Total("stations", "断面数", len(target)),
            Total("days", "有效断面·天", sum(judged.values())),
            Total("on_target_days", "达标断面·天", sum(met.values())),
            Total("on_target_pct", "达标率(%)", share(sum(met.values()), sum(judged.values()))),
        ),
        notes=("自动站类别: 仅以自动站监测项目定类.",),
    )
