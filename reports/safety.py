"""Work safety, daily or monthly: the alarms per enterprise (site) and detector, the time to acknowledge and the
time to close each one (the grid loop's evaluation step), from the alert store's histories.

An alarm is one ``raise`` of an alert (ISA-18.2: normal or cleared-unacknowledged to active-unacknowledged) inside
the period; it lasts until the next ``raise`` of the same alert. Time to acknowledge: from the raise to the first
``ack``; time to close: to the first return to ``normal`` (cleared and acknowledged). An alarm not acknowledged or not
closed by the time the report is made is counted as such, with no time.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from reports.model import Cell, Column, Report, ReportPeriod, Table, Total, beijing_text
from reports.rows import AlarmRecord

__all__ = ["Episode", "episodes", "safety_report"]

_RAISE = "raise"
_ACK = "ack"
_NORMAL = "normal"
_MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Episode:
    site: str
    device: str
    rule: str
    severity: str
    title: str
    raised_ms: int
    ack_ms: int | None
    closed_ms: int | None


def episodes(record: AlarmRecord) -> list[Episode]:
    """The alarms of one alert's history (sorted by time), each with its first acknowledgement and closing."""
    steps = sorted(record.history, key=lambda s: s.ts_ms)
    out: list[Episode] = []
    for i, step in enumerate(steps):
        if step.action != _RAISE:
            continue
        ack = close = None
        for later in steps[i + 1 :]:
            if later.action == _RAISE:
                break
            if ack is None and later.action == _ACK:
                ack = later.ts_ms
            if later.to_state == _NORMAL:
                close = later.ts_ms
                break
        out.append(
            Episode(record.site, record.device, record.rule, record.severity, record.title, step.ts_ms, ack, close)
        )
    return out


def _minutes(ms: int) -> float:
    return round(ms / _MINUTE_MS, 1)


def _mean(values: list[int]) -> float | None:
    return _minutes(sum(values) // len(values)) if values else None


_ALARMS = (
    Column("site", "企业", "enterprise"),
    Column("device", "探测器", "detector"),
    Column("rule", "报警规则", "rule"),
    Column("severity", "级别", "severity"),
    Column("raised", "报警时间(北京时间)", "raised (Beijing)"),
    Column("ack_min", "确认用时(分钟)", "to acknowledge (min)"),
    Column("close_min", "关闭用时(分钟)", "to close (min)"),
)
_DETECTORS = (
    Column("site", "企业", "enterprise"),
    Column("device", "探测器", "detector"),
    Column("alarms", "报警次数", "alarms"),
    Column("unacked", "未确认", "not acknowledged"),
    Column("open", "未关闭", "not closed"),
    Column("ack_mean_min", "平均确认用时(分钟)", "mean to acknowledge (min)"),
    Column("ack_max_min", "最长确认用时(分钟)", "longest to acknowledge (min)"),
    Column("close_mean_min", "平均关闭用时(分钟)", "mean to close (min)"),
    Column("close_max_min", "最长关闭用时(分钟)", "longest to close (min)"),
)
_ENTERPRISES = (
    Column("site", "企业", "enterprise"),
    Column("detectors", "报警探测器数", "detectors alarming"),
    Column("alarms", "报警次数", "alarms"),
    Column("ack_mean_min", "平均确认用时(分钟)", "mean to acknowledge (min)"),
    Column("close_mean_min", "平均关闭用时(分钟)", "mean to close (min)"),
)


def safety_report(period: ReportPeriod, records: Sequence[AlarmRecord], *, scope: str, generated_ms: int) -> Report:
    """The safety alarm report of ``period``: alarms raised inside it, with their handling times."""
    eps = sorted(
        (e for r in records for e in episodes(r) if period.start_ms <= e.raised_ms < period.end_ms),
        key=lambda e: (e.site, e.device, e.raised_ms),
    )
    alarms: list[tuple[Cell, ...]] = [
        (
            e.site,
            e.device,
            e.rule,
            e.severity,
            beijing_text(e.raised_ms),
            None if e.ack_ms is None else _minutes(e.ack_ms - e.raised_ms),
            None if e.closed_ms is None else _minutes(e.closed_ms - e.raised_ms),
        )
        for e in eps
    ]
    by_detector: dict[tuple[str, str], list[Episode]] = defaultdict(list)
    by_site: dict[str, list[Episode]] = defaultdict(list)
    for e in eps:
        by_detector[(e.site, e.device)].append(e)
        by_site[e.site].append(e)

    def acks(es: list[Episode]) -> list[int]:
        return [e.ack_ms - e.raised_ms for e in es if e.ack_ms is not None]

    def closes(es: list[Episode]) -> list[int]:
        return [e.closed_ms - e.raised_ms for e in es if e.closed_ms is not None]

    detectors: list[tuple[Cell, ...]] = []
    for key, es in sorted(by_detector.items()):
        a, c = acks(es), closes(es)
        detectors.append(
            (
                *key,
                len(es),
                len(es) - len(a),
                len(es) - len(c),
                _mean(a),
                _minutes(max(a)) if a else None,
                _mean(c),
                _minutes(max(c)) if c else None,
            )
        )
    enterprises: list[tuple[Cell, ...]] = [
        (site, len({e.device for e in es}), len(es), _mean(acks(es)), _mean(closes(es)))
        for site, es in sorted(by_site.items())
    ]
    kind_zh = "日报" if period.kind == "day" else "月报"
    return Report(
        kind="safety",
        title=f"安全生产报警{kind_zh} {period.label}",
        title_en=f"Work safety alarms, {period.kind} report",
        standards=("GB/T 50493-2019", "ISA-18.2 报警生命周期"),
        period=period,
        scope=scope,
        generated_ms=generated_ms,
        tables=(
            Table("enterprises", "各企业报警汇总", _ENTERPRISES, tuple(enterprises)),
            Table("detectors", "各探测器报警与处置用时", _DETECTORS, tuple(detectors)),
            Table("alarms", "报警明细", _ALARMS, tuple(alarms)),
        ),
        totals=(
            Total("enterprises", "报警企业数", len(by_site)),
            Total("alarms", "报警次数", len(eps)),
            Total("unacked", "未确认", len(eps) - len(acks(eps))),
            Total("open", "未关闭", len(eps) - len(closes(eps))),
            Total("ack_mean_min", "平均确认用时(分钟)", _mean(acks(eps))),
            Total("close_mean_min", "平均关闭用时(分钟)", _mean(closes(eps))),
        ),
    )
