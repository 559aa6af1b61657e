"""Scheduled evaluation of ``window`` rules: a statistic of a point over a calendar hour or day, read from InfluxDB
once the period is over (plus ``delay_s`` for late data), against the rule's levels; and no-data checks.

``WindowEvaluator`` is the core: one InfluxQL request per rule and period, verdicts per device turned into the same
``Transition``s (and alert keys: rule, site, device, point) as the streaming ``Engine``, state that survives a restart.
``ScheduledRules`` is the shell: APScheduler cron jobs that call ``run_due`` and hand transitions to a sink.

Choices: a device with no usable statistic in a period (no rows, or fewer than ``min_count`` samples) gets no verdict,
so an alert it holds is kept, never cleared by silence; a no-data rule is what reports silence. Devices that a
count rule checks are those with samples of the point in the lookback (default 7 days) and those holding its alert.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from datetime import time as dtime
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

from device_profiles import load_catalogue
from rules._conditions import threshold_target
from rules.evaluate import Key, Transition
from rules.schema import Level, Rule, Threshold, Window
from telemetry.influx_query import QUALITY_SUFFIX, QueryError, QueryUnavailableError, Series, quote_ident, quote_string

log = logging.getLogger(__name__)

Period = Literal["hour", "day"]
Sink = Callable[[list[Transition]], Awaitable[None]]
STATE_VERSION = 1
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


class QuerySource(Protocol):
    """What the evaluator needs of ``telemetry.influx_query.InfluxQuery`` (a fake in unit tests)."""

    retention_policy: str | None

    async def query(self, influxql: str, epoch: str = "ms") -> list[Series]: ...


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
def window_query(
    rule: Rule,
    measurements: Mapping[str, str],
    start_ms: int,
    end_ms: int,
    *,
    lookback_start_ms: int | None = None,
    retention_policy: str | None = None,
) -> str:
    """The InfluxQL statements (one request) for one rule and period; every name and value quoted.

    ``"value"``/``"n"``: the statistic and the sample count per device; ``"u_sum"``/``"u_n"`` (exclude_uncertain):
    the same over uncertain samples only, to subtract; ``"seen"`` (count rules): the devices of the lookback.
    """
    w = _window(rule)
    sel = rule.select
    names = list(dict.fromkeys(measurements[p] for p in sel.profile or []))
    rp = f"{quote_ident(retention_policy)}." if retention_policy else ""
    source = ",".join(rp + quote_ident(m) for m in names)
    tags = [_any_of("profile", sel.profile), _any_of("site", sel.site), _any_of("device", sel.device)]
    tags += [f"{quote_ident(k)} = {quote_string(v)}" for k, v in sorted(sel.tags.items())]
    filters = "".join(f" AND {t}" for t in tags if t)
    p = quote_ident(w.point)
    group = ' GROUP BY "site","device"'

    def statement(columns: str, since: int, extra: str = "") -> str:
        return f"SELECT {columns} FROM {source} WHERE time >= {int(since)}ms AND time < {int(end_ms)}ms{filters}{extra}"

    counted = w.nodata or w.stat == "count"
    columns = f'count({p}) AS "n"'
    if not counted:
        columns = f'{"sum" if w.exclude_uncertain else w.stat}({p}) AS "value", ' + columns
    out = [statement(columns, start_ms) + group]
    if w.exclude_uncertain:
        q = quote_ident(w.point + QUALITY_SUFFIX)
        out.append(statement(f'sum({p}) AS "u_sum", count({p}) AS "u_n"', start_ms, f" AND {q} = 1") + group)
    if counted and lookback_start_ms is not None:
        out.append(statement(f'count({p}) AS "seen"', lookback_start_ms) + group)
    return "; ".join(out)


def _any_of(tag: str, values: list[str] | None) -> str:
    if not values:
        return ""
    terms = [f"{quote_ident(tag)} = {quote_string(v)}" for v in values]
    return terms[0] if len(terms) == 1 else "(" + " OR ".join(terms) + ")"


@dataclass(frozen=True, slots=True)
class WindowValue:
    """One device's statistic over a period; ``value`` None when it had no usable sample."""

    site: str
    device: str
    value: float | None
    count: int
    profile: str | None = None


