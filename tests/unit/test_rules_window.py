"""Window rules, pure parts: calendar periods in a time zone, schema validation, the InfluxQL built, verdicts from
given statistics with deadband, catch-up planning, state round trip, and the scheduler's handling of failures (with a
fake query; InfluxDB itself in tests/integration/test_rules_scheduled.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from infra.config_loader import ConfigError
from rules import Engine, Rule, ScheduledRules, Transition, WindowEvaluator, load_rules, period_bounds
from rules.scheduled import (
    Assessment,
    WindowState,
    WindowValue,
    judge,
    latest_due_end,
    read_values,
    wakeups,
    window_query,
    window_threshold,
)
from storage import QueryError, QueryUnavailableError, Series
from telemetry.models import Sample, Telemetry

HOUR = 3_600_000
MEASUREMENTS = {"flue_gas_cems": "flue_gas", "air_quality_station": "air_quality"}


def ms(text: str) -> int:
    """ISO time with offset -> epoch ms."""
    return int(datetime.fromisoformat(text).timestamp() * 1000)


def window_rule(**window: Any) -> Rule:
    body: dict[str, Any] = {"point": "so2", "period": "hour", "direction": "high", "deadband": 2.0}
    body["levels"] = [{"severity": "warning", "value": 35.0}, {"severity": "critical", "value": 100.0}]
    body.update(window)
    extra = {"severity": body.pop("severity")} if "severity" in body else {}
    if body.get("nodata"):
        for k in ("direction", "deadband", "levels"):
            body.pop(k, None)
    return Rule.model_validate(
        {"id": "w.so2", "title": "SO2 hourly", "select": {"profile": "flue_gas_cems"}, "window": body, **extra}
    )


NODATA = {"nodata": True, "severity": "warning"}


# --- periods -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("period", "zone", "at", "start", "end"),
    [
        pytest.param(
            "hour",
            "Asia/Shanghai",
            "2026-03-02T10:30:00+08:00",
            "2026-03-02T02:00:00+00:00",
            "2026-03-02T03:00:00+00:00",
            id="hour-shanghai-is-utc+8",
        ),
        pytest.param(
            "hour",
            "Asia/Shanghai",
            "2026-03-02T10:00:00+08:00",
            "2026-03-02T10:00:00+08:00",
            "2026-03-02T11:00:00+08:00",
            id="hour-start-belongs-to-it",
        ),
        pytest.param(
            "hour",
            "Asia/Shanghai",
            "2026-03-02T10:59:59.999+08:00",
            "2026-03-02T10:00:00+08:00",
            "2026-03-02T11:00:00+08:00",
            id="hour-last-ms",
        ),
        pytest.param(
            "day",
            "Asia/Shanghai",
            "2026-03-02T10:30:00+08:00",
            "2026-03-01T16:00:00+00:00",
            "2026-03-02T16:00:00+00:00",
            id="day-shanghai-midnight-is-16z",
        ),
        pytest.param(
            "day",
            "Asia/Shanghai",
            "2026-03-02T17:00:00+00:00",
            "2026-03-03T00:00:00+08:00",
            "2026-03-04T00:00:00+08:00",
            id="day-utc-evening-is-next-local-day",
        ),
        pytest.param(
            "day",
            "UTC",
            "2026-03-02T10:30:00+08:00",
            "2026-03-02T00:00:00+00:00",
            "2026-03-03T00:00:00+00:00",
            id="day-utc",
        ),
        pytest.param(
            "hour",
            "Asia/Kolkata",
            "2026-03-02T10:10:00+05:30",
            "2026-03-02T10:00:00+05:30",
            "2026-03-02T11:00:00+05:30",
            id="hour-half-hour-offset",
        ),
        pytest.param(
            "day",
            "Europe/Berlin",
            "2026-03-29T12:00:00+02:00",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00",
            id="day-dst-change-is-23h",
        ),
    ],
)
def test_period_bounds(period: Any, zone: str, at: str, start: str, end: str) -> None:
    assert period_bounds(period, zone, ms(at)) == (ms(start), ms(end))


@pytest.mark.parametrize(
    ("period", "delay_s", "now", "expected"),
    [
        pytest.param("hour", 120, "2026-03-02T11:01:59+08:00", "2026-03-02T10:00:00+08:00", id="hour-before-delay"),
        pytest.param("hour", 120, "2026-03-02T11:02:00+08:00", "2026-03-02T11:00:00+08:00", id="hour-at-delay"),
        pytest.param("day", 3600, "2026-03-03T00:59:00+08:00", "2026-03-02T00:00:00+08:00", id="day-before-delay"),
        pytest.param("day", 3600, "2026-03-03T01:00:00+08:00", "2026-03-03T00:00:00+08:00", id="day-at-delay"),
    ],
)
def test_latest_due_end(period: str, delay_s: float, now: str, expected: str) -> None:
    rule = window_rule(period=period, delay_s=delay_s)
    assert rule.window is not None
    assert latest_due_end(rule.window, ms(now)) == ms(expected)


# --- schema ------------------------------------------------------------------------------------------------------
GOOD = """\
rules:
  - id: w.so2
    title: SO2 hourly mean
    select: {profile: flue_gas_cems}
    window:
      point: so2
      period: hour
      direction: high
      levels:
        - {severity: warning, value: 35}
