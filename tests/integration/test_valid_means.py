"""Valid means against a real InfluxDB 1.6.7: the scheduled job stores <measurement>_hourly and _daily with the
source's tags (good samples only, validity and rounding applied), and the shipped window rules raise on them, give
no verdict for an invalid period and say so."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

import pytest

from rules import PACKS, ScheduledRules, Transition, WindowEvaluator, load_rules
from rules._means import MeansConfig
from rules.valid_means import ValidMeans, load_means_config
from storage import InfluxQuery, RetryingWriter, Series
from tests.integration.influx_db import Db, Sink

pytestmark = pytest.mark.integration

T = TypeVar("T")
MINUTE = 60_000
HOUR = 60 * MINUTE
RULES = {r.id: r for r in load_rules([PACKS])}
CONFIG = load_means_config()


def local(text: str) -> int:
    return int(datetime.fromisoformat(text + "+08:00").timestamp() * 1000)


H = local("2026-03-02T01:00:00")
DAY = local("2026-03-02T00:00:00")


def only(measurement: str) -> MeansConfig:
    return MeansConfig(measurements=[m for m in CONFIG.measurements if m.measurement == measurement])


def cems(device: str, ts: int, fields: str) -> str:
    return (
        f"flue_gas,site=plant1,device={device},profile=flue_gas_cems,domain=emissions,source=coal_power,o2_ref=6 "
        f"{fields} {ts}"
    )


def aq(device: str, ts: int, fields: str) -> str:
    return f"air_quality,site=city,device={device},profile=air_quality_station,domain=environment {fields} {ts}"


def test_scheduled_job_stores_hourly_means_and_the_window_rule_raises_on_them(db: Db) -> None:
    db.write(
        # u1: 50 good minutes at 52 mg/m³ (at 6 % O2), then 10 minutes of calibration gas flagged maintenance
        [cems("u1", H + i * MINUTE, "nox_zs=52,nox=44.5") for i in range(50)]
        + [
            cems(
                "u1",
                H + i * MINUTE,
                'nox_zs=400,nox_zs.q=1i,nox_zs.reason="maintenance",nox=340,nox.q=1i,nox.reason="maintenance"',
            )
            for i in range(50, 60)
        ]
        # u2: 44 minutes of data: no valid hourly mean, however high
        + [cems("u2", H + i * MINUTE, "nox_zs=90,nox=77") for i in range(44)]
        # u3: 45 minutes: valid, and under the limit
        + [cems("u3", H + i * MINUTE, "nox_zs=30,nox=25") for i in range(45)]
    )
    rule = RULES["emissions.nox_zs.hourly"]
    sink = Sink()

    async def main(q: InfluxQuery, w: RetryingWriter) -> tuple[list[Transition], ScheduledRules, list[Series]]:
        sched = ScheduledRules(WindowEvaluator([rule], q), sink, means=ValidMeans(only("flue_gas"), q, w))
        got = await sched.run_due(H + HOUR + 300_000)
        stored = await q.query('SELECT * FROM "flue_gas_hourly" GROUP BY "device"')
        return got, sched, stored

    got, sched, stored = db.run_writing(main)
    (raised,) = got
    assert (raised.rule, raised.device, raised.severity, raised.point, raised.ts) == (
        "emissions.nox_zs.hourly",
        "u1",
        "warning",
        "nox_zs",
        H + HOUR,
    )
    assert raised.value == pytest.approx(52.0)  # the maintenance minutes left out
    assert "hourly valid mean of nox_zs = 52 in 2026-03-02 01:00–02:00 +08:00 (50 valid minutes)" in raised.reason
    assert sink.got == got
    assert sched.counters.periods_invalid == 1  # u2: no verdict, and said so
    rows = {s.tags["device"]: s.rows()[0] for s in stored}
    assert set(rows) == {"u1", "u2", "u3"}
    assert rows["u1"]["time"] == H
    assert (rows["u1"]["nox_zs"], rows["u1"]["nox_zs.n"], rows["u1"]["nox"]) == (52.0, 50, 44.5)
    assert (rows["u1"]["source"], rows["u1"]["o2_ref"], rows["u1"]["site"]) == ("coal_power", "6", "plant1")
    assert rows["u2"]["nox_zs"] is None
    assert (rows["u2"]["nox_zs.n"], rows["u2"]["nox_zs.q"]) == (44, 2)
    assert rows["u2"]["nox_zs.reason"] == "invalid: 44 of 60 minutes valid, 45 needed"
    assert (rows["u3"]["nox_zs"], rows["u3"]["nox_zs.n"]) == (30.0, 45)
    assert sched.means is not None
    assert sched.means.last_hour == H + HOUR


def test_daily_means_from_stored_hours_with_rounding_before_comparison(db: Db) -> None:
    lines: list[str] = []
    for h in range(24):
        t0 = DAY + h * HOUR
        # aq1: hourly means alternate 80 / 81: daily 80.5, rounded half to even to 80, meets the 80 limit
        # aq2: 81 / 82: daily 81.5 -> 82, exceeds; aq3: only 19 hours with data: no valid daily mean
        for i in range(60):
            lines.append(aq("aq1", t0 + i * MINUTE, f"no2={80 + h % 2}"))
            lines.append(aq("aq2", t0 + i * MINUTE, f"no2={81 + h % 2}"))
            if h < 19:
                lines.append(aq("aq3", t0 + i * MINUTE, "no2=200"))
    db.write(lines)
    rule = RULES["air.no2.daily"]

    async def main(q: InfluxQuery, w: RetryingWriter) -> tuple[list[Transition], ScheduledRules, list[Series]]:
        job = ValidMeans(only("air_quality"), q, w)
        for h in range(1, 25):
            await job.run_hour(DAY + h * HOUR)
        await job.run_day(DAY + 24 * HOUR)
        sched = ScheduledRules(WindowEvaluator([rule], q), Sink())
        got = await sched.run_due(DAY + 24 * HOUR + 3600_000)
        stored = await q.query('SELECT "no2", "no2.n", "no2.reason" FROM "air_quality_daily" GROUP BY "device"')
        return got, sched, stored

    got, sched, stored = db.run_writing(main)
    assert [(t.device, t.severity, t.value) for t in got] == [("aq2", "warning", 82.0)]
    assert "daily valid mean of no2 = 82 in 2026-03-02 (+08:00) (24 valid hours)" in got[0].reason
    assert sched.counters.periods_invalid == 1
    rows = {s.tags["device"]: s.rows()[0] for s in stored}
    assert (rows["aq1"]["no2"], rows["aq1"]["no2.n"]) == (80.0, 24)
    assert (rows["aq3"]["no2"], rows["aq3"]["no2.reason"]) == (None, "invalid: 19 of 24 hourly means valid, 20 needed")


def test_the_hourly_aqi_is_stored_from_the_valid_means(db: Db) -> None:
    from rules.standards import hourly_aqi

    values = {"so2": 12, "no2": 35, "co": 0.8, "o3": 60, "pm10": 180, "pm25": 95}
    fields = ",".join(f"{k}={v}" for k, v in values.items())
    # a2: 30 minutes only, no valid hourly mean: every indicator missing, no AQI
    db.write(
        [aq("a1", H + i * MINUTE, fields) for i in range(60)] + [aq("a2", H + i * MINUTE, fields) for i in range(30)]
    )

    async def main(q: InfluxQuery, w: RetryingWriter) -> list[Series]:
        await ValidMeans(only("air_quality"), q, w).run_due(H + HOUR + 300_000)
        return await q.query('SELECT * FROM "air_quality_aqi_hourly" GROUP BY "device"')

    stored = {s.tags["device"]: s.rows()[0] for s in db.run_writing(main)}
    expected = hourly_aqi({f"{k}_1h": v for k, v in values.items()}, datetime.fromtimestamp(H / 1000).astimezone())
    assert expected.aqi is not None
    assert expected.level is not None
    row = stored["a1"]
    assert (row["time"], row["aqi"], row["level"]) == (H, float(expected.aqi), float(expected.level.number))
    assert row["primary"] == ",".join(i.value for i in expected.primary)
    assert row["category"] == expected.level.category_zh
    assert row["edition"] == "HJ 633-2026"  # 2026-03-02: the new edition is in force
    assert "aqi" not in {k for k, v in stored["a2"].items() if v is not None}  # every indicator missing: no AQI


def wq(device: str, ts: int, fields: str) -> str:
    return (
        f"water_quality,site=river,device={device},profile=water_quality_station,domain=environment,"
        f"target_class=4,water_body=river {fields} {ts}"
    )


def test_the_daily_water_class_is_stored_and_a_missed_target_raises(db: Db) -> None:
    good = "ph=7.4,do=6.2,codmn=4.8,cod=16,nh3_n=0.42,tp=0.12,tn=1.3"  # class III at worst (GB 3838 Table 1)
    poor = "ph=7.4,do=6.2,codmn=4.8,cod=16,nh3_n=1.8,tp=0.12,tn=1.3"  # NH3-N 1.8: class V (IV <= 1.5 < 1.8 <= 2.0)
    lines = []
    for hour in range(6):
        start = DAY + hour * HOUR
        lines += [wq("w-good", start + i * MINUTE, good) for i in range(0, 60, 10)]
        lines += [wq("w-poor", start + i * MINUTE, poor) for i in range(0, 60, 10)]
    db.write(lines)
    rule = RULES["water.class.target"]
    sink = Sink()

    async def main(q: InfluxQuery, w: RetryingWriter) -> tuple[list[Transition], list[Series]]:
        means = ValidMeans(only("water_quality"), q, w)
        for hour in range(1, 7):
            await means.run_hour(DAY + hour * HOUR)
        await means.run_day(DAY + 24 * HOUR)
        stored = await q.query('SELECT * FROM "water_quality_class_daily" GROUP BY "device"')
        sched = ScheduledRules(WindowEvaluator([rule], q), sink)
        return await sched.run_due(DAY + 24 * HOUR + 4_000_000), stored

    got, stored = db.run_writing(main)
    rows = {s.tags["device"]: s.rows()[0] for s in stored}
    assert (rows["w-poor"]["class"], rows["w-poor"]["deciding"], rows["w-poor"]["target_missed"]) == (
        5.0,
        "nh3_n",
        True,
    )
    assert (rows["w-good"]["class"], rows["w-good"]["target_missed"]) == (3.0, False)
    assert [(t.rule, t.device, t.severity) for t in got] == [("water.class.target", "w-poor", "warning")]


def noise(device: str, zone: str, ts: int, laeq: float) -> str:
    return (
        f"noise,site=city,device={device},profile=noise_meter,domain=environment,noise_zone={zone} "
        f"noise_laeq={laeq} {ts}"
    )


def test_noise_is_judged_against_its_zones_day_or_night_limit(db: Db) -> None:
    night = local("2026-03-02T23:00:00")  # 23:00-24:00: night (GB 3096-2008: 22:00-06:00)
    db.write(
        [noise("n-2", "2", night + i * MINUTE, 52.0) for i in range(60)]  # zone 2 night limit 50: exceeded
        + [noise("n-4a", "4a", night + i * MINUTE, 52.0) for i in range(60)]
    )  # zone 4a night 55: meets it
    rule = RULES["noise.zone_limit"]
    sink = Sink()

    async def main(q: InfluxQuery, w: RetryingWriter) -> tuple[list[Transition], list[Series]]:
        await ValidMeans(only("noise"), q, w).run_hour(night + HOUR)
        stored = await q.query('SELECT * FROM "noise_hourly" GROUP BY "device"')
        got = await ScheduledRules(WindowEvaluator([rule], q), sink).run_due(night + HOUR + 400_000)
        return got, stored

    got, stored = db.run_writing(main)
    rows = {s.tags["device"]: s.rows()[0] for s in stored}
    assert (rows["n-2"]["noise_limit_db"], rows["n-2"]["noise_exceeded"]) == (50.0, 1.0)
    assert (rows["n-4a"]["noise_limit_db"], rows["n-4a"]["noise_exceeded"]) == (55.0, 0.0)
    assert [(t.rule, t.device) for t in got] == [("noise.zone_limit", "n-2")]
