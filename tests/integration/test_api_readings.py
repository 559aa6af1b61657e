"""Sites, devices, latest values, a device's and a site's history against a real Mosquitto and InfluxDB 1.6.7; the
live stream (SSE) filtered by area; /healthz with every part up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from api import ApiService
from storage.reader import choose_interval_ms
from telemetry import Sample, Telemetry, encode, topics
from testing import Influxd, Mosquitto
from tests.helpers import Publisher, wait_until
from tests.integration.test_api_support import RunningApi, add_users, login, make_config, status

pytestmark = pytest.mark.integration

SITE = "north-env"
HOUR = 3_600_000


@dataclass
class Env:
    api: RunningApi
    service: ApiService
    pub: Publisher
    t0: int  # start of the 24 h of stored history
    influx: Influxd
    database: str


def _write_history(influx: Influxd, database: str, device: str, start_ms: int, minutes: int) -> None:
    _write(
        influx,
        database,
        [
            f"water_quality,site={SITE},device={device},profile=water_quality_station "
            f"ph={7 + (i % 60) / 100},do={6 + (i % 10) / 10},nh3_n={0.5} {start_ms + i * 60_000}"
            for i in range(minutes)
        ],
    )


def _write(influx: Influxd, database: str, lines: list[str]) -> None:
    r = httpx.post(f"{influx.url}/write", params={"db": database, "precision": "ms"}, content="\n".join(lines))
    assert r.status_code == 204, r.text


_n = iter(range(1_000_000))


@pytest.fixture
def env(shared_mosquitto: Mosquitto, shared_influxdb: Influxd, tmp_path: Path) -> Iterator[Env]:
    database = f"api_readings_{next(_n)}_{id(tmp_path) % 100_000}"
    shared_influxdb.create_database(database)
    now = int(time.time() * 1000)
    t0 = now - 24 * HOUR
    _write_history(shared_influxdb, database, "wq-01", t0, 24 * 60)
    config = make_config(
        tmp_path, mqtt=shared_mosquitto, influx_url=shared_influxdb.url, database=database, stream={"keepalive_s": 1}
    )
    service = ApiService(config)
    add_users(service)
    api = RunningApi(service)
    wait_until(service.link.connected.is_set)
    pub = Publisher(shared_mosquitto)
    for device in ("wq-01", "wq-02"):
        pub.publish(*status(SITE, device, "water_quality_station", now), retain=True)
    yield Env(api, service, pub, t0, shared_influxdb, database)
    for device in ("wq-01", "wq-02"):  # clear the retained status for the next test of this worker
        pub.publish(topics.status(SITE, device), b"", retain=True)
    pub.close()
    api.stop()


def _telemetry(device: str, ts: int, site: str = SITE, **values: float | None) -> tuple[str, bytes]:
    quality = {k: {"q": "bad", "reason": "modbus timeout"} for k, v in values.items() if v is None}
    msg = Telemetry(
        site=site,
        device=device,
        profile="water_quality_station",
        measurement="water_quality",
        seq=1,
        samples=[Sample.model_validate({"ts": ts, "values": values, "quality": quality})],
    )
    return topics.telemetry(site, device), encode(msg)


def test_devices_latest_live_and_from_influxdb(env: Env) -> None:
    h = login(env.api.client, "env-north")
    wait_until(lambda: len(env.service.cache.devices(SITE)) == 2, what="retained status of both devices")
    now = int(time.time() * 1000)
    env.pub.publish(*_telemetry("wq-02", now, ph=7.7, cod=None))
    wait_until(lambda: env.service.cache.get(SITE, "wq-02").has_values)  # type: ignore[union-attr]

    devices = {d["device"]: d for d in env.api.client.get(f"/api/sites/{SITE}/devices", headers=h).json()}
    assert devices["wq-01"]["online"] is True
    assert devices["wq-01"]["quality"] == "unknown"
    assert devices["wq-02"]["quality"] == "bad"
    assert devices["wq-02"]["last_seen_ms"] == now
    assert devices["wq-02"]["area"] == "north"
    assert devices["wq-02"]["measurement"] == "water_quality"

    live = env.api.client.get(f"/api/sites/{SITE}/devices/wq-02/latest", headers=h).json()
    assert live["source"] == "live"
    assert live["values"] == {"ph": 7.7, "cod": None}
    assert live["quality"] == {"cod": "bad"}
    assert live["reasons"] == {"cod": "modbus timeout"}
    assert 0 <= live["age_ms"] <= int(time.time() * 1000) - now  # how old the live state's newest value is

    stored = env.api.client.get(f"/api/sites/{SITE}/devices/wq-01/latest", headers=h).json()
    assert stored["source"] == "influxdb"
    assert stored["time_ms"] == env.t0 + (24 * 60 - 1) * 60_000
    assert stored["values"]["ph"] == pytest.approx(7 + (24 * 60 - 1) % 60 / 100)
    assert stored["units"]["ph"] == "pH"

    site = env.api.client.get(f"/api/sites/{SITE}/latest", headers=h).json()
    assert [(x["device"], x["source"]) for x in site] == [("wq-01", "influxdb"), ("wq-02", "live")]
    sites = {s["site"]: s for s in env.api.client.get("/api/sites", headers=h).json()}
    assert sites[SITE]["devices"] == 2
    assert sites[SITE]["online"] == 2
    assert "south-sluices" not in sites
    assert env.api.client.get(f"/api/sites/{SITE}/devices/wq-99/latest", headers=h).status_code == 404


def test_history_downsampled_and_bounded(env: Env) -> None:
    h = login(env.api.client, "viewer")
    wait_until(lambda: env.service.cache.get(SITE, "wq-01") is not None)
    url = f"/api/sites/{SITE}/devices/wq-01/history"
    end = env.t0 + 24 * HOUR
    r = env.api.client.get(
        url, headers=h, params={"points": ["ph", "do"], "start_ms": env.t0, "end_ms": end, "max_points": 100}
    )
    assert r.status_code == 200, r.text
    points = r.json()["points"]
    assert 50 <= len(points) <= 100  # 1440 minutes in 15-minute buckets: 96 or 97
    assert set(points[0]["values"]) == {"ph", "do"}
    raw = env.api.client.get(
        url, headers=h, params={"points": "ph", "start_ms": env.t0, "end_ms": env.t0 + HOUR}
    ).json()["points"]
    assert len(raw) == 60
    assert raw[0]["time_ms"] == env.t0
    default = env.api.client.get(url, headers=h).json()  # every numeric point, the last 24 h
    assert default["max_points"] == 500
    assert len(default["points"]) <= 500
    assert default["points"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"points": "nope"}, "points"),
        ({"max_points": 2001}, "max_points"),
        ({"max_points": 1}, "max_points"),
        ({"start_ms": 2000, "end_ms": 1000}, "end_ms"),
        ({"start_ms": 0, "end_ms": 401 * 86_400_000}, "start_ms"),
        ({"aggregate": "sum"}, "aggregate"),
        ({"points": "Bad Name"}, "points"),
        ({"end_ms": 10**16}, "end_ms"),
    ],
)
def test_history_input_errors_name_the_field(env: Env, params: dict[str, str | int], field: str) -> None:
    h = login(env.api.client, "viewer")
    wait_until(lambda: env.service.cache.get(SITE, "wq-01") is not None)
    r = env.api.client.get(f"/api/sites/{SITE}/devices/wq-01/history", headers=h, params=params)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    named = detail["field"] if isinstance(detail, dict) else detail[0]["loc"]
    assert field in named


def test_site_history_in_one_request(env: Env) -> None:
    h = login(env.api.client, "env-north")
    wait_until(lambda: len(env.service.cache.devices(SITE)) == 2, what="retained status of both devices")
    _write_history(env.influx, env.database, "wq-02", env.t0, 60)  # an hour only
    _write_history(env.influx, env.database, "wq-77", env.t0, 60)  # not in the live cache: left out
    start, end = env.t0, env.t0 + 24 * HOUR
    params: dict[str, str | int] = {
        "profile": "water_quality_station",
        "points": "ph,do",
        "start_ms": start,
        "end_ms": end,
        "max_points": 100,
    }
    r = env.api.client.get(f"/api/sites/{SITE}/history", headers=h, params=params)
    assert r.status_code == 200, r.text
    body = r.json()
    assert {k: body[k] for k in ("site", "profile", "measurement", "start_ms", "end_ms", "max_points")} == {
        "site": SITE,
        "profile": "water_quality_station",
        "measurement": "water_quality",
        "start_ms": start,
        "end_ms": end,
        "max_points": 100,
    }
    assert body["interval_ms"] == choose_interval_ms(start, end, 100) == 15 * 60_000
    devices = body["devices"]
    assert list(devices) == ["wq-01", "wq-02"]
    assert 96 <= len(devices["wq-01"]) <= 100  # 1440 minutes in 15-minute buckets: 96 or 97
    assert 4 <= len(devices["wq-02"]) <= 5
    first = devices["wq-01"][0]
    assert set(first) == {"time_ms", "values", "quality"}
    assert set(first["values"]) == {"ph", "do"}
    assert first["quality"] == {"ph": 0, "do": 0}
    # the same buckets, in the same format, as the device endpoint gives for one device
    one = env.api.client.get(
        f"/api/sites/{SITE}/devices/wq-01/history", headers=h, params={**params, "points": ["ph", "do"]}
    ).json()
    assert devices["wq-01"] == one["points"]
    assert body["cached_before_ms"] is None  # the first read of the range: all of it from InfluxDB
    # the second: the settled buckets from the API's cache, the same values, and it says how old they are
    again = env.api.client.get(f"/api/sites/{SITE}/history", headers=h, params=params).json()
    assert again["devices"] == devices
    assert again["cached_before_ms"] is not None
    assert start < again["cached_before_ms"] <= end
    assert again["cache_age_ms"] >= 0


def test_site_history_takes_the_last_of_bool_points_and_every_device_when_none_is_known(env: Env) -> None:
    h = login(env.api.client, "viewer")
    t = env.t0 - env.t0 % HOUR + HOUR  # a whole hour, so the buckets start on it
    _write(
        env.influx,
        env.database,
        [
            f"sluice_gate,site={SITE},device=gate-09,profile=sluice_gate_plc"
            f" gate_opening={i}.0,remote_mode={i % 2 == 0} {t + i * 60_000}"
            for i in range(3)
        ],
    )
    r = env.api.client.get(
        f"/api/sites/{SITE}/history",
        headers=h,
        params={
            "profile": "sluice_gate_plc",
            "points": ["gate_opening", "remote_mode"],
            "start_ms": t,
            "end_ms": t + HOUR,
            "max_points": 2,
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["interval_ms"] == HOUR // 2  # two buckets fit; the data is all in the first
    assert r.json()["devices"] == {
        "gate-09": [
            {
                "time_ms": t,
                "values": {"gate_opening": 1.0, "remote_mode": True},
                "quality": {"gate_opening": 0, "remote_mode": 0},
            }
        ]
    }


WQ = {"profile": "water_quality_station"}


@pytest.mark.parametrize(
    ("user", "params", "status", "field"),
    [
        ("viewer", {}, 422, "profile"),
        ("viewer", {"profile": "no_such_profile"}, 422, "profile"),
        ("viewer", {"profile": "Water Quality"}, 422, "profile"),
        ("viewer", {**WQ, "points": "nope"}, 422, "points"),
        ("viewer", {**WQ, "points": "ph,Bad Name"}, 422, "points"),
        ("viewer", {**WQ, "points": "ph,"}, 422, "points"),
        ("viewer", {**WQ, "points": ",".join(f"p{i}" for i in range(51))}, 422, "points"),
        ("viewer", {**WQ, "max_points": 2001}, 422, "max_points"),
        ("viewer", {**WQ, "max_points": 1}, 422, "max_points"),
        ("viewer", {**WQ, "start_ms": 2000, "end_ms": 1000}, 422, "end_ms"),
        ("viewer", {**WQ, "start_ms": 0, "end_ms": 401 * 86_400_000}, 422, "start_ms"),
        ("viewer", {**WQ, "aggregate": "sum"}, 422, "aggregate"),
        ("viewer", {**WQ, "end_ms": 10**16}, 422, "end_ms"),
        ("op-south", WQ, 403, "site"),
    ],
    ids=[
        "no-profile",
        "unknown-profile",
        "bad-profile-name",
        "unknown-point",
        "bad-point-name",
        "empty-point-name",
        "51-points",
        "max-points-over-config",
        "one-point",
        "end-before-start",
        "range-over-config",
        "unknown-aggregate",
        "end-too-large",
        "site-outside-areas",
    ],
)
def test_site_history_errors_name_the_field(
    env: Env, user: str, params: dict[str, str | int], status: int, field: str
) -> None:
    h = login(env.api.client, user)
    r = env.api.client.get(f"/api/sites/{SITE}/history", headers=h, params=params)
    assert r.status_code == status, r.text
    detail = r.json()["detail"]
    named = detail["field"] if isinstance(detail, dict) else detail[0]["loc"]
    assert field in named


class StreamReader:
    """Reads an SSE stream in a thread; events as (kind, data)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.ready = threading.Event()
        self.stop = False
        self.thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self, url: str, headers: dict[str, str]) -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(10, read=5)) as client,
                client.stream("GET", url, headers=headers) as r,
            ):
                kind = ""
                for line in r.iter_lines():
                    self.ready.set()
                    if self.stop:
                        return
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        self.events.append((kind, json.loads(line[6:])))
        except httpx.HTTPError:  # the server went away (a failed test's teardown): the assertions tell the story
            self.ready.set()