"""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param("      direction: high\n", "", "field window.direction: give direction", id="no-direction"),
        pytest.param(
            "      levels:\n        - {severity: warning, value: 35}\n",
            "",
            "field window.levels: give at least one level",
            id="no-levels",
        ),
        pytest.param(
            "direction: high",
            "direction: high\n      nodata: true",
            "field window.direction: a nodata check counts samples",
            id="nodata-with-levels",
        ),
        pytest.param("period: hour", "period: week", "field window.period:", id="bad-period"),
        pytest.param(
            "period: hour",
            "period: hour\n      timezone: Mars/Olympus",
            "field window.timezone: unknown time zone",
            id="unknown-zone",
        ),
        pytest.param("period: hour", "period: hour\n      stat: median", "field window.stat:", id="bad-stat"),
        pytest.param(
            "period: hour",
            "period: hour\n      stat: max\n      exclude_uncertain: true",
            "field window.exclude_uncertain: exclude_uncertain works with",
            id="uncertain-max",
        ),
        pytest.param(
            "period: hour",
            "period: hour\n      stat: count\n      min_count: 3",
            "field window.min_count: min_count does not apply",
            id="count-min-count",
        ),
        pytest.param("period: hour", "period: hour\n      min_count: 0", "field window.min_count:", id="min-count-0"),
        pytest.param("period: hour", "period: hour\n      delay_s: 90000", "field window.delay_s:", id="delay-long"),
        pytest.param(
            "{profile: flue_gas_cems}",
            "{device: cems1}",
            "field select.profile: a window rule reads its profile's measurement",
            id="no-profile",
        ),
        pytest.param(
            "    window:",
            "    on_delay_s: 60\n    window:",
            "field on_delay_s: a window rule is judged once per period",
            id="on-delay",
        ),
        pytest.param(
            "value: 35}",
            "value: 35, on_delay_s: 5}",
            "field window.levels[0]: a window level has no on_delay_s",
            id="level-on-delay",
        ),
        pytest.param(
            "    window:",
            "    severity: warning\n    window:",
            "field severity: a window's levels carry the severity",
            id="severity-with-levels",
        ),
        pytest.param(
            "value: 35}",
            "value: 35}\n        - {severity: critical, value: 30}",
            "field window.levels[1].value: a high level must be above",
            id="levels-unordered",
        ),
    ],
)
def test_window_schema_errors(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    path = tmp_path / "r.yaml"
    path.write_text(GOOD.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_rules([path])
    assert any(f"rule 'w.so2', {expected}" in p for p in err.value.problems), err.value.problems


def test_nodata_needs_a_severity(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text(GOOD.split("      direction", maxsplit=1)[0] + "      nodata: true\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"rule 'w\.so2', field id: a window rule needs a severity"):
        load_rules([path])


def test_good_window_rules_load(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    nodata = GOOD.split("    window:", maxsplit=1)[0].replace("id: w.so2", "id: w.so2.nodata") + (
        "    severity: warning\n    window: {point: so2, period: day, nodata: true, timezone: UTC, delay_s: 0}\n"
    )
    path.write_text(GOOD + nodata.removeprefix("rules:\n"), encoding="utf-8")
    mean, silent = load_rules([path])
    assert mean.kind == silent.kind == "window"
    assert mean.window is not None
    assert (mean.window.stat, mean.window.timezone, mean.window.delay_s) == (
        "mean",
        "Asia/Shanghai",
        120.0,
    )
    th = window_threshold(silent)
    assert (th.direction, th.strict, [(lv.severity, lv.value) for lv in th.levels]) == ("low", True, [("warning", 1)])


def test_streaming_engine_skips_window_rules() -> None:
    engine = Engine([window_rule()])
    msg = Telemetry.model_validate(
        {
            "site": "s1",
            "device": "cems1",
            "profile": "flue_gas_cems",
            "measurement": "flue_gas",
            "seq": 0,
            "samples": [Sample.model_validate({"ts": 1_000, "values": {"so2": 500.0}})],
        }
    )
    assert engine.observe(msg) == []
    assert engine.tick(10_000_000) == []


# --- the query -----------------------------------------------------------------------------------------------------
def test_query_quotes_every_name_and_value() -> None:
    rule = Rule.model_validate(
        {
            "id": "w.q",
            "title": "t",
            "select": {
                "profile": ["flue_gas_cems", "air_quality_station"],
                "site": ["s'1", 'x"y'],
                "tags": {"line\\n": "a'b"},
            },
            "window": {
                "point": "so2",
                "period": "hour",
                "direction": "high",
                "levels": [{"severity": "info", "value": 1}],
            },
        }
    )
    q = window_query(rule, MEASUREMENTS, 0, HOUR, retention_policy='r"p')
    assert q == (
        'SELECT mean("so2") AS "value", count("so2") AS "n" FROM "r\\"p"."flue_gas","r\\"p"."air_quality" '
        "WHERE time >= 0ms AND time < 3600000ms "
        "AND (\"profile\" = 'flue_gas_cems' OR \"profile\" = 'air_quality_station') "
        "AND (\"site\" = 's\\'1' OR \"site\" = 'x\"y') AND \"line\\\\n\" = 'a\\'b' "
        'GROUP BY "site","device"'
    )


def test_query_statements_for_uncertain_and_nodata() -> None:
    q = window_query(window_rule(exclude_uncertain=True), MEASUREMENTS, 0, HOUR)
    first, second = q.split("; ")
    assert first.startswith('SELECT sum("so2") AS "value", count("so2") AS "n" FROM "flue_gas" WHERE')
    assert second.startswith('SELECT sum("so2") AS "u_sum", count("so2") AS "u_n" FROM "flue_gas" WHERE')
    assert ' AND "so2.q" = 1 GROUP BY' in second
    main, seen = window_query(window_rule(**NODATA), MEASUREMENTS, 0, HOUR, lookback_start_ms=-HOUR).split("; ")
    assert main.startswith('SELECT count("so2") AS "n" FROM')
    assert seen.startswith(
        'SELECT count("so2") AS "seen" FROM "flue_gas" WHERE time >= -3600000ms AND time < 3600000ms'
    )


def series(site: str, device: str, **row: float) -> Series:
    return Series("flue_gas", {"site": site, "device": device}, ["time", *row], [[0, *row.values()]])


def test_read_values_subtracts_uncertain_samples() -> None:
    rule = window_rule(exclude_uncertain=True)
    got = read_values(
        rule, [series("s1", "d1", value=140.0, n=3), series("s1", "d1", u_sum=100.0, u_n=1)], {"flue_gas": "p"}
    )
    assert got == {("s1", "d1"): WindowValue("s1", "d1", 20.0, 2, "p")}


def test_read_values_counts_lookback_devices_as_zero() -> None:
    got = read_values(window_rule(**NODATA), [series("s1", "d1", n=5), series("s1", "d2", seen=100)], {})
    assert got == {("s1", "d1"): WindowValue("s1", "d1", 5.0, 5), ("s1", "d2"): WindowValue("s1", "d2", 0.0, 0)}


# --- verdicts ------------------------------------------------------------------------------------------------------
END = ms("2026-03-02T11:00:00+08:00")
KEY = ("w.so2", "s1", "d1", "so2")


@pytest.mark.parametrize(
    ("options", "held", "value", "count", "expected"),
    [
        pytest.param({}, None, 35.0, 10, ("warning", None), id="raise-at-limit"),
        pytest.param({"strict": True}, None, 35.0, 10, None, id="strict-limit-may-be-equalled"),
        pytest.param({}, None, 34.9, 10, None, id="below-limit"),
        pytest.param({}, "warning", 33.1, 10, None, id="held-inside-deadband"),
        pytest.param({}, "warning", 33.0, 10, (None, "warning"), id="cleared-past-deadband"),
        pytest.param({}, "warning", 120.0, 10, ("critical", "warning"), id="escalated"),
        pytest.param({}, "critical", 60.0, 10, ("warning", "critical"), id="de-escalated"),
        pytest.param({}, None, 120.0, 10, ("critical", None), id="raised-straight-to-critical"),
        pytest.param({"min_count": 5}, None, 50.0, 4, None, id="too-few-samples-no-verdict"),
        pytest.param({"min_count": 5}, "warning", 1.0, 4, None, id="too-few-samples-keeps-alert"),
        pytest.param(
            {"direction": "low", "levels": [{"severity": "warning", "value": 3}], "deadband": 0.1},
            "warning",
            3.05,
            10,
            None,
            id="low-held-inside-deadband",
        ),
        pytest.param(NODATA, None, 0.0, 0, ("warning", None), id="nodata-raised"),
        pytest.param(NODATA, "warning", 1.0, 1, (None, "warning"), id="nodata-cleared-by-one-sample"),
    ],
)
def test_verdicts(
    options: dict[str, Any], held: str | None, value: float, count: int, expected: tuple[str | None, str | None] | None
) -> None:
    rule = window_rule(**options)
    states = {KEY: WindowState(held, 0.0, END - HOUR)} if held else {}
    got = judge(rule, window_threshold(rule), END, {("s1", "d1"): WindowValue("s1", "d1", value, count, "p")}, states)
    if expected is None:
        assert got.transitions == []
        return
    (t,) = got.transitions
    assert (t.severity, t.previous) == expected
    assert (t.rule, t.site, t.device, t.point, t.ts, t.profile) == ("w.so2", "s1", "d1", "so2", END, "p")
    assert t.value == (count if options.get("nodata") else value)
    assert "2026-03-02 10:00–11:00 +08:00" in t.reason


def test_device_without_rows_keeps_its_alert() -> None:
    rule = window_rule()
    got = judge(rule, window_threshold(rule), END, {}, {KEY: WindowState("warning", 50.0, END - HOUR)})
    assert got.transitions == []
    assert got.states == {}


def test_nodata_checks_a_silent_device_that_holds_an_alert() -> None:
    rule = window_rule(**NODATA)
    held = {KEY: WindowState("warning", 0.0, END - HOUR)}
    assert judge(rule, window_threshold(rule), END, {}, held).transitions == []  # still silent: kept, no repeat


# --- evaluator with a fake query -----------------------------------------------------------------------------------
class FakeQuery:
    """Answers ``query`` from a queue of answers (series, or an exception to raise); records the statements."""

    retention_policy: str | None = None

    def __init__(self, *answers: list[Series] | Exception) -> None:
        self.answers = list(answers)
        self.seen: list[str] = []

    async def query(self, influxql: str, epoch: str = "ms") -> list[Series]:
        self.seen.append(influxql)
        answer = self.answers.pop(0) if self.answers else []
        if isinstance(answer, Exception):
            raise answer
        return answer


def evaluator(query: FakeQuery, *rules: Rule, **options: Any) -> WindowEvaluator:
    return WindowEvaluator(list(rules) or [window_rule()], query, measurements=MEASUREMENTS, **options)


def test_unknown_profile_is_refused_before_any_query() -> None:
    with pytest.raises(ValueError, match=r"w\.so2: flue_gas_cems"):
        WindowEvaluator([window_rule()], FakeQuery(), measurements={})


def test_period_end_must_be_a_boundary() -> None:
    with pytest.raises(ValueError, match="not the end of a hour"):
        asyncio.run(evaluator(FakeQuery()).evaluate(window_rule(), END + 1))


def test_state_round_trip_raises_nothing_twice() -> None:
    rule = window_rule()
    first = evaluator(FakeQuery([series("s1", "d1", value=50.0, n=12)]))
    (raised,) = asyncio.run(first.evaluate(rule, END))
    assert raised.severity == "warning"
    data = json.loads(json.dumps(first.state()))
    again = WindowEvaluator.from_state(
        [rule], FakeQuery([series("s1", "d1", value=50.0, n=12)]), data, measurements=MEASUREMENTS
    )
    assert again.active() == {KEY: "warning"}
    assert again.last_evaluated == {"w.so2": END}
    assert asyncio.run(again.evaluate(rule, END + HOUR)) == []
    assert again.due(END + HOUR + 120_000) == []


def test_state_of_removed_rules_is_dropped_and_version_checked() -> None:
    first = evaluator(FakeQuery([series("s1", "d1", value=50.0, n=12)]))
    asyncio.run(first.evaluate(window_rule(), END))
    other = window_rule().model_copy(update={"id": "w.other"})
    again = WindowEvaluator.from_state([other], FakeQuery(), first.state(), measurements=MEASUREMENTS)
    assert again.active() == {}
    assert again.last_evaluated == {}
    with pytest.raises(ValueError, match="version"):
        WindowEvaluator.from_state([other], FakeQuery(), {"version": 99}, measurements=MEASUREMENTS)


def test_due_first_run_takes_the_newest_period_then_catches_up_bounded() -> None:
    ev = evaluator(FakeQuery(), max_catchup=3)
    now = END + 120_000
    assert [end for _, end in ev.due(now)] == [END]
    ev.last_evaluated["w.so2"] = END - 2 * HOUR
    assert [end for _, end in ev.due(now)] == [END - HOUR, END]
    ev.last_evaluated["w.so2"] = END - 10 * HOUR
    assert [end for _, end in ev.due(now)] == [END - 2 * HOUR, END - HOUR, END]
    ev.last_evaluated["w.so2"] = END
    assert ev.due(now) == []


@pytest.mark.parametrize(
    ("period", "delay_s", "expected"),
    [
        pytest.param("hour", 120, (None, 2, 0), id="hour-plus-2-min"),
        pytest.param("hour", 3725, (None, 2, 5), id="hour-delay-wraps"),
        pytest.param("day", 3600.5, (1, 0, 1), id="day-plus-1h-rounded-up"),
    ],
)
def test_wakeups(period: str, delay_s: float, expected: tuple[int | None, int, int]) -> None:
    (wk,) = wakeups([window_rule(period=period, delay_s=delay_s), window_rule(period=period, delay_s=delay_s)])
    assert (wk.hour, wk.minute, wk.second, wk.timezone) == (*expected, "Asia/Shanghai")


# --- the scheduler shell -------------------------------------------------------------------------------------------
class Sink:
    def __init__(self, fail: int = 0) -> None:
        self.got: list[list[Transition]] = []
        self.fail = fail

    async def __call__(self, transitions: list[Transition]) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("alert store down")
        self.got.append(transitions)


def test_influx_down_gives_nothing_logs_once_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    down = QueryUnavailableError("ConnectError: refused")
    query = FakeQuery(down, down, [series("s1", "d1", value=50.0, n=12)])
    sink = Sink()
    sched = ScheduledRules(evaluator(query), sink, clock=lambda: 0.0)
    now = END + 120_000
    with caplog.at_level(logging.INFO, logger="rules.scheduled"):
        assert asyncio.run(sched.run_due(now)) == []
        assert asyncio.run(sched.run_due(now)) == []
        assert sched.counters.query_failures == 2
        assert not sched.influx_ok
        (raised,) = asyncio.run(sched.run_due(now))
    assert raised.severity == "warning"
    assert sink.got == [[raised]]
    assert sched.influx_ok
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "InfluxDB unavailable" in messages[0]
    assert "answers again failures=2" in messages[1]
    assert "lifeline_window_query_failures_total 2" in sched.metrics_text()


def test_refused_query_stops_that_rule_only() -> None:
    other = window_rule().model_copy(update={"id": "w.other"})
    query = FakeQuery(QueryError("bad"), [series("s1", "d1", value=50.0, n=12)])
    sched = ScheduledRules(evaluator(query, window_rule(), other), Sink())
    (t,) = asyncio.run(sched.run_due(END + 120_000))
    assert t.rule == "w.other"
    assert sched.evaluator.last_evaluated == {"w.other": END}


def test_failing_sink_gets_the_same_transitions_again() -> None:
    answer = [series("s1", "d1", value=50.0, n=12)]
    sink = Sink(fail=1)
    sched = ScheduledRules(evaluator(FakeQuery(answer, answer)), sink)
    with pytest.raises(ConnectionError):
        asyncio.run(sched.run_due(END + 120_000))
    assert sched.evaluator.active() == {}
    assert sched.evaluator.last_evaluated == {}
    (t,) = asyncio.run(sched.run_due(END + 120_000))
    assert sink.got == [[t]]
    assert sched.evaluator.active() == {KEY: "warning"}


def test_catch_up_past_the_bound_counts_skipped_periods(caplog: pytest.LogCaptureFixture) -> None:
    ev = evaluator(FakeQuery(), max_catchup=2)
    ev.last_evaluated["w.so2"] = END - 10 * HOUR
    sched = ScheduledRules(ev, Sink())
    with caplog.at_level(logging.WARNING, logger="rules.scheduled"):
        asyncio.run(sched.run_due(END + 120_000))
    assert sched.counters.periods_skipped == 8
    assert sched.counters.windows_evaluated == 2
    assert ev.last_evaluated == {"w.so2": END}
    assert "skipped=8" in caplog.text


def test_start_schedules_a_cron_job_per_wakeup_and_stop_ends_them() -> None:
    rules = [window_rule(), window_rule(period="day", delay_s=3600).model_copy(update={"id": "w.day"})]
    sched = ScheduledRules(evaluator(FakeQuery(), *rules), Sink(), clock=lambda: END / 1000 + 120)

    async def main() -> list[str]:
        sched.start()
        try:
            return sched.jobs()
        finally:
            await sched.stop()

    jobs = asyncio.run(main())
    assert "window hh:02:00 Asia/Shanghai" in jobs
    assert "window 01:00:00 Asia/Shanghai" in jobs
    assert sched.jobs() == []


def test_assessment_is_not_applied_until_asked() -> None:
    ev = evaluator(FakeQuery([series("s1", "d1", value=50.0, n=12)]))
    a = asyncio.run(ev.assess(window_rule(), END))
    assert isinstance(a, Assessment)
    assert ev.active() == {}
    assert ev.last_evaluated == {}
    assert ev.apply(a) == a.transitions
    assert ev.active() == {KEY: "warning"}


def test_utc_offset_of_the_reason() -> None:
    rule = window_rule(period="day")
    end = ms("2026-03-03T00:00:00+08:00")
    got = judge(rule, window_threshold(rule), end, {("s1", "d1"): WindowValue("s1", "d1", 50.0, 24)}, {})
    assert got.transitions[0].reason == "SO2 hourly raised: daily mean of so2 = 50 in 2026-03-02 (+08:00) (24 samples)"
    assert datetime.fromtimestamp(end / 1000, UTC).hour == 16
