"""The environment bureau's indices against a real InfluxDB 1.6.7: the valid-means job stores each water station's
daily GB 3838-2002 class from its daily means (river or lake, target class from its tags), the shipped rule raises
when the target is missed, and an hourly AQI above 200 raises for the environment audience."""

from __future__ import annotations

from typing import TypeVar

import pytest

from rules import PACKS, ScheduledRules, Transition, WindowEvaluator, load_rules
from rules._means import MeansConfig
from rules.valid_means import ValidMeans, load_means_config
from storage import InfluxQuery, RetryingWriter, Series
from tests.integration.influx_db import Db, Sink
from tests.integration.test_valid_means import local

pytestmark = pytest.mark.integration

T = TypeVar("T")
HOUR = 3_600_000
RULES = {r.id: r for r in load_rules([PACKS])}
WATER = MeansConfig(measurements=[m for m in load_means_config().measurements if m.measurement == "water_quality"])


DAY = local("2026-03-02T00:00:00")
DAY_END = DAY + 24 * HOUR


def hourly(device: str, tags: str, fields: str, hours: int = 24) -> list[str]:
    """A water station's stored valid hourly means (as rules.valid_means writes them) for the day."""
    counts = ",".join(f"{f.split('=')[0]}.n=12i" for f in fields.split(","))
    return [
        f"water_quality_hourly,site=river-net,device={device},profile=water_quality_station{tags} "
        f"{fields},{counts} {DAY + h * HOUR}"
        for h in range(hours)
    ]


# GB 3838-2002 Table 1, read from the standard's table (not from rules.standards): TP river I-V 0.02 / 0.1 / 0.2 /
# 0.3 / 0.4, lake 0.01 / 0.025 / 0.05 / 0.1 / 0.2; NH3-N 0.15 / 0.5 / 1.0 / 1.5 / 2.0; DO ≥ 7.5 / 6 / 5 / 3 / 2;
# COD ≤ 15 / 15 / 20 / 30 / 40; CODMn ≤ 2 / 4 / 6 / 10 / 15; pH 6-9. A value equal to a limit meets the class.
BASE = "ph=7.6,do=6.5,codmn=3.8,cod=14,nh3_n=0.42"  # class II at worst (DO 6.5 ≥ 6, CODMn 3.8 ≤ 4, NH3-N ≤ 0.5)


def test_daily_water_class_is_stored_and_a_missed_target_raises(db: Db) -> None:
    db.write(
        # r1, a river with target III: TP 0.25 is class IV (0.2 < 0.25 ≤ 0.3): the day is IV, missed by one class
        hourly("r1", ",water_body=river,target_class=III", BASE + ",tp=0.25")
        # r2, a river, TP exactly 0.2, the class III limit: class III, the target is met
        + hourly("r2", ",water_body=river,target_class=III", BASE + ",tp=0.2")
        # k1, a lake with target III and the same TP 0.25: above lake class V (0.2): worse than V, three below
        + hourly("k1", ",water_body=lake,target_class=III", BASE + ",tp=0.25,tn=0.9")
        # x1: no water_body tag: not classed (logged and counted), its means are still stored
        + hourly("x1", "", BASE + ",tp=0.25")
        # r3: only 3 hours of data: no valid daily mean of any parameter (4 needed), so no class and no verdict
        + hourly("r3", ",water_body=river,target_class=II", BASE + ",tp=0.25", hours=3)
    )
    rule = RULES["water.class.target"]
    assert rule.audience == "environment"
    sink = Sink()

    async def main(q: InfluxQuery, w: RetryingWriter) -> tuple[list[Transition], ScheduledRules, list[Series]]:
        sched = ScheduledRules(WindowEvaluator([rule], q), sink, means=ValidMeans(WATER, q, w))
        got = await sched.run_due(DAY_END + int(rule.window.delay_s * 1000) + 1000 if rule.window else 0)
        stored = await q.query('SELECT * FROM "water_quality_class_daily" GROUP BY "device"')
        return got, sched, stored

    got, sched, stored = db.run_writing(main)
    rows = {s.tags["device"]: s.rows()[0] for s in stored}
    assert set(rows) == {"r1", "r2", "k1", "r3"}
    r1, r2, k1 = rows["r1"], rows["r2"], rows["k1"]
    assert r1["time"] == DAY
    assert (r1["class"], r1["class_label"], r1["deciding"], r1["target_class"]) == (4.0, "IV", "tp", 3.0)
    assert (r1["class_over_target"], r1["target_missed"], r1["class_tp"], r1["class_nh3_n"]) == (1.0, True, 4.0, 2.0)
    assert str(r1["used"]).split(",") == ["ph", "do", "codmn", "cod", "nh3_n", "tp"]
    assert (r2["class"], r2["deciding"], r2["class_over_target"], r2["target_missed"]) == (3.0, "tp", 0.0, False)
    assert (k1["class"], k1["class_label"], k1["deciding"], k1["class_over_target"]) == (6.0, "劣V", "tp", 3.0)
    assert k1["class_tn"] == 3.0  # TN is classed at a lake (0.5 < 0.9 ≤ 1.0: III) but does not decide
    assert "tn" not in str(k1["used"]).split(",")
    assert rows["r3"]["class"] is None
    assert rows["r3"]["used"] == ""
    assert sched.means is not None
    assert sched.means.counters.unclassed == 1

    by_device = {t.device: t for t in got}
    assert set(by_device) == {"r1", "k1"}  # r2 meets its target; r3 has no class
    assert (by_device["r1"].rule, by_device["r1"].severity, by_device["r1"].ts) == (rule.id, "warning", DAY_END)
    assert by_device["k1"].severity == "critical"  # two classes or more below the target
    assert "daily class_over_target = 1 in 2026-03-02 (+08:00)" in by_device["r1"].reason
    assert sink.got == got

    # re-running the day overwrites it (the same rows, no duplicates)
    async def rerun(q: InfluxQuery, w: RetryingWriter) -> list[Series]:
        await ValidMeans(WATER, q, w).run_day(DAY_END)
        return await q.query('SELECT count("class") FROM "water_quality_class_daily" GROUP BY "device"')

    counts = {s.tags["device"]: s.rows()[0]["count"] for s in db.run_writing(rerun)}
    assert counts == {"r1": 1, "r2": 1, "k1": 1}