def test_stream_filtered_by_area(env: Env) -> None:
    url = f"{env.api.url}/api/stream"
    north = StreamReader(url, login(env.api.client, "op-north"))
    south = StreamReader(url, login(env.api.client, "op-south"))
    only_alerts = StreamReader(url + "?kinds=alert", login(env.api.client, "viewer"))
    wait_until(lambda: env.service.hub.clients == 3)
    now = int(time.time() * 1000)
    env.pub.publish(*_telemetry("wq-02", now, ph=7.1))
    env.pub.publish(*_telemetry("wq-05", now, site="south-sluices", ph=7.2))
    env.pub.publish(topics.alert_event(7), json.dumps({"id": 7, "site": SITE, "state": "active_unack"}).encode())

    def readings(reader: StreamReader) -> set[str]:
        return {str(d["site"]) for k, d in reader.events if k == "reading"}

    wait_until(lambda: readings(north) == {SITE} and any(k == "alert" for k, _ in north.events))
    wait_until(lambda: readings(south) == {"south-sluices"})
    wait_until(lambda: any(k == "alert" for k, _ in only_alerts.events))
    assert all(d.get("site") != SITE for _, d in south.events)
    assert {k for k, _ in only_alerts.events} - {"ping"} == {"alert"}
    pings = [d for k, d in north.events if k == "ping"]  # the watchdog's heartbeat, with the API's clock
    assert pings
    assert pings[0]["keepalive_s"] == 1
    for reader in (north, south, only_alerts):
        reader.stop = True
    wait_until(lambda: env.service.hub.clients == 0, timeout=15, what="stream clients gone")


