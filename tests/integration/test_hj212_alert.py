"""End to end: an HJ 212 station's hourly packet becomes readings in InfluxDB and, over its corrected limit (the
station's own hourly mean at reference O2, -ZsAvg), an alert for the environment bureau."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from alerts.lifecycle import State
from rules import PACKS
from testing import Influxd, Mosquitto
from tests.helpers import wait_until
from tests.integration.test_bridge import config as bridge_config
from tests.integration.test_bridge import start_bridge
from tests.integration.test_hj212_server import PW, RunningServer, _config, _packet
from tests.integration.test_rules_service import RunningRules, alerts_of, service_config

pytestmark = pytest.mark.integration
MN = "010000A8900016F000169D99"
SITE, DEVICE = "plant-7", "cems-9"
BEIJING = timezone(timedelta(hours=8))


def test_an_hourly_packet_over_its_corrected_limit_is_stored_and_raises(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path
) -> None:
    rules = RunningRules(service_config(mosquitto, tmp_path, [PACKS / "emissions.yaml"])).start()
    _bridge, bridge_thread = start_bridge(bridge_config(mosquitto, influxdb, tmp_path))
    station: dict[str, object] = {
        "mn": MN,
        "site": SITE,
        "device": DEVICE,
        "profile": "flue_gas_cems_hj212",
        "tags": {"source": "coal_power", "o2_ref": "6"},
    }
    server = RunningServer(_config(mosquitto, [station], tmp_path))
    try:
        hour = datetime.now(BEIJING).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
        cp = (
            f"DataTime={hour:%Y%m%d%H%M%S};a21002-Avg=43.0,a21002-ZsAvg=50.4,a21002-Flag=N;"
            "a21026-Avg=20.0,a21026-ZsAvg=23.5,a21026-Flag=N;a19001-Avg=8.2,a19001-Flag=N"
        )
        qn = datetime.now(BEIJING).strftime("%Y%m%d%H%M%S000")
        packet = _packet(f"QN={qn};ST=31;CN=2061;PW={PW};MN={MN};Flag=4;CP=&&{cp}&&")
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall(packet)
        q = f'SELECT "nox_zs_hour_avg", "nox_hour_avg" FROM "flue_gas" WHERE "device" = \'{DEVICE}\''

        def stored() -> list[list[object]]:
            resp = httpx.get(f"{influxdb.url}/query", params={"db": "lifeline", "q": q, "epoch": "ms"}, timeout=5)
            series = resp.json()["results"][0].get("series", [])
            return series[0]["values"] if series else []

        wait_until(lambda: bool(stored()), 15, "the hourly means in InfluxDB")
        ((ts, nox_zs, nox),) = stored()
        assert (ts, nox_zs, nox) == (int(hour.timestamp() * 1000), 50.4, 43.0)  # measured 43 is 50.4 at 6 % O2
        url = service_config(mosquitto, tmp_path, []).alerts.store_url

        def raised() -> list[object]:
            return [a for a in alerts_of(url, "emissions.hj212.nox_zs.hourly") if a.alert.state is State.ACTIVE_UNACK]

        wait_until(lambda: bool(raised()), 15, "the NOx exceedance raised")
        (alert,) = raised()
        assert alert.alert.key.device == DEVICE  # type: ignore[attr-defined]
        assert not alerts_of(url, "emissions.hj212.so2_zs.hourly")  # 23.5 at 6 % O2 is under 35
        time.sleep(0.2)
    finally:
        server.stop()
        bridge_thread.stop()
        rules.stop()