def test_an_hourly_aqi_above_200_raises_for_the_environment(db: Db) -> None:
    h = local("2026-03-02T09:00:00")
    tags = "site=city,device={},profile=air_quality_station"
    db.write(
        [
            f'air_quality_aqi_hourly,{tags.format("a1")} aqi=231.0,level=5.0,primary="pm25" {h}',
            f'air_quality_aqi_hourly,{tags.format("a2")} aqi=200.0,level=4.0,primary="pm25" {h}',  # level 4: no alert
            f'air_quality_aqi_hourly,{tags.format("a3")} aqi=301.0,level=6.0,primary="pm10" {h}',
        ]
    )
    rule = RULES["air.aqi.hourly"]
    assert rule.audience == "environment"

    async def main(q: InfluxQuery, w: RetryingWriter) -> list[Transition]:
        return await WindowEvaluator([rule], q).evaluate(rule, h + HOUR)

    got = {t.device: t for t in db.run_writing(main)}
    assert {d: t.severity for d, t in got.items()} == {"a1": "warning", "a3": "critical"}
    assert got["a1"].value == 231.0


def test_a_bad_noise_zone_tag_is_logged_and_does_not_stop_the_job(db: Db) -> None:
    h = local("2026-03-02T23:00:00")  # night: zone 2 limit 50 dB(A)
    row = "noise,site=city,device={},profile=noise_meter,noise_zone={} noise_laeq=52 {}"
    db.write(
        [row.format("n-ok", "2", h + i * 60_000) for i in range(60)]
        + [row.format("n-bad", "5", h + i * 60_000) for i in range(60)]
    )
    config = MeansConfig(measurements=[m for m in load_means_config().measurements if m.measurement == "noise"])

    async def main(q: InfluxQuery, w: RetryingWriter) -> tuple[ValidMeans, list[Series]]:
        job = ValidMeans(config, q, w)
        await job.run_hour(h + HOUR)
        return job, await q.query('SELECT * FROM "noise_hourly" GROUP BY "device"')

    job, stored = db.run_writing(main)
    rows = {s.tags["device"]: s.rows()[0] for s in stored}
    assert (rows["n-ok"]["noise_limit_db"], rows["n-ok"]["noise_exceeded"]) == (50.0, 1.0)
    assert rows["n-bad"]["noise_laeq"] == 52.0  # its level is stored, without a verdict
    assert rows["n-bad"]["noise_exceeded"] is None
    assert job.counters.unclassed == 1
