"""An HJ 212 pollution source is a site like any other, end to end on a real Mosquitto and InfluxDB: its station's
real-time packet goes through the ingest server and the bridge into InfluxDB, with the O2-corrected values and loads
the ingest derived and the real-time totals (-Cou) stored; an environment officer of the area that holds the
sources' site reads them through the API, an officer of another area is refused, and an admin can give the area."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from api import ApiService
from api.auth import Role
from lifeline.broker_auth import hj212_account
from testing import Influxd, Mosquitto
from tests.helpers import account_for, wait_until
from tests.integration.test_api_support import PASSWORD, RunningApi, add_users, login, make_config
from tests.integration.test_bridge import config as bridge_config
from tests.integration.test_bridge import start_bridge
from tests.integration.test_hj212_server import PW, RunningServer, _config, _packet

pytestmark = pytest.mark.integration
MN = "010000A8900016F000169D42"
SITE, DEVICE = "baoshan-sources", "cems-1"  # lifeline up's site of a scenario's HJ 212 stations
BEIJING = timezone(timedelta(hours=8))


def test_an_officer_of_the_area_reads_the_sources_corrected_values_loads_and_totals(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path
) -> None:
    _bridge, bridge_thread = start_bridge(bridge_config(mosquitto, influxdb, tmp_path))
    station: dict[str, object] = {"mn": MN, "site": SITE, "device": DEVICE, "profile": "flue_gas_cems_hj212"}
    station["tags"] = {"o2_ref": "6"}
    account = account_for(mosquitto, hj212_account([SITE]), reconnect_initial_s=0.1, reconnect_max_s=0.5)
    server = RunningServer(_config(mosquitto, [station], tmp_path, broker=account.model_dump(mode="json")))
    areas = {"wusong": ["wusong-sluices", SITE], "north": ["north-sluices", "north-env"], "south": ["south-sluices"]}
    service = ApiService(make_config(tmp_path, mqtt=mosquitto, influx_url=influxdb.url, areas=areas))
    add_users(service)
    service.users.create("env-wusong", PASSWORD, Role.ENVIRONMENT_OFFICER, ["wusong"])
    api = RunningApi(service)
    try:
        wait_until(service.link.connected.is_set, 10, "the API connected")
        now = datetime.now(BEIJING).replace(microsecond=0)
        cp = (
            f"DataTime={now:%Y%m%d%H%M%S};a21026-Rtd=100,a21026-Cou=0.36,a21026-Flag=N;a19001-Rtd=9,a19001-Flag=N;"
            "a00000-Rtd=10,a00000-Cou=36000;a01012-Rtd=0;a01013-Rtd=0;a01014-Rtd=0"
        )
        packet = _packet(f"QN={now:%Y%m%d%H%M%S}000;ST=31;CN=2011;PW={PW};MN={MN};Flag=4;CP=&&{cp}&&")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall(packet)
        fields = '"so2", "so2_zs", "so2_load", "so2_total", "flue_flow_total"'
        q = f'SELECT {fields} FROM "flue_gas" WHERE "site" = \'{SITE}\' AND "device" = \'{DEVICE}\''

        def stored() -> list[list[object]]:
            resp = httpx.get(f"{influxdb.url}/query", params={"db": "lifeline", "q": q, "epoch": "ms"}, timeout=5)
            series = resp.json()["results"][0].get("series", [])
            return series[0]["values"] if series else []

        wait_until(lambda: bool(stored()), 15, "the real-time sample in InfluxDB")
        ((ts, so2, so2_zs, so2_load, so2_total, flow_total),) = stored()
        # 100 mg/m³ at 9 % O2 is 100 × (21 − 6) / (21 − 9) = 125 at 6 %; 100 mg/m³ × 36,000 m³/h = 3.6 kg/h
        assert (ts, so2, so2_zs, so2_load, so2_total, flow_total) == (
            int(now.timestamp() * 1000), 100.0, 125.0, 3.6, 0.36, 36000.0
        )  # fmt: skip

        with httpx.Client(base_url=api.url, timeout=10) as client:
            officer = login(client, "env-wusong")
            wait_until(
                lambda: client.get(f"/api/sites/{SITE}/devices/{DEVICE}/latest", headers=officer).status_code == 200,
                15,
                "the API knows the station",
            )

            def latest() -> dict[str, object]:
                r = client.get(f"/api/sites/{SITE}/devices/{DEVICE}/latest", headers=officer)
                assert r.status_code == 200, r.text
                return dict(r.json()["values"])

            wait_until(lambda: "so2_zs" in latest(), 15, "the officer sees the readings")
            values = latest()
            assert (values["so2"], values["so2_zs"], values["so2_load"], values["so2_total"]) == (
                100.0,
                125.0,
                3.6,
                0.36,
            )
            sites = client.get("/api/sites", headers=officer).json()
            assert SITE in {s["site"] for s in sites}

            other = login(client, "env-north")  # an officer of another area
            r = client.get(f"/api/sites/{SITE}/devices/{DEVICE}/latest", headers=other)
            assert r.status_code == 403, r.text

            admin = login(client, "boss")  # the admin can give an officer the sources' area
            body = {"username": "env-two", "password": "a-long-pass-phrase-42", "role": "environment_officer"}
            r = client.post("/api/users", headers=admin, json={**body, "areas": ["wusong"]})
            assert r.status_code == 201, r.text
        time.sleep(0.1)
    finally:
        api.stop()
        server.stop()
        bridge_thread.stop()
