"""The derived series through the v2 transport: the valid-means job writes the hourly means, the AQI, the noise
verdict and the daily water class with ``storage.derived_writer`` on an InfluxDB 2.x write API (the nginx
2.x-compat front of tests/servers.py over InfluxDB 1.6.7), and reads them back with InfluxQL, as ``lifeline up``
now runs it on the v2 transport (no longer switched off there)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from rules._means import MeansConfig
from rules.standards import hourly_aqi
from rules.valid_means import ValidMeans, load_means_config
from storage import InfluxQuery, RetryingWriter, Series, V2Writer
from tests.integration.influx_db import Db
from tests.integration.test_valid_means import local
from tests.servers import InfluxCompatProxy

pytestmark = pytest.mark.integration

MINUTE = 60_000
HOUR = 60 * MINUTE
CONFIG = load_means_config()
AIR = {"so2": 12, "no2": 35, "co": 0.8, "o3": 60, "pm10": 180, "pm25": 95}


@pytest.fixture
def compat(tmp_path: Path, db: Db) -> Iterator[InfluxCompatProxy]:
    """The 2.x write API in front of the worker's shared InfluxDB (the test's database as bucket ``db/autogen``)."""
    proxy = InfluxCompatProxy(tmp_path / "influx-compat", db.server.url)
    proxy.start()
    yield proxy
    proxy.stop()


def only(*measurements: str) -> MeansConfig:
    return MeansConfig(measurements=[m for m in CONFIG.measurements if m.measurement in measurements])


def test_every_derived_series_is_written_through_the_v2_writer(db: Db, compat: InfluxCompatProxy) -> None:
    h = local("2026-03-02T23:00:00")  # night: zone 2 limit 50 dB(A) (GB 3096-2008 Table 1)
    day = local("2026-03-02T00:00:00")
    aq = "air_quality,site=city,device=a1,profile=air_quality_station " + ",".join(f"{k}={v}" for k, v in AIR.items())
    aq += " {}"
    noise = "noise,site=city,device=n1,profile=noise_meter,noise_zone=2 noise_laeq=52 {}"
    water = (
        "water_quality_hourly,site=river,device=w1,profile=water_quality_station,water_body=river,"
        "target_class=III ph=7.6,do=6.5,codmn=3.8,cod=14,nh3_n=0.42,tp=0.25,ph.n=12i,do.n=12i,codmn.n=12i,"
        "cod.n=12i,nh3_n.n=12i,tp.n=12i {}"
    )
    db.write(
        [aq.format(h + i * MINUTE) for i in range(60)]
        + [noise.format(h + i * MINUTE) for i in range(60)]
        + [water.format(day + i * HOUR) for i in range(24)]
    )

    async def main(q: InfluxQuery, w: RetryingWriter) -> dict[str, list[Series]]:
        assert isinstance(w.writer, V2Writer)  # the 2.x/3.x transport, not 1.x /write
        job = ValidMeans(only("air_quality", "noise", "water_quality"), q, w)
        assert await job.run_hour(h + HOUR) == 3  # air means, its AQI, noise means with the verdict
        await job.run_day(day + 24 * HOUR)
        names = ("air_quality_hourly", "air_quality_aqi_hourly", "noise_hourly", "water_quality_class_daily")
        return {name: await q.query(f'SELECT * FROM "{name}" GROUP BY "device"') for name in names}

    stored = db.run_writing(main, v2_url=compat.url)
    rows = {name: series[0].rows()[0] for name, series in stored.items() if series}
    assert set(rows) == {"air_quality_hourly", "air_quality_aqi_hourly", "noise_hourly", "water_quality_class_daily"}
    assert (rows["air_quality_hourly"]["time"], rows["air_quality_hourly"]["pm25"]) == (h, 95.0)
    assert rows["air_quality_hourly"]["pm25.n"] == 60
    expected = hourly_aqi({f"{k}_1h": v for k, v in AIR.items()}, datetime.fromtimestamp(h / 1000).astimezone())
    assert expected.aqi is not None
    assert rows["air_quality_aqi_hourly"]["aqi"] == float(expected.aqi)
    assert (rows["noise_hourly"]["noise_limit_db"], rows["noise_hourly"]["noise_exceeded"]) == (50.0, 1.0)
    water_class = rows["water_quality_class_daily"]
    assert (water_class["time"], water_class["class"], water_class["target_missed"]) == (day, 4.0, True)
    compat.stop()  # nginx writes its access log out as it stops
    log = (compat.data_dir / "nginx-access.log").read_text(encoding="utf-8")
    assert log.count("POST /api/v2/write") >= 2  # the hour's rows and the day's, through the 2.x API
