"""``GET /api/reports/{kind}`` against a real InfluxDB 1.6.7 and the alert store: the monthly air report of an
environment officer's area as CSV and XLSX, the PDF, the source report from stored hourly means, the safety report
from an alert's history; roles and areas refused with 403 (an environment officer of another area, other roles)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from openpyxl import load_workbook

from alerts.lifecycle import Alert, AlertKey, Severity, acknowledge, clear, raise_
from alerts.store import AlertMeta
from api import ApiService
from reports import ReportPeriod
from testing import Influxd
from tests.integration.test_api_support import Clock, RunningApi, add_users, login, make_config

pytestmark = pytest.mark.integration

HOUR = 3_600_000
MINUTE = 60_000
OCT = ReportPeriod.parse("month", "2026-10")
D1, D2 = OCT.start_ms, OCT.start_ms + 24 * HOUR  # 2026-10-01 and -02, 00:00 Beijing
NORTH, SOUTH = "north-env", "south-sluices"
AIR = "profile=air_quality_station,domain=environment"
CEMS = "profile=flue_gas_cems,domain=environment"


def _aqi(site: str, device: str, aqi: float, level: float, zh: str, primary: str, ts: int) -> str:
    return (
        f'air_quality_aqi_daily,site={site},device={device},{AIR} aqi={aqi},level={level},category="{zh}",'
        f'primary="{primary}",missing="",edition="HJ 633-2026" {ts}'
    )


def _lines() -> list[str]:
    return [
        _aqi(NORTH, "air-1", 45.0, 1.0, "优", "", D1),
        _aqi(NORTH, "air-1", 135.0, 3.0, "轻度污染", "pm25", D2),
        _aqi(SOUTH, "air-9", 80.0, 2.0, "良", "pm10", D1),
        f"air_quality_aqi_daily,site={NORTH},device=air-1,{AIR} aqi=300.0,level=5.0 {OCT.end_ms}",  # November
        f"flue_gas_hourly,site={NORTH},device=cems-1,{CEMS} so2_zs=30.0,so2_zs.n=60i,so2_load=2.0,so2_load.n=60i {D1}",
        f'flue_gas_hourly,site={NORTH},device=cems-1,{CEMS} so2_zs.n=10i,so2_zs.q=2i,so2_zs.reason="too few" '
        f"{D1 + HOUR}",
        f"flue_gas_hourly,site={NORTH},device=cems-1,{CEMS} so2_zs=40.0,so2_zs.n=60i,so2_load=3.5,so2_load.n=60i "
        f"{D1 + 2 * HOUR}",
    ]


@dataclass
class Env:
    api: RunningApi
    service: ApiService


@pytest.fixture
def env(shared_influxdb: Influxd, tmp_path: Path) -> Iterator[Env]:
    database = f"api_reports_{uuid.uuid4().hex[:10]}"
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


def _get(env: Env, user: str, kind: str, **params: str) -> httpx.Response:
    params.setdefault("format", "csv")
    return env.api.client.get(f"/api/reports/{kind}", params=params, headers=login(env.api.client, user))


def _csv(r: httpx.Response) -> list[list[str]]:
    assert r.status_code == 200, r.text
    return list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))


def test_monthly_air_report_of_the_officers_area(env: Env) -> None:
    r = _get(env, "env-north", "air", period="month", date="2026-10", format="csv")
    rows = _csv(r)
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="air-month-2026-10.csv"' in r.headers["content-disposition"]
    assert rows[0] == ["报表", "环境空气质量月报 2026年10月"]
    days = [row for row in rows if row[:2] in (["north-env", "air-1"], ["south-sluices", "air-9"])]
    # north only (the officer's area), October only; the station table's row comes last
    assert [d[2:6] for d in days[:2]] == [["2026-10-01", "45", "1", "优"], ["2026-10-02", "135", "3", "轻度污染"]]
    assert all(d[0] == NORTH for d in days)
    assert ["优良天数比例(%)", "50"] in rows


def test_admin_sees_every_area_and_the_xlsx_loads(env: Env) -> None:
    r = _get(env, "boss", "air", period="month", date="2026-10", format="xlsx")
    assert r.status_code == 200, r.text
    wb = load_workbook(io.BytesIO(r.content))
    stations = [tuple(x) for x in wb["stations"].iter_rows(values_only=True)][2:]
    assert [(s[0], s[1]) for s in stations] == [(NORTH, "air-1"), (SOUTH, "air-9")]
    cover = dict(x[:2] for x in wb["报表"].iter_rows(values_only=True) if x and x[0])
    assert cover["优良天数比例(%)"] == pytest.approx(66.7)  # 2 good of 3 station-days


def test_pdf_of_the_day(env: Env) -> None:
    r = _get(env, "env-north", "air", period="day", date="2026-10-02", format="pdf")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")


def test_source_report_from_the_stored_hourly_means(env: Env) -> None:
    rows = _csv(_get(env, "env-north", "source", period="day", date="2026-10-01", format="csv"))
    summary = [row for row in rows if row[:3] == [NORTH, "cems-1", "so2"]]
    # no permit configured: reported, not judged; 2 valid hours of 24, 5.5 kg over 2 hours
    assert summary == [[NORTH, "cems-1", "so2", "so2_zs", "无许可", "", "2", "8.3", "", "", "40", "5.5", "2"]]
    flags = [row[6] for row in rows if row[:2] == [NORTH, "cems-1"] and row[3] == "so2_zs" and len(row) == 9]
    assert flags == ["有效", "无效: too few", "有效"]
    month = _csv(_get(env, "env-north", "source", period="month", date="2026-10", format="csv"))
    assert ["小时有效均值"] not in month  # a month lists the daily means
    assert ["小时有效均值"] in _csv(_get(env, "env-north", "source", period="month", date="2026-10", hourly="true"))


def test_safety_report_from_the_alert_history(env: Env) -> None:
    t = D1 + 8 * HOUR
    alert = Alert(AlertKey("gas.lel_high", NORTH, "gas-1", "lel"))
    raise_(alert, Severity.CRITICAL, 30.0, t)
    acknowledge(alert, "safety-north", t + 5 * MINUTE)
    clear(alert, t + 20 * MINUTE)
    with env.service.store.begin() as tx:
        tx.save(alert, AlertMeta("LEL high", "safety", "north", "gas_detector"), None)
    rows = _csv(_get(env, "safety-north", "safety", period="month", date="2026-10", format="csv"))
    assert [NORTH, "gas-1", "gas.lel_high", "critical", "2026-10-01 08:00", "5", "20"] in rows
    assert _get(env, "env-north", "safety", period="month", date="2026-10").status_code == 403


@pytest.mark.parametrize(
    ("user", "kind", "params", "status"),
    [
        ("env-north", "air", {"area": "south"}, 403),  # an environment officer of another area
        ("env-north", "air", {"site": SOUTH}, 403),
        ("env-north", "air", {"area": "nowhere"}, 422),
        ("op-north", "air", {}, 403),  # a gate operator
        ("viewer", "water", {}, 403),
        ("safety-north", "source", {}, 403),
        ("env-north", "air", {"date": "2026-13"}, 422),
        ("env-north", "air", {"period": "day"}, 422),  # a day report needs YYYY-MM-DD
    ],
    ids=[
        "other-area",
        "other-area-site",
        "unknown-area",
        "gate-operator",
        "viewer",
        "safety-on-env",
        "bad-month",
        "day",
    ],
)
def test_roles_and_areas(env: Env, user: str, kind: str, params: dict[str, str], status: int) -> None:
    query = {"period": "month", "date": "2026-10", "format": "csv", **params}
    assert _get(env, user, kind, **query).status_code == status