def test_healthz_all_up(env: Env) -> None:
    r = env.api.client.get("/healthz")
    assert r.status_code == 200, r.text
    assert r.json() == {"broker": "ok", "influxdb": "ok", "store": "ok"}


def test_the_environment_indices_are_served_within_the_users_areas(env: Env) -> None:
    t = env.t0
    _write(
        env.influx,
        env.database,
        [
            f'air_quality_aqi_hourly,site={SITE},device=air-01 aqi=142.0,level=3.0,category="轻度污染",'
            f'category_en="Lightly polluted",colour="orange",primary="pm25_1h",missing="",edition="HJ 633-2026",'
            f"iaqi_pm25_1h=142.0,iaqi_so2_1h=6.0 {t}",
            f"water_quality_class_daily,site={SITE},device=wq-01,target_class=4,water_body=river class=5.0,"
            f'class_label="V",deciding="nh3_n",used="ph,nh3_n",target_class=4.0,class_over_target=1.0,'
            f"target_missed=true {t}",
            f"water_quality_daily,site={SITE},device=wq-01,target_class=4,water_body=river nh3_n=1.8,nh3_n.n=24i,"
            f"ph=7.4,ph.n=24i {t}",
        ],
    )
    officer = login(env.api.client, "env-north")
    (aqi,) = env.api.client.get(f"/api/sites/{SITE}/aqi", headers=officer).json()
    assert (aqi["device"], aqi["aqi"], aqi["level"], aqi["category"], aqi["primary"]) == (
        "air-01",
        142.0,
        3.0,
        "轻度污染",
        ["pm25_1h"],
    )
    assert aqi["iaqi"] == {"pm25_1h": 142.0, "so2_1h": 6.0}
    (water,) = env.api.client.get(f"/api/sites/{SITE}/water-class", headers=officer).json()
    assert (water["device"], water["water_class"], water["deciding"], water["target_missed"]) == (
        "wq-01",
        5.0,
        ["nh3_n"],
        True,
    )
    assert water["means"] == {"nh3_n": 1.8, "ph": 7.4}
    outside = login(env.api.client, "op-south")  # north-env is not in the south area
    assert env.api.client.get(f"/api/sites/{SITE}/aqi", headers=outside).status_code == 403
