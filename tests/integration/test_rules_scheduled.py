"""Window rules against a real InfluxDB 1.6.7: hourly and daily means of the shipped packs' rules raise and clear
for the right device, a no-data check finds a silent device, InfluxDB down gives nothing and raises nothing, state
carries over a restart, and the APScheduler jobs run the catch-up."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import pytest

from rules import PACKS, ScheduledRules, Transition, WindowEvaluator, load_rules
from storage import InfluxConnection, InfluxQuery, Series
from testing import free_port
from tests.integration.influx_db import Db, Sink

pytestmark = pytest.mark.integration

T = TypeVar("T")
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
H = int(datetime.fromisoformat("2026-03-02T10:00:00+08:00").timestamp() * 1000)  # a local hour: 02:00 UTC
RULES = {r.id: r for r in load_rules([PACKS])}
SO2 = RULES["emissions.so2.hourly"]  # > 35 mg/m³, deadband 1, uncertain samples left out
SO2_NODATA = RULES["emissions.so2.nodata"]
PM25_VALID = RULES["air.pm25.daily"]  # > 60 µg/m³ warning, > 115 critical, natural day in Asia/Shanghai
# the shipped rule judges the stored valid daily means (tests/unit/test_air_defects.py); the natural local day of a
# window over raw samples is the same rule reading raw samples
assert PM25_VALID.window is not None
PM25 = PM25_VALID.model_copy(update={"window": PM25_VALID.window.model_copy(update={"source": "raw"})})


def local(text: str) -> int:
    return int(datetime.fromisoformat(text + "+08:00").timestamp() * 1000)


def cems(device: str, ts: int, fields: str) -> str:
    return f"flue_gas,site=plant1,device={device},profile=flue_gas_cems,domain=environment {fields} {ts}"


def aq(device: str, ts: int, fields: str) -> str:
    return f"air_quality,site=city,device={device},profile=air_quality_station,domain=environment {fields} {ts}"


class Counting:
    """An InfluxQuery that counts its requests."""

    def __init__(self, inner: InfluxQuery) -> None:
        self.inner = inner
        self.retention_policy = inner.retention_policy
        self.requests = 0

    async def query(self, influxql: str, epoch: str = "ms") -> list[Series]:
        self.requests += 1
        return await self.inner.query(influxql, epoch)


def counting(call: Callable[[Counting], Awaitable[T]]) -> Callable[[InfluxQuery], Awaitable[T]]:
    """``call`` given a reader that counts its requests (for ``Db.run``)."""
    return lambda q: call(Counting(q))


def summary(ts: list[Transition]) -> list[tuple[str, str, str | None, str | None]]:
    return [(t.rule, t.device, t.severity, t.previous) for t in ts]


def test_hourly_mean_raises_for_the_right_device_and_clears_past_the_deadband(db: Db) -> None:
    db.write(
        [cems("cems1", H + i * 10 * MINUTE, f"so2={v}") for i, v in enumerate([40, 42, 44, 40, 42, 44])]
        + [cems("cems1", H + 5 * MINUTE, "so2=500,so2.q=1i"), cems("cems1", H + 15 * MINUTE, 'so2.q=2i,so2.reason="x"')]
        + [cems("cems2", H + i * 20 * MINUTE, f"so2={v}") for i, v in enumerate([20, 22, 24])]
        + [cems("cems1", H + HOUR + i * 20 * MINUTE, f"so2={v}") for i, v in enumerate([34.5, 34, 32])]  # mean 33.5
        + [cems("cems2", H + HOUR + 30 * MINUTE, "so2=21")]
    )
    sink = Sink()

    async def main(q: Counting) -> tuple[list[Transition], list[Transition], int]:
        sched = ScheduledRules(WindowEvaluator([SO2], q), sink)
        first = await sched.run_due(H + HOUR + 120_000)
        second = await sched.run_due(H + 2 * HOUR + 120_000)
        return first, second, q.requests

    first, second, requests = db.run(counting(main))
    (raised,) = first
    assert (raised.device, raised.severity, raised.point, raised.ts) == ("cems1", "warning", "so2", H + HOUR)
    assert raised.value == pytest.approx(42.0)  # the uncertain 500 left out, the bad reading has no value
    assert raised.profile == "flue_gas_cems"
    assert "hourly mean of so2 = 42" in raised.reason
    assert summary(second) == [("emissions.so2.hourly", "cems1", None, "warning")]
    assert second[0].value == pytest.approx(33.5)
    assert sink.got == [*first, *second]
    assert requests == 2  # one request per rule and period


def test_daily_mean_uses_the_local_natural_day(db: Db) -> None:
    day_end = local("2026-03-03T00:00:00")
    db.write(
        [aq("aq1", local(f"2026-03-02T{h:02d}:30:00"), "pm25=70") for h in range(24)]
        + [aq("aq2", local(f"2026-03-02T{h:02d}:30:00"), "pm25=30") for h in range(24)]
        # the same UTC day as part of the local one, but not the local day: 1000 would swing a UTC mean
        + [aq(d, local("2026-03-03T01:00:00"), "pm25=1000") for d in ("aq1", "aq2")]
        + [aq(d, local("2026-03-01T23:00:00"), "pm25=1000") for d in ("aq1", "aq2")]
    )

    async def main(q: Counting) -> list[Transition]:
        return await WindowEvaluator([PM25], q).evaluate(PM25, day_end)

    (raised,) = db.run(counting(main))
    assert (raised.rule, raised.device, raised.severity, raised.ts) == ("air.pm25.daily", "aq1", "warning", day_end)
    assert raised.value == pytest.approx(70.0)
    assert "daily mean of pm25 = 70 in 2026-03-02 (+08:00) (24 samples)" in raised.reason


def test_nodata_finds_a_device_that_went_silent(db: Db) -> None:
    db.write(
        [cems(d, H - 2 * DAY, "so2=10") for d in ("cems1", "cems2")]
        + [cems("cems3", H - 10 * DAY, "so2=10")]  # silent for longer than the 7-day lookback: not checked
        + [cems("cems1", H + 30 * MINUTE, "so2=10")]
        + [cems("cems2", H + 30 * MINUTE, 'so2.q=2i,so2.reason="analyser fault",nox=5')]  # no SO2 value
        + [cems(d, H + HOUR + 30 * MINUTE, "so2=10") for d in ("cems1", "cems2")]
    )

    async def main(q: Counting) -> tuple[list[Transition], list[Transition]]:
        ev = WindowEvaluator([SO2_NODATA], q)
        return await ev.evaluate(SO2_NODATA, H + HOUR), await ev.evaluate(SO2_NODATA, H + 2 * HOUR)

    silent, back = db.run(counting(main))
    assert summary(silent) == [("emissions.so2.nodata", "cems2", "warning", None)]
    assert silent[0].value == 0
    assert "0 samples of so2 in 2026-03-02 10:00–11:00 +08:00" in silent[0].reason
    assert summary(back) == [("emissions.so2.nodata", "cems2", None, "warning")]


def test_influxdb_unreachable_gives_no_transition_and_keeps_alerts() -> None:
    held = {
        "version": 1,
        "alerts": [
            {
                "rule": SO2.id,
                "site": "plant1",
                "device": "cems1",
                "point": "so2",
                "active": "warning",
                "value": 42.0,
                "period_end": H,
                "profile": "flue_gas_cems",
            }
        ],
        "last_evaluated": {SO2.id: H},
    }

    async def main() -> tuple[list[Transition], ScheduledRules]:
        async with InfluxQuery(
            InfluxConnection(url=f"http://127.0.0.1:{free_port()}", database="lifeline", timeout_s=2)
        ) as q:
            sched = ScheduledRules(WindowEvaluator.from_state([SO2, SO2_NODATA], q, held), Sink())
            return await sched.run_due(H + 3 * HOUR + 120_000), sched

    got, sched = asyncio.run(asyncio.wait_for(main(), 30))
    assert got == []
    assert sched.counters.query_failures == 1
    assert not sched.influx_ok
    assert sched.evaluator.active() == {(SO2.id, "plant1", "cems1", "so2"): "warning"}
    assert sched.evaluator.last_evaluated == {SO2.id: H}


def test_state_round_trip_raises_nothing_twice(db: Db) -> None:
    db.write(
        [cems("cems1", H + i * 10 * MINUTE, "so2=50") for i in range(6)]
        + [cems("cems1", H + HOUR + i * 10 * MINUTE, "so2=48") for i in range(6)]
        + [cems("cems1", H + 2 * HOUR + i * 10 * MINUTE, "so2=20") for i in range(6)]
    )

    async def main(q: Counting) -> tuple[list[Transition], list[Transition], list[Transition], list[Transition]]:
        before = WindowEvaluator([SO2], q)
        raised = await ScheduledRules(before, Sink()).run_due(H + HOUR + 120_000)
        data = json.loads(json.dumps(before.state()))
        after = ScheduledRules(WindowEvaluator.from_state([SO2], q, data), Sink())
        same_now = await after.run_due(H + HOUR + 120_000)
        still_high = await after.run_due(H + 2 * HOUR + 120_000)
        cleared = await after.run_due(H + 3 * HOUR + 120_000)
        return raised, same_now, still_high, cleared

    raised, same_now, still_high, cleared = db.run(counting(main))
    assert summary(raised) == [(SO2.id, "cems1", "warning", None)]
    assert same_now == []
    assert still_high == []
    assert summary(cleared) == [(SO2.id, "cems1", None, "warning")]


def test_scheduler_catch_up_job_runs_on_start(db: Db) -> None:
    db.write([cems("cems1", H + i * 10 * MINUTE, "so2=60") for i in range(6)])
    sink = Sink()

    async def main(q: Counting) -> list[str]:
        sched = ScheduledRules(WindowEvaluator([SO2], q), sink, clock=lambda: (H + HOUR + 120_000) / 1000)
        sched.start()
        try:
            for _ in range(200):  # the catch-up job runs at once on the scheduler's loop; bounded wait
                if sink.got:
                    break
                await asyncio.sleep(0.05)
            return sched.jobs()
        finally:
            await sched.stop()

    jobs = db.run(counting(main))
    assert summary(sink.got) == [(SO2.id, "cems1", "warning", None)]
    assert jobs == ["window hh:02:00 Asia/Shanghai"]  # the one-shot catch-up is done and gone
