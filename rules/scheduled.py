"""Scheduled evaluation of ``window`` rules: a statistic of a point over a calendar hour or day, read from InfluxDB
once the period is over (plus ``delay_s`` for late data), against the rule's levels; and no-data checks.

``WindowEvaluator`` is the core: one InfluxQL request per rule and period, verdicts per device turned into the same
``Transition``s (and alert keys: rule, site, device, point) as the streaming ``Engine``, state that survives a restart.
``ScheduledRules`` is the shell: APScheduler cron jobs that call ``run_due`` and hand transitions to a sink.
The pure parts (calendar periods, the query, reading values, verdicts) live in ``rules._windows``; their
public names are re-exported here.

Choices: a device with no usable statistic in a period (no rows, or fewer than ``min_count`` samples) gets no verdict,
so an alert it holds is kept, never cleared by silence; a no-data rule is what reports silence. Devices that a
count rule checks are those with samples of the point in the lookback (default 7 days) and those holding its alert.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler  # type: ignore[import-untyped]
from apscheduler.triggers.cron import CronTrigger  # type: ignore[import-untyped]

from device_profiles import load_catalogue
from infra.metrics import Metric, counter, gauge, render
from rules._windows import (
    DAY_MS,
    HOUR_MS,
    Assessment,
    Period,
    WindowState,
    WindowValue,
    judge,
    latest_due_end,
    period_bounds,
    read_values,
    window_of,
    window_query,
    window_threshold,
)
from rules.evaluate import Key, Transition
from rules.schema import Rule
from rules.valid_means import ValidMeans
from storage import QueryError, QueryUnavailableError, Series, WriteProblem

__all__ = [
    "DAY_MS",
    "HOUR_MS",
    "STATE_VERSION",
    "Assessment",
    "Counters",
    "Period",
    "QuerySource",
    "ScheduledRules",
    "Sink",
    "Wakeup",
    "WindowEvaluator",
    "WindowState",
    "WindowValue",
    "judge",
    "latest_due_end",
    "period_bounds",
    "read_values",
    "wakeups",
    "window_query",
    "window_threshold",
]

log = logging.getLogger(__name__)

Sink = Callable[[list[Transition]], Awaitable[None]]
STATE_VERSION = 1


class QuerySource(Protocol):
    """What the evaluator needs of ``storage.InfluxQuery`` (a fake in unit tests)."""

    retention_policy: str | None

    async def query(self, influxql: str, epoch: str = "ms") -> list[Series]: ...


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
            w = window_of(rule)
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
        w = window_of(rule)
        start, end = period_bounds(w.period, w.timezone, period_end_ms - 1)
        if end != period_end_ms:
            raise ValueError(f"{period_end_ms} is not the end of a {w.period} in {w.timezone}")
        influxql = window_query(
            rule,
            self.measurements,
            start,
            end,
            lookback_start_ms=end - self.lookback_ms,
            retention_policy=self.query.retention_policy,
        )
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
    periods_invalid: int = 0  # source valid: a device's period had no valid mean (no verdict)
    means_failures: int = 0  # the valid-means job failed unexpectedly (logged): the window rules still ran


class ScheduledRules:
    """Runs a ``WindowEvaluator`` on APScheduler cron jobs (``wakeups``) and hands each period's transitions to
    ``sink`` (only when there are any), before the evaluator commits them: a sink that raises gets the same
    transitions again at the next run (at least once), and the exception reaches the scheduler, which logs it.

    A failed InfluxDB query is logged once (and once on recovery), counted, and retried at the next run; it never
    raises and never clears an alert.
    """

    def __init__(
        self,
        evaluator: WindowEvaluator,
        sink: Sink,
        clock: Callable[[], float] = time.time,
        *,
        means: ValidMeans | None = None,
    ) -> None:
        self.evaluator = evaluator
        self.means = means  # valid means, stored before the rules of each run read them (rules.valid_means)
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
        for wk in sorted(set(wakeups(self.evaluator.rules.values())) | set(self._means_wakeups()), key=lambda x: x.id):
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

    def _means_wakeups(self) -> list[Wakeup]:
        if self.means is None:
            return []
        delay = int(-(-self.means.config.delay_s // 1))
        return [Wakeup(self.means.config.timezone, None, (delay // 60) % 60, delay % 60)]

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
            await self._run_means(now_ms)
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
                for (site, device), why in sorted(assessment.invalid.items()):
                    self.counters.periods_invalid += 1  # no verdict: an alert held stays, nothing is raised
                    log.info(
                        "window rule period has no valid mean rule=%s site=%s device=%s %s", rule.id, site, device, why
                    )
                if assessment.transitions:
                    await self.sink(list(assessment.transitions))
                out += self.evaluator.apply(assessment)
                self.counters.windows_evaluated += 1
                self.counters.transitions += len(assessment.transitions)
        return out

    async def _run_means(self, now_ms: int) -> None:
        if self.means is None:
            return
        try:
            await self.means.run_due(now_ms)
        except QueryError as exc:  # unavailable or refused: retried at the next run; the rules still run
            self.counters.query_failures += 1
            log.warning("valid means not stored, retrying at the next run error=%s", exc.message)
        except WriteProblem as exc:  # InfluxDB took no writes after storage's retries: the next run tries again
            self.counters.query_failures += 1
            log.warning("valid means not stored, retrying at the next run error=%s", exc.reason)
        except Exception:  # a defect in the job (a bad mean is refused per source there) never stops the rules
            self.counters.means_failures += 1
            log.exception("valid means job failed, retrying at the next run; the window rules run on")

    def _note_skipped(self, now_ms: int) -> None:
        ev = self.evaluator
        firsts: dict[str, tuple[Rule, int]] = {}
        for rule, end in ev.due(now_ms):
            firsts.setdefault(rule.id, (rule, end))
        for rule, first in firsts.values():
            last = ev.last_evaluated.get(rule.id)
            w = window_of(rule)
            if last is None or period_bounds(w.period, w.timezone, first - 1)[0] <= last:
                continue
            skipped = round((first - last) / (HOUR_MS if w.period == "hour" else DAY_MS)) - 1
            self.counters.periods_skipped += skipped
            log.warning(
                "window rule periods not judged (down too long) rule=%s skipped=%d last_evaluated=%d",
                rule.id,
                skipped,
                last,
            )
            ev.last_evaluated[rule.id] = period_bounds(w.period, w.timezone, first - 1)[0]

    def _failed(self, rule: Rule, end: int, exc: QueryError) -> None:
        self.counters.query_failures += 1
        unavailable = isinstance(exc, QueryUnavailableError)
        if unavailable and self.influx_ok:
            self.influx_ok = False
            log.warning(
                "window rules: InfluxDB unavailable, retrying at the next run rule=%s period_end=%d error=%s",
                rule.id,
                end,
                exc.message,
            )
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
        return render(self)

    def collect(self) -> Iterator[Metric]:
        c = self.counters
        counters = {
            "windows_evaluated_total": ("rule periods judged", c.windows_evaluated),
            "transitions_total": ("alert transitions from window rules", c.transitions),
            "query_failures_total": ("InfluxDB queries that failed (retried at the next run)", c.query_failures),
            "periods_skipped_total": ("periods missed beyond the catch-up bound, never judged", c.periods_skipped),
            "periods_invalid_total": ("device periods without a valid mean (no verdict)", c.periods_invalid),
        }
        for name, (help_text, value) in counters.items():
            yield counter(f"lifeline_window_{name}", help_text, value)
        yield counter(
            "lifeline_valid_means_failures_total", "valid-means runs that failed unexpectedly", c.means_failures
        )
        if self.means is not None:
            m = self.means.counters
            means_counters = {
                "refused_total": ("hourly means refused (a negative concentration), stored invalid", m.refused_means),
                "index_failures_total": ("source periods whose AQI could not be computed (logged)", m.index_failures),
                "invalid_total": ("point means stored as invalid", m.invalid),
            }
            for name, (help_text, value) in means_counters.items():
                yield counter(f"lifeline_valid_means_{name}", help_text, value)
        yield gauge("lifeline_window_influx_ok", "1: the last InfluxDB query succeeded", int(self.influx_ok))
