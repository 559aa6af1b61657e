"""The pure parts of window rules: calendar periods, the InfluxQL for a rule and period, each device's statistic
read from the answer, and the verdicts judged from those statistics and the alerts held. No I/O and no clock.

``rules.scheduled`` runs them (``WindowEvaluator``, ``ScheduledRules``) and re-exports the public names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Literal
from zoneinfo import ZoneInfo

from rules._conditions import threshold_target
from rules.evaluate import Key, Transition
from rules.evidence import Evidence
from rules.schema import SEVERITY_RANK, Level, Rule, Threshold, Window, severity_of
from storage.influxql import Aggregate
from storage.queries import Col, valid_measurement
from storage.queries import window_query as _stats_query
from storage.reader import Series
from storage.schema import DEVICE, PROFILE, SITE

Period = Literal["hour", "day"]
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


# --- calendar periods ------------------------------------------------------------------------------------------
def period_bounds(period: Period, timezone: str, ts_ms: int) -> tuple[int, int]:
    """The calendar period ``[start_ms, end_ms)`` in ``timezone`` that holds ``ts_ms``.

    An hour runs from a local hh:00 for 3600 s; a day from local 00:00 to the next local 00:00 (23 or 25 h on a
    DST change day; Asia/Shanghai has none).
    """
    tz = ZoneInfo(timezone)
    local = datetime.fromtimestamp(ts_ms // 1000, tz)
    if period == "hour":
        start = int(local.replace(minute=0, second=0, microsecond=0).timestamp()) * 1000
        return start, start + HOUR_MS
    day = local.date()
    return _midnight(day, tz), _midnight(day + timedelta(days=1), tz)


def _midnight(day: date, tz: ZoneInfo) -> int:
    return int(datetime.combine(day, dtime(0), tz).timestamp()) * 1000


def latest_due_end(window: Window, now_ms: int) -> int:
    """The end of the newest period that ended at least ``delay_s`` before ``now_ms``."""
    return period_bounds(window.period, window.timezone, now_ms - int(window.delay_s * 1000))[0]


def _span(window: Window, start_ms: int) -> str:
    local = datetime.fromtimestamp(start_ms // 1000, ZoneInfo(window.timezone))
    offset = local.strftime("%z")
    offset = f"{offset[:3]}:{offset[3:]}"
    if window.period == "hour":
        return f"{local:%Y-%m-%d %H:00}–{(local + timedelta(hours=1)):%H:00} {offset}"
    return f"{local:%Y-%m-%d} ({offset})"


# --- the query ---------------------------------------------------------------------------------------------------
_RAW_STATS: dict[str, Aggregate] = {"mean": "mean", "max": "max", "min": "min"}  # InfluxQL's functions


def window_query(
    rule: Rule,
    measurements: Mapping[str, str],
    start_ms: int,
    end_ms: int,
    *,
    lookback_start_ms: int | None = None,
    retention_policy: str | None = None,
) -> str:
    """The InfluxQL statements (one request) for one rule and period (``storage.queries.window_query``).

    ``"value"``/``"n"``: the statistic and the sample count per device; ``"u_sum"``/``"u_n"`` (exclude_uncertain):
    the same over uncertain samples only, to subtract; ``"seen"`` (count rules): the devices of the lookback.
    """
    w = window_of(rule)
    sel = rule.select
    names = list(dict.fromkeys(measurements[p] for p in sel.profile or []))
    if w.source == "valid":  # the stored valid means of rules.valid_means (or a derived index, rules.indices)
        names = [valid_measurement(n, w.period, w.index) for n in names]
    tags: dict[str, list[str]] = {PROFILE: sel.profile or [], SITE: sel.site or [], DEVICE: sel.device or []}
    tags |= {k: [v] for k, v in sorted(sel.tags.items())}
    counted = w.nodata or w.stat == "count"
    return _stats_query(
        names,
        w.point,
        start_ms,
        end_ms,
        tags=tags,
        stat=None if counted or w.source == "valid" else _RAW_STATS[w.stat],
        stored_field=w.stored_field if w.source == "valid" else None,
        exclude_uncertain=w.exclude_uncertain and w.source != "valid",
        lookback_start_ms=lookback_start_ms if counted else None,
        retention_policy=retention_policy,
    )


@dataclass(frozen=True, slots=True)
class WindowValue:
    """One device's statistic over a period; ``value`` None when it had no usable sample."""

    site: str
    device: str
    value: float | None
    count: int
    profile: str | None = None
    invalid: str | None = None  # source valid: why the period has no valid mean (e.g. "invalid: 44 of 60 minutes")


def read_values(
    rule: Rule, series: Iterable[Series], profiles: Mapping[str, str]
) -> dict[tuple[str, str], WindowValue]:
    """Per (site, device): the statistic of the rule's window from the answer to ``window_query``.

    ``profiles`` maps a measurement to the rule's profile stored there, to name a device's profile.
    """
    w = window_of(rule)
    counted = w.nodata or w.stat == "count"
    main: dict[tuple[str, str], dict[str, object]] = {}
    uncertain: dict[tuple[str, str], dict[str, object]] = {}
    where: dict[tuple[str, str], str] = {}
    for s in series:
        key = (s.tags.get(SITE, ""), s.tags.get(DEVICE, ""))
        where.setdefault(key, s.name)
        for row in s.rows():
            if Col.SEEN in row:
                main.setdefault(key, {})  # a device of the lookback: counted as 0 unless the period has rows
            else:
                (uncertain if Col.UNCERTAIN_COUNT in row else main).setdefault(key, {}).update(row)
    out: dict[tuple[str, str], WindowValue] = {}
    for key, row in main.items():
        if w.source == "valid":
            invalid = row.get(Col.INVALID)
            value = _float(row.get(Col.VALUE))
            why = str(invalid) if isinstance(invalid, str) and value is None else None
            out[key] = WindowValue(key[0], key[1], value, _int(row.get(Col.COUNT)), profiles.get(where[key]), why)
            continue
        n = _int(row.get(Col.COUNT))
        value = float(n) if counted else _float(row.get(Col.VALUE))
        if w.exclude_uncertain:
            u = uncertain.get(key, {})
            n -= _int(u.get(Col.UNCERTAIN_COUNT))
            if counted:
                value = float(n)
            elif value is not None:
                value = (value - (_float(u.get(Col.UNCERTAIN_SUM)) or 0.0)) / n if n > 0 else None
        out[key] = WindowValue(key[0], key[1], value, n, profiles.get(where[key]))
    return out