def read_values(
    rule: Rule, series: Iterable[Series], profiles: Mapping[str, str]
) -> dict[tuple[str, str], WindowValue]:
    """Per (site, device): the statistic of the rule's window from the answer to ``window_query``.

    ``profiles`` maps a measurement to the rule's profile stored there, to name a device's profile.
    """
    w = _window(rule)
    counted = w.nodata or w.stat == "count"
    main: dict[tuple[str, str], dict[str, object]] = {}
    uncertain: dict[tuple[str, str], dict[str, object]] = {}
    where: dict[tuple[str, str], str] = {}
    for s in series:
        key = (s.tags.get("site", ""), s.tags.get("device", ""))
        where.setdefault(key, s.name)
        for row in s.rows():
            if "seen" in row:
                main.setdefault(key, {})  # a device of the lookback: counted as 0 unless the period has rows
            else:
                (uncertain if "u_n" in row else main).setdefault(key, {}).update(row)
    out: dict[tuple[str, str], WindowValue] = {}
    for key, row in main.items():
        n = _int(row.get("n"))
        value = float(n) if counted else _float(row.get("value"))
        if w.exclude_uncertain:
            u = uncertain.get(key, {})
            n -= _int(u.get("u_n"))
            if counted:
                value = float(n)
            elif value is not None:
                value = (value - (_float(u.get("u_sum")) or 0.0)) / n if n > 0 else None
        out[key] = WindowValue(key[0], key[1], value, n, profiles.get(where[key]))
    return out


def _int(v: object) -> int:
    return int(v) if isinstance(v, int | float) and not isinstance(v, bool) else 0


