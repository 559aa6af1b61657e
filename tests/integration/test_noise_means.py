"""Noise levels as energy means against a real InfluxDB 1.6.7: the valid-means job sums each sample's energy in the
database (a subquery), so half an hour at 50 dB(A) and half at 70 is an hourly Leq of 67.0 (not 60), judged
against the zone's limit; uncertain samples stay out; the daily row holds the 24-hour level, Ld and Ln."""

from __future__ import annotations

from datetime import datetime

import pytest

from rules._means import MeansConfig
from rules.valid_means import ValidMeans, load_means_config
from storage import InfluxQuery, RetryingWriter, Series
from tests.integration.influx_db import Db

pytestmark = pytest.mark.integration

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
CONFIG = MeansConfig(measurements=[m for m in load_means_config().measurements if m.measurement == "noise"])


def local(text: str) -> int:
    return int(datetime.fromisoformat(text + "+08:00").timestamp() * 1000)


def noise(device: str, ts: int, fields: str, measurement: str = "noise") -> str:
    return f"{measurement},site=city,device={device},profile=noise_meter,domain=environment,noise_zone=2 {fields} {ts}"


def test_hourly_leq_is_the_energy_mean_of_the_raw_samples(db: Db) -> None:
    h = local("2026-03-02T10:00:00")  # day: zone 2 limit 60 dB(A)
    lines = []
    for i in range(720):  # a sample every 5 s
        ts = h + i * 5 * SECOND
        lines.append(noise("half", ts, f"noise_laeq={50.0 if i < 360 else 70.0}"))  # 30 min at 50, 30 at 70
        lines.append(noise("alternating", ts, f"noise_laeq={50.0 if i % 2 else 70.0}"))  # within every minute
        if i % 12 == 0:  # once a minute an out-of-range reading, kept uncertain: out of the mean
            lines.append(noise("flagged", ts, 'noise_laeq=131,noise_laeq.q=1i,noise_laeq.reason="outside range"'))
        else:
            lines.append(noise("flagged", ts, "noise_laeq=55"))
    db.write(lines)

    async def main(q: InfluxQuery, w: RetryingWriter) -> list[Series]:
        await ValidMeans(CONFIG, q, w).run_hour(h + HOUR)
        return await q.query('SELECT * FROM "noise_hourly" GROUP BY "device"')

    rows = {s.tags["device"]: s.rows()[0] for s in db.run_writing(main)}
    assert (rows["half"]["noise_laeq"], rows["half"]["noise_laeq.n"]) == (67.0, 60)  # the arithmetic mean is 60
    assert (rows["half"]["noise_limit_db"], rows["half"]["noise_exceeded"]) == (60.0, 1.0)  # 60 would meet it
    assert rows["alternating"]["noise_laeq"] == 67.0
    assert rows["flagged"]["noise_laeq"] == 55.0


def test_daily_row_holds_ld_and_ln(db: Db) -> None:
    day = local("2026-03-02T00:00:00")
    levels = {hour: 60.0 if 6 <= hour < 22 else 50.0 for hour in range(24)} | {23: 70.0}
    db.write(
        [
            noise("n1", day + hour * HOUR, f"noise_laeq={v},noise_laeq.n=60i", measurement="noise_hourly")
            for hour, v in levels.items()
        ]
    )

    async def main(q: InfluxQuery, w: RetryingWriter) -> list[Series]:
        await ValidMeans(CONFIG, q, w).run_day(day + 24 * HOUR)
        return await q.query('SELECT * FROM "noise_daily" GROUP BY "device"')

    (series,) = db.run_writing(main)
    (row,) = series.rows()
    assert (row["noise_laeq_ld"], row["noise_laeq_ld.n"]) == (60.0, 16)
    assert (row["noise_laeq_ln"], row["noise_laeq_ln.n"]) == (61.3, 8)  # 10·log10((7·10^5 + 10^7) / 8)
    assert (row["noise_laeq"], row["noise_laeq.n"]) == (60.5, 24)