def _int(v: object) -> int:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0


def _float(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


# --- verdicts ----------------------------------------------------------------------------------------------------
def window_of(rule: Rule) -> Window:
    if rule.window is None:
        raise ValueError(f"rule {rule.id!r} is not a window rule")
    return rule.window


def window_threshold(rule: Rule) -> Threshold:
    """The window's levels as a ``Threshold`` (a nodata check: fewer than 1 sample raises the rule's severity)."""
    w = window_of(rule)
    if w.nodata:
        assert rule.severity is not None  # the schema requires it for nodata
        return Threshold(point=w.point, direction="low", strict=True, levels=[Level(severity=rule.severity, value=1)])
    assert w.direction is not None  # the schema requires it without nodata
    return Threshold(point=w.point, direction=w.direction, levels=w.levels, deadband=w.deadband, strict=w.strict)


@dataclass(slots=True)
class WindowState:
    """An active alert of a window rule (cleared alerts are not kept)."""

    active: str
    value: float | None
    period_end: int
    profile: str | None = None


@dataclass(frozen=True, slots=True)
class Assessment:
    """The verdicts for one rule and period, not yet applied (``WindowEvaluator.apply`` commits them)."""

    rule: str
    period_end: int
    transitions: list[Transition]
    states: dict[Key, WindowState | None] = field(default_factory=dict)  # None: the alert is cleared
    invalid: dict[tuple[str, str], str] = field(default_factory=dict)  # (site, device): why no verdict (source valid)


def judge(
    rule: Rule,
    threshold: Threshold,
    period_end_ms: int,
    values: Mapping[tuple[str, str], WindowValue],
    held: Mapping[Key, WindowState],
) -> Assessment:
    """Pure: the transitions for one period from each device's value and the alerts ``held`` before it."""
    w = window_of(rule)
    counted = w.nodata or w.stat == "count"
    devices = set(values) | {(k[1], k[2]) for k in held if k[0] == rule.id}
    if counted:  # a device of the lookback, or with an alert, that has no row in the period sent nothing
        values = {d: values.get(d) or WindowValue(d[0], d[1], 0.0, 0) for d in devices}
    out = Assessment(rule.id, period_end_ms, [])
    start = period_bounds(w.period, w.timezone, period_end_ms - 1)[0]
    for site, device in sorted(devices):
        key = (rule.id, site, device, w.point)
        old = held.get(key)
        wv = values.get((site, device))
        if wv is not None and wv.invalid is not None:
            out.invalid[(site, device)] = f"{w.stored_field} {_span(w, start)}: {wv.invalid}"
        if wv is None or wv.value is None or (w.source == "raw" and not counted and wv.count < w.min_count):
            continue  # no verdict: an alert held stays
        active = old.active if old else None
        target = threshold_target(threshold, wv.value, active)
        if target == active:
            continue
        profile = wv.profile or (old.profile if old else None)
        out.states[key] = WindowState(target, wv.value, period_end_ms, profile) if target else None
        verb = "cleared" if target is None else ("raised" if active is None else "now " + target)
        value = int(wv.value) if counted else wv.value
        raised = target is not None and (active is None or SEVERITY_RANK[target] > SEVERITY_RANK[active])
        out.transitions.append(
            Transition(
                rule.id,
                site,
                device,
                w.point,
                severity_of(target),
                severity_of(active),
                value,
                period_end_ms,
                f"{rule.title} {verb}: {_describe(w, wv, start)}",
                profile,
                Evidence(window=_figures(w, wv, start, period_end_ms)) if raised else None,
            )
        )
    return out


def _figures(w: Window, wv: WindowValue, start_ms: int, end_ms: int) -> dict[str, object]:
    """A window verdict's evidence: what was judged, over which period, from how many samples."""
    figures: dict[str, object] = {
        "point": w.point,
        "stat": "count" if w.nodata else w.stat,
        "source": w.source,
        "period": w.period,
        "start_ms": start_ms,
        "end_ms": end_ms,
        "value": wv.value,
        "count": wv.count,
    }
    if w.index is not None:
        figures["index"] = w.index
    if w.source == "valid":
        figures["field"] = w.stored_field
    return figures


def _describe(w: Window, wv: WindowValue, start_ms: int) -> str:
    span = _span(w, start_ms)
    if w.nodata or w.stat == "count":
        return f"{wv.count} samples of {w.point} in {span}"
    assert wv.value is not None
    every = "hourly" if w.period == "hour" else "daily"
    if w.index is not None:
        return f"{every} {w.point} = {wv.value:g} in {span}"
    if w.source == "valid":
        what = "maximum 8-hour mean" if w.stat == "max_8h" else "valid mean"
        counted = (
            "valid minutes" if w.period == "hour" else ("valid 8-hour means" if w.stat == "max_8h" else "valid hours")
        )
        return f"{every} {what} of {w.point} = {wv.value:g} in {span} ({wv.count} {counted})"
    return f"{every} {w.stat} of {w.point} = {wv.value:g} in {span} ({wv.count} samples)"