def _float(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


# --- verdicts ----------------------------------------------------------------------------------------------------
def _window(rule: Rule) -> Window:
    if rule.window is None:
        raise ValueError(f"rule {rule.id!r} is not a window rule")
    return rule.window


def window_threshold(rule: Rule) -> Threshold:
    """The window's levels as a ``Threshold`` (a nodata check: fewer than 1 sample raises the rule's severity)."""
    w = _window(rule)
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


def judge(
    rule: Rule,
    threshold: Threshold,
    period_end_ms: int,
    values: Mapping[tuple[str, str], WindowValue],
    held: Mapping[Key, WindowState],
) -> Assessment:
    """Pure: the transitions for one period from each device's value and the alerts ``held`` before it."""
    w = _window(rule)
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
        if wv is None or wv.value is None or (not counted and wv.count < w.min_count):
            continue  # no verdict: an alert held stays
        active = old.active if old else None
        target = threshold_target(threshold, wv.value, active)
        if target == active:
            continue
        profile = wv.profile or (old.profile if old else None)
        out.states[key] = WindowState(target, wv.value, period_end_ms, profile) if target else None
        verb = "cleared" if target is None else ("raised" if active is None else "now " + target)
        value = int(wv.value) if counted else wv.value
        out.transitions.append(
            Transition(rule.id, site, device, w.point, target, active, value, period_end_ms,
                       f"{rule.title} {verb}: {_describe(w, wv, start)}", profile)
        )  # fmt: skip
    return out


def _describe(w: Window, wv: WindowValue, start_ms: int) -> str:
    span = _span(w, start_ms)
    if w.nodata or w.stat == "count":
        return f"{wv.count} samples of {w.point} in {span}"
    assert wv.value is not None
    every = "hourly" if w.period == "hour" else "daily"
    return f"{every} {w.stat} of {w.point} = {wv.value:g} in {span} ({wv.count} samples)"


# --- the evaluator -----------------------------------------------------------------------------------------------
class WindowEvaluator:
    """Judges ``window`` rules (other rules given are ignored) over past periods; holds their alerts.

    ``measurements`` maps a profile to its InfluxDB measurement (default: the shipped catalogue); every profile a
    window rule selects must be in it (checked here, before any query). ``last_evaluated[rule id]`` is the end of
    the newest period judged; ``due`` catches up at most ``max_catchup`` periods after it.
    """

    def __init__(
        self,
        rules: Iterable[Rule],
        query: QuerySource,
        *,
        measurements: Mapping[str, str] | None = None,
        lookback_s: float = 7 * 86400,
        max_catchup: int = 24,
    ) -> None:
        self.rules = {r.id: r for r in rules if r.window is not None}
        self.query = query
        if measurements is None:
            measurements = {name: p.measurement for name, p in load_catalogue().items()}
        unknown = sorted(
            {f"{r.id}: {p}" for r in self.rules.values() for p in r.select.profile or [] if p not in measurements}
        )
        if unknown:
            raise ValueError(f"window rules select profiles with no known measurement: {', '.join(unknown)}")
        self.measurements = dict(measurements)
        self.lookback_ms = int(lookback_s * 1000)
        self.max_catchup = max(1, max_catchup)
        self.last_evaluated: dict[str, int] = {}
        self._alerts: dict[Key, WindowState] = {}
        self._thresholds = {rid: window_threshold(r) for rid, r in self.rules.items()}

    # --- persistence -------------------------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """Active alerts and ``last_evaluated`` as a JSON-safe dict (see ``from_state``)."""
        alerts = [
            {"rule": k[0], "site": k[1], "device": k[2], "point": k[3], **asdict(st)} for k, st in self._alerts.items()
        ]
        return {"version": STATE_VERSION, "alerts": alerts, "last_evaluated": dict(self.last_evaluated)}

    @classmethod
    def from_state(
        cls,
        rules: Iterable[Rule],
        query: QuerySource,
        data: Mapping[str, Any],
        *,
        measurements: Mapping[str, str] | None = None,
        lookback_s: float = 7 * 86400,
        max_catchup: int = 24,
    ) -> WindowEvaluator:
        """An evaluator that continues from ``data``; state of rules no longer present is dropped."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"window rule state version {data.get('version')!r} is not {STATE_VERSION}")
        ev = cls(rules, query, measurements=measurements, lookback_s=lookback_s, max_catchup=max_catchup)
        for raw in data.get("alerts", []):
            item = dict(raw)
            key = (item.pop("rule"), item.pop("site"), item.pop("device"), item.pop("point"))
            if key[0] in ev.rules:
                ev._alerts[key] = WindowState(**item)
        ev.last_evaluated = {r: int(t) for r, t in data.get("last_evaluated", {}).items() if r in ev.rules}
        return ev

    def active(self) -> dict[Key, str]:
        return {k: st.active for k, st in self._alerts.items()}

    # --- evaluation --------------------------------------------------------------------------------------------
    def due(self, now_ms: int) -> list[tuple[Rule, int]]:
        """(rule, period end) of every period due at ``now_ms`` and not judged yet, oldest first per rule.

        A rule never judged gets only its newest due period; one judged before catches up at most ``max_catchup``.
        """
        out: list[tuple[Rule, int]] = []
        for rule in self.rules.values():
            w = _window(rule)
            last = self.last_evaluated.get(rule.id)
            ends: list[int] = []
            end = latest_due_end(w, now_ms)
            while (last is None or end > last) and len(ends) < (1 if last is None else self.max_catchup):
                ends.append(end)
                end = period_bounds(w.period, w.timezone, end - 1)[0]
            out.extend((rule, e) for e in reversed(ends))
        return out

    async def assess(self, rule: Rule, period_end_ms: int) -> Assessment:
        """Query the period that ends at ``period_end_ms`` and judge it; nothing changes until ``apply``.

        Raises ``QueryUnavailableError`` (InfluxDB unreachable or 5xx) or ``QueryError`` (refused).
        """
        w = _window(rule)
        start, end = period_bounds(w.period, w.timezone, period_end_ms - 1)
        if end != period_end_ms:
            raise ValueError(f"{period_end_ms} is not the end of a {w.period} in {w.timezone}")
        influxql = window_query(
            rule, self.measurements, start, end,
            lookback_start_ms=end - self.lookback_ms, retention_policy=self.query.retention_policy,
        )  # fmt: skip
        series = await self.query.query(influxql)
        profiles = {self.measurements[p]: p for p in rule.select.profile or []}
        values = read_values(rule, series, profiles)
        return judge(rule, self._thresholds[rule.id], end, values, self._alerts)

    def apply(self, assessment: Assessment) -> list[Transition]:
        """Commit an ``assess`` result: alerts move, ``last_evaluated`` advances. Returns its transitions."""
        for key, st in assessment.states.items():
            if st is None:
                self._alerts.pop(key, None)
            else:
                self._alerts[key] = st
        rid = assessment.rule
        self.last_evaluated[rid] = max(self.last_evaluated.get(rid, assessment.period_end), assessment.period_end)
        return list(assessment.transitions)

    async def evaluate(self, rule: Rule, period_end_ms: int) -> list[Transition]:
        """``assess`` and ``apply`` one period of one rule (periods of a rule are meant to be judged in order)."""
        return self.apply(await self.assess(rule, period_end_ms))


# --- the schedule --------------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Wakeup:
    """A cron wake-up: every hour at ``minute:second`` (``hour`` None), or every day at ``hour:minute:second``."""

    timezone: str
    hour: int | None
    minute: int
    second: int

    @property
    def id(self) -> str:
        at = f"{self.hour:02d}:" if self.hour is not None else "hh:"
        return f"window {at}{self.minute:02d}:{self.second:02d} {self.timezone}"


def wakeups(rules: Iterable[Rule]) -> list[Wakeup]:
    """One wake-up per distinct (period, time zone, delay): the period's local boundary plus ``delay_s``.

    A wake-up only calls ``run_due``, which judges whatever is due; a delay longer than the period still works,
    it just wraps (an hourly rule with ``delay_s`` 3720 wakes at hh:02 and judges the hour before last).
    """
    out: set[Wakeup] = set()
    for rule in rules:
        if (w := rule.window) is None:
            continue
        delay = int(-(-w.delay_s // 1))  # whole seconds, rounded up so the period is due when it fires
        hour = (delay // 3600) % 24 if w.period == "day" else None
        out.add(Wakeup(w.timezone, hour, (delay // 60) % 60, delay % 60))
    return sorted(out, key=lambda x: x.id)


@dataclass(slots=True)
class Counters:
    windows_evaluated: int = 0
    transitions: int = 0
    query_failures: int = 0
    periods_skipped: int = 0  # missed for longer than max_catchup periods: never judged


class ScheduledRules:
    """Runs a ``WindowEvaluator`` on APScheduler cron jobs (``wakeups``) and hands each period's transitions to
    ``sink`` (only when there are any), before the evaluator commits them: a sink that raises gets the same
    transitions again at the next run (at least once), and the exception reaches the scheduler, which logs it.

    A failed InfluxDB query is logged once (and once on recovery), counted, and retried at the next run; it never
    raises and never clears an alert.
    """

    def __init__(self, evaluator: WindowEvaluator, sink: Sink, clock: Callable[[], float] = time.time) -> None:
        self.evaluator = evaluator
        self.sink = sink
        self.clock = clock
        self.counters = Counters()
        self.influx_ok = True
        self._refused: set[str] = set()  # rules whose query InfluxDB refuses (logged once each)
        self._lock = asyncio.Lock()
        self._scheduler: Any = None  # AsyncIOScheduler (untyped)
        self._stopped = False

    def start(self) -> None:
        """Start the cron jobs on the running event loop, and one run now to catch up missed periods."""
        self._stopped = False
        scheduler = AsyncIOScheduler(timezone="UTC")
        for wk in wakeups(self.evaluator.rules.values()):
            trigger = CronTrigger(hour=wk.hour, minute=wk.minute, second=wk.second, timezone=wk.timezone)
            scheduler.add_job(self._job, trigger, id=wk.id, coalesce=True, max_instances=1, misfire_grace_time=None)
        scheduler.add_job(self._job, id="window catch-up")  # no trigger: once, now
        scheduler.start()
        self._scheduler = scheduler

    async def stop(self) -> None:
        """Stop the jobs; a run in progress finishes first."""
        self._stopped = True
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)  # takes effect on the loop's next turn
            await asyncio.sleep(0)
        self._scheduler = None
        async with self._lock:
            pass

    def jobs(self) -> list[str]:
        """Ids of the scheduled jobs (empty when stopped)."""
        return [] if self._scheduler is None else sorted(j.id for j in self._scheduler.get_jobs())

    async def _job(self) -> None:
        if not self._stopped:
            await self.run_due(int(self.clock() * 1000))

    async def run_due(self, now_ms: int) -> list[Transition]:
        """Judge every period due at ``now_ms`` and not judged yet; the transitions, also given to the sink."""
        out: list[Transition] = []
        async with self._lock:
            self._note_skipped(now_ms)
            failed: set[str] = set()
            for rule, end in self.evaluator.due(now_ms):
                if rule.id in failed:
                    continue  # judge a rule's periods in order: wait for the one that failed
                try:
                    assessment = await self.evaluator.assess(rule, end)
                except QueryUnavailableError as exc:
                    self._failed(rule, end, exc)
                    break  # InfluxDB is down: every rule would fail; try again at the next run
                except QueryError as exc:
                    self._failed(rule, end, exc)
                    failed.add(rule.id)
                    continue
                self._succeeded(rule)
                if assessment.transitions:
                    await self.sink(list(assessment.transitions))
                out += self.evaluator.apply(assessment)
                self.counters.windows_evaluated += 1
                self.counters.transitions += len(assessment.transitions)
        return out

    def _note_skipped(self, now_ms: int) -> None:
        ev = self.evaluator
        firsts: dict[str, tuple[Rule, int]] = {}
        for rule, end in ev.due(now_ms):
            firsts.setdefault(rule.id, (rule, end))
        for rule, first in firsts.values():
            last = ev.last_evaluated.get(rule.id)
            w = _window(rule)
            if last is None or period_bounds(w.period, w.timezone, first - 1)[0] <= last:
                continue
            skipped = round((first - last) / (HOUR_MS if w.period == "hour" else DAY_MS)) - 1
            self.counters.periods_skipped += skipped
            log.warning("window rule periods not judged (down too long) rule=%s skipped=%d last_evaluated=%d",
                        rule.id, skipped, last)  # fmt: skip
            ev.last_evaluated[rule.id] = period_bounds(w.period, w.timezone, first - 1)[0]

    def _failed(self, rule: Rule, end: int, exc: QueryError) -> None:
        self.counters.query_failures += 1
        unavailable = isinstance(exc, QueryUnavailableError)
        if unavailable and self.influx_ok:
            self.influx_ok = False
            log.warning("window rules: InfluxDB unavailable, retrying at the next run rule=%s period_end=%d error=%s",
                        rule.id, end, exc.message)  # fmt: skip
        elif not unavailable and rule.id not in self._refused:
            self._refused.add(rule.id)
            log.error("window rule query refused rule=%s period_end=%d error=%s", rule.id, end, exc.message)

    def _succeeded(self, rule: Rule) -> None:
        if not self.influx_ok:
            self.influx_ok = True
            log.info("window rules: InfluxDB answers again failures=%d", self.counters.query_failures)
        if rule.id in self._refused:
            self._refused.discard(rule.id)
            log.info("window rule query accepted again rule=%s", rule.id)

    def metrics_text(self) -> str:
        """The counters in Prometheus text format."""
        c = self.counters
        counters = {
            "windows_evaluated_total": ("rule periods judged", c.windows_evaluated),
            "transitions_total": ("alert transitions from window rules", c.transitions),
            "query_failures_total": ("InfluxDB queries that failed (retried at the next run)", c.query_failures),
            "periods_skipped_total": ("periods missed beyond the catch-up bound, never judged", c.periods_skipped),
        }
        lines: list[str] = []
        for name, (help_text, value) in counters.items():
            lines += [f"# HELP lifeline_window_{name} {help_text}", f"# TYPE lifeline_window_{name} counter",
                      f"lifeline_window_{name} {value}"]  # fmt: skip
        lines += ["# TYPE lifeline_window_influx_ok gauge", f"lifeline_window_influx_ok {int(self.influx_ok)}"]
        return "\n".join(lines) + "\n"
