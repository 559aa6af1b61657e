"""The environment routes against a real InfluxDB 1.6.7: the latest and hourly AQI of the air stations, the daily
water class with its deciding parameters and target, a device's stored valid means with the limits that apply;
for the environment officer (their areas only) and the admin, refused to the other roles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api import ApiService
from testing import Influxd
from tests.integration.test_api_support import NOW_MS, Clock, RunningApi, add_users, login, make_config

pytestmark = pytest.mark.integration

HOUR = 3_600_000
DAY = 24 * HOUR
H1, H2 = NOW_MS - 3 * HOUR, NOW_MS - 2 * HOUR
D1 = NOW_MS - 2 * DAY  # a stored day (its start)
NORTH, SOUTH = "north-env", "south-sluices"  # areas north and south of test_api_support.AREAS
AIR = "profile=air_quality_station,domain=environment"
WQ = "profile=water_quality_station,domain=environment,target_class=III,water_body=river"


@dataclass
class Env:
    api: RunningApi
    service: ApiService


def _lines() -> list[str]:
    aqi = (
        'aqi={a},level={lv},category="{zh}",category_en="{en}",colour="{c}",primary="{p}",iaqi_pm25={a},'
        'iaqi_no2=40.0,missing="",edition="HJ 633-2026"'
    )
    return [
        f"air_quality_aqi_hourly,site={NORTH},device=air-1,{AIR} "
        + aqi.format(a=120.0, lv=3.0, zh="轻度污染", en="lightly polluted", c="orange", p="pm25")
        + f" {H1}",
        f"air_quality_aqi_hourly,site={NORTH},device=air-1,{AIR} "
        + aqi.format(a=231.0, lv=5.0, zh="重度污染", en="heavily polluted", c="purple", p="pm25")
        + f" {H2}",
        f"air_quality_aqi_hourly,site={SOUTH},device=air-9,{AIR} "
        + aqi.format(a=40.0, lv=1.0, zh="优", en="excellent", c="green", p="")
        + f" {H2}",
        # the water station's day: class IV decided by TP, target III missed
        f'water_quality_class_daily,site={NORTH},device=wq-1,{WQ} class=4.0,class_label="IV",quality_en='
        f'"lightly polluted",deciding="tp",used="ph,do,nh3_n,tp",water_body="river",class_tp=4.0,'
        f"class_nh3_n=2.0,class_ph=1.0,class_do=2.0,target_class=3.0,class_over_target=1.0,target_missed=true {D1}",
        f"water_quality_daily,site={NORTH},device=wq-1,{WQ} tp=0.25,tp.n=24i,nh3_n=0.42,nh3_n.n=24i {D1}",
        # stored hourly means: one valid, one invalid (with its reason)
        f"water_quality_hourly,site={NORTH},device=wq-1,{WQ} tp=0.25,tp.n=6i,nh3_n=0.4,nh3_n.n=6i {H1}",
        f'water_quality_hourly,site={NORTH},device=wq-1,{WQ} tp.n=0i,tp.q=2i,tp.reason="invalid: 0 of 60 minutes '
        f'valid, 1 needed",nh3_n=0.5,nh3_n.n=3i {H2}',
        f"air_quality_daily,site={NORTH},device=air-1,{AIR} no2=82.0,no2.n=24i,so2=9.0,so2.n=24i {D1}",
    ]


@pytest.fixture
def env(shared_influxdb: Influxd, tmp_path: Path) -> Iterator[Env]:
    database = f"api_env_{uuid.uuid4().hex[:10]}"
    shared_influxdb.create_database(database)
    r = httpx.post(
        f"{shared_influxdb.url}/write",
        params={"db": database, "precision": "ms"},
        content="\n".join(_lines()).encode(),
        timeout=10,
    )
    assert r.status_code == 204, r.text
    service = ApiService(make_config(tmp_path, influx_url=shared_influxdb.url, database=database), clock=Clock())
    add_users(service)
    api = RunningApi(service, connect=False)
    yield Env(api, service)
    api.stop()


def _get(env: Env, user: str, path: str, **params: str | int) -> httpx.Response:
    return env.api.client.get(path, params=params, headers=login(env.api.client, user))


def test_latest_aqi_per_station_by_area(env: Env) -> None:
    boss = _get(env, "boss", "/api/env/aqi/latest")
    assert boss.status_code == 200, boss.text
    got = {(a["site"], a["device"]): a for a in boss.json()}
    assert set(got) == {(NORTH, "air-1"), (SOUTH, "air-9")}
    a1 = got[(NORTH, "air-1")]
    assert (a1["time_ms"], a1["aqi"], a1["level"], a1["category_zh"], a1["category_en"], a1["colour"]) == (
        H2,
        231.0,
        5,
        "重度污染",
        "heavily polluted",
        "purple",
    )
    assert (a1["primary"], a1["iaqi"], a1["edition"]) == (["pm25"], {"pm25": 231.0, "no2": 40.0}, "HJ 633-2026")
    assert got[(SOUTH, "air-9")]["primary"] == []
    north = _get(env, "env-north", "/api/env/aqi/latest")  # an environment officer sees the stations of the north
    assert [(a["site"], a["device"]) for a in north.json()] == [(NORTH, "air-1")]
    assert _get(env, "env-north", "/api/env/aqi/latest", site=SOUTH).status_code == 403


def test_hourly_aqi_history(env: Env) -> None:
    r = _get(env, "env-north", f"/api/env/sites/{NORTH}/devices/air-1/aqi", start_ms=H1, end_ms=NOW_MS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(p["time_ms"], p["aqi"], p["level"]) for p in body["points"]] == [(H1, 120.0, 3), (H2, 231.0, 5)]
    assert (body["start_ms"], body["end_ms"], body["period"]) == (H1, NOW_MS, "hour")
    r = _get(env, "env-north", f"/api/env/sites/{NORTH}/devices/air-1/aqi", start_ms=NOW_MS, end_ms=H1)
    assert r.status_code == 422
    assert r.json()["detail"]["field"] == "end_ms"


def test_daily_water_class_with_deciding_parameters_and_target(env: Env) -> None:
    r = _get(env, "env-north", "/api/env/water/classes", site=NORTH)
    assert r.status_code == 200, r.text
    (day,) = r.json()
    assert (day["device"], day["time_ms"], day["water_body"]) == ("wq-1", D1, "river")
    assert (day["water_class"], day["label"], day["deciding"], day["deciding_values"]) == (
        4,
        "IV",
        ["tp"],
        {"tp": 0.25},
    )
    assert (day["target_class"], day["target_label"], day["target_missed"]) == (3, "III", True)
    assert day["parameters"] == {"tp": 4, "nh3_n": 2, "ph": 1, "do": 2}
    assert day["used"] == ["ph", "do", "nh3_n", "tp"]


def test_stored_means_with_the_limits_that_apply(env: Env) -> None:
    r = _get(env, "env-north", f"/api/env/sites/{NORTH}/devices/wq-1/means", start_ms=H1, end_ms=NOW_MS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["measurement"], body["profile"], body["period"]) == (
        "water_quality_hourly",
        "water_quality_station",
        "hour",
    )
    first, second = body["rows"]
    assert (first["time_ms"], first["values"], first["counts"]) == (
        H1,
        {"tp": 0.25, "nh3_n": 0.4},
        {"tp": 6, "nh3_n": 6},
    )
    assert second["values"] == {"nh3_n": 0.5}
    assert second["invalid"] == {"tp": "invalid: 0 of 60 minutes valid, 1 needed"}
    limits = {(lim["point"], lim["direction"]): lim for lim in body["limits"]}
    # the target class III of a river, GB 3838-2002 Table 1: TP ≤ 0.2, NH3-N ≤ 1.0, DO ≥ 5, pH 6-9
    assert limits[("tp", "high")]["value"] == 0.2
    assert limits[("nh3_n", "high")]["value"] == 1.0
    assert limits[("do", "low")]["value"] == 5.0
    assert (limits[("ph", "low")]["value"], limits[("ph", "high")]["value"]) == (6.0, 9.0)
    assert "class III (river)" in limits[("tp", "high")]["title"]

    r = _get(env, "boss", f"/api/env/sites/{NORTH}/devices/air-1/means", period="day", start_ms=D1, end_ms=NOW_MS)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["rows"][0]["values"] == {"no2": 82.0, "so2": 9.0}
    rules = {(lim["source"], lim["point"], lim["value"]) for lim in body["limits"]}
    assert {
        ("air.no2.daily", "no2", 80.0),
        ("air.so2.daily", "so2", 150.0),
        ("air.o3.max8h", "o3_8h_max", 160.0),
    } <= rules
    assert not any(lim["source"].endswith(".hourly") for lim in body["limits"])  # the daily limits only

    missing = _get(env, "boss", f"/api/env/sites/{NORTH}/devices/nothing/means")
    assert missing.status_code == 404
    assert missing.json()["detail"]["field"] == "device"


@pytest.mark.parametrize("user", ["viewer", "op-north", "safety-north"])
def test_other_roles_are_refused(env: Env, user: str) -> None:
    for path in (
        "/api/env/aqi/latest",
        "/api/env/water/classes",
        f"/api/env/sites/{NORTH}/devices/wq-1/means",
        f"/api/env/sites/{NORTH}/devices/air-1/aqi",
    ):
        r = _get(env, user, path)
        assert r.status_code == 403, (user, path, r.text)
        assert "may not read the environment indices" in r.json()["detail"]["reason"]


def test_an_officer_is_kept_to_their_areas(env: Env) -> None:
    for path in (f"/api/env/sites/{SOUTH}/devices/air-9/aqi", f"/api/env/sites/{SOUTH}/devices/air-9/means"):
        r = _get(env, "env-north", path)
        assert r.status_code == 403, path
        assert r.json()["detail"]["field"] == "site"
    assert _get(env, "env-north", "/api/env/water/classes").status_code == 200


def test_a_sources_means_carry_its_permit(shared_influxdb: Influxd, tmp_path: Path) -> None:
    """The API's permits_file: a source's permit is among the limits of its means, a flue-gas pollutant's on its
    O2-corrected point (the permit's values are at the reference O2), hourly or daily as the period asks."""
    database = f"api_env_{uuid.uuid4().hex[:10]}"
    shared_influxdb.create_database(database)
    line = f"flue_gas_hourly,site={NORTH},device=cems-1,profile=flue_gas_cems so2=80,so2.n=60i,so2_zs=90,so2_zs.n=60i"
    r = httpx.post(
        f"{shared_influxdb.url}/write",
        params={"db": database, "precision": "ms"},
        content=f"{line} {H1}\n{line.replace('_hourly', '_daily')} {D1}".encode(),
        timeout=10,
    )
    assert r.status_code == 204, r.text
    permits = tmp_path / "permits.yaml"
    permits.write_text(f"sources:\n  - {{site: {NORTH}, device: cems-1, template: gb13223_coal_new}}\n")
    config = make_config(tmp_path, influx_url=shared_influxdb.url, database=database, permits_file=permits)
    service = ApiService(config, clock=Clock())
    add_users(service)
    api = RunningApi(service, connect=False)
    try:
        env = Env(api, service)
        r = _get(env, "env-north", f"/api/env/sites/{NORTH}/devices/cems-1/means", start_ms=H1, end_ms=NOW_MS)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["rows"][0]["values"] == {"so2": 80.0, "so2_zs": 90.0}
        permit = {lim["point"]: lim for lim in body["limits"] if lim["source"] == "permit"}
        # GB 13223-2011 Table 1, a new coal-fired unit: SO2, NOx, dust hourly at 6 % O2
        assert (permit["so2_zs"]["value"], permit["so2_zs"]["direction"], permit["so2_zs"]["strict"]) == (
            100.0,
            "high",
            True,
        )
        assert "GB 13223-2011" in permit["so2_zs"]["title"]
        assert "so2" not in permit  # the measured value is not what the permit judges
        # a daily period: the permit's daily limits (this template has none)
        r = _get(
            env, "env-north", f"/api/env/sites/{NORTH}/devices/cems-1/means", period="day", start_ms=D1, end_ms=NOW_MS
        )
        assert r.status_code == 200, r.text
        assert r.json()["rows"][0]["values"]["so2_zs"] == 90.0
        assert not [lim for lim in r.json()["limits"] if lim["source"] == "permit"]
    finally:
        api.stop()
