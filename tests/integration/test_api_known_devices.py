"""Against a real Mosquitto (issue 24): an edge account publishes telemetry, statuses and a birth for devices its
site file does not declare; the API's device list shows none of them, counts every message in
``lifeline_api_unknown_device_messages_total`` and logs each device once. The declared devices are listed."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from api import ApiService
from infra.mqtt import client
from lifeline.bridge_cli import known_site
from lifeline.broker_auth import edge_account
from telemetry import AgentState, DeviceStatus, encode, topics
from testing import Influxd, Mosquitto
from tests.helpers import account_for, wait_until
from tests.integration.test_api_support import RunningApi, add_users, gate_telemetry, login, make_config

pytestmark = pytest.mark.integration

SITE = "south-sluices"
DECLARED = ("g-01", "g-02")
INVENTED = 200


def _site_file(folder: Path) -> Path:
    """The deployment's site file of SITE: two gates (the edge's own format, read by the edge's loader)."""
    folder.mkdir(parents=True)
    path = folder / f"{SITE}.yaml"
    devices = [{"id": d, "profile": "sluice_gate_plc", "host": "127.0.0.1"} for d in DECLARED]
    path.write_text(yaml.safe_dump({"site": SITE, "devices": devices}), encoding="utf-8")
    return path


@pytest.fixture
def api(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[RunningApi]:
    _site_file(tmp_path / "sites")
    config = make_config(tmp_path, mqtt=mosquitto, sites=[str(tmp_path / "sites")])
    service = ApiService(config, load_site=known_site)  # as `lifeline api` builds it
    add_users(service)
    running = RunningApi(service)
    wait_until(service.link.connected.is_set)
    yield running
    running.stop()


def _reading(device: str, seq: int) -> bytes:
    return gate_telemetry(SITE, device, int(time.time() * 1000), seq=seq)[1]


def test_telemetry_of_invented_devices_from_an_edge_account_is_not_listed(
    api: RunningApi, mosquitto: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    service: ApiService = api.service
    edge = client(account_for(mosquitto, edge_account(SITE)), f"edge-{SITE}")
    edge.connect(mosquitto.host, mosquitto.port)
    edge.loop_start()
    try:
        with caplog.at_level(logging.WARNING, logger="lifeline.api"):
            # the account may write its site's topics: a birth naming invented devices, then their telemetry
            invented = [f"invented-{i}" for i in range(INVENTED)]
            now = int(time.time() * 1000)
            birth = AgentState(site=SITE, agent=f"edge-{SITE}", online=True, ts=now, devices=[*DECLARED, *invented])
            edge.publish(topics.agent_state(SITE), encode(birth), qos=1).wait_for_publish(10)
            for seq, device in enumerate(invented):
                edge.publish(topics.telemetry(SITE, device), _reading(device, seq), qos=1).wait_for_publish(10)
            status = DeviceStatus(site=SITE, device="invented-0", profile="sluice_gate_plc", online=True, ts=now)
            edge.publish(topics.status(SITE, "invented-0"), encode(status), qos=1).wait_for_publish(10)
            for seq, device in enumerate(DECLARED):
                edge.publish(topics.telemetry(SITE, device), _reading(device, seq), qos=1).wait_for_publish(10)
            # the declared devices' readings came last on the same connection: once they are in, all was handled
            wait_until(
                lambda: all((d := service.cache.get(SITE, g)) and d.has_values for g in DECLARED),
                15,
                "the declared gates' readings in the API",
            )
    finally:
        edge.loop_stop()
        edge.disconnect()

    h = login(api.client, "viewer")
    listed = api.client.get(f"/api/sites/{SITE}/devices", headers=h)
    assert listed.status_code == 200, listed.text
    assert sorted(d["device"] for d in listed.json()) == list(DECLARED)
    assert api.client.get(f"/api/sites/{SITE}/devices/invented-7", headers=h).status_code == 404
    sites = {s["site"]: s for s in api.client.get("/api/sites", headers=h).json()}
    assert sites[SITE]["devices"] == len(DECLARED)
    # every message of an invented device counted: the birth's 200, their 200 readings, one status
    metrics = api.client.get("/metrics").text
    assert f"lifeline_api_unknown_device_messages_total {float(2 * INVENTED + 1)}" in metrics
    logged = [r.getMessage() for r in caplog.records if "unknown device" in r.getMessage()]
    assert len(logged) == INVENTED  # once per device


def test_the_bridge_dead_letters_telemetry_of_an_invented_device(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path
) -> None:
    """The same edge account and site file against the bridge (validation.sites, as lifeline up writes it): the
    invented device's readings are dead-lettered as unknown and never stored; the declared gate's are."""
    from infra.deadletter import DeadLetterStore
    from tests.integration.test_bridge import config, influx_query, start_bridge

    _site_file(tmp_path / "sites")
    bridge, thread = start_bridge(
        config(mosquitto, influxdb, tmp_path, validation={"sites": [str(tmp_path / "sites")]})
    )
    edge = client(account_for(mosquitto, edge_account(SITE)), f"edge-{SITE}")
    edge.connect(mosquitto.host, mosquitto.port)
    edge.loop_start()
    try:
        for seq, device in enumerate(("invented-1", "invented-2", "g-01")):
            edge.publish(topics.telemetry(SITE, device), _reading(device, seq), qos=1).wait_for_publish(10)
        wait_until(lambda: influx_query(influxdb, 'SELECT * FROM "sluice_gate"'), 15, "the declared gate stored")
        wait_until(lambda: bridge.counters.dead_lettered >= 2, 15, "the invented devices dead-lettered")
    finally:
        edge.loop_stop()
        edge.disconnect()
        thread.stop()
    assert {row["device"] for row in influx_query(influxdb, 'SELECT * FROM "sluice_gate"')} == {"g-01"}
    store = DeadLetterStore(tmp_path / "dead.sqlite")
    try:
        letters = store.list(100)
        assert sorted(letter.topic for letter in letters) == [
            topics.telemetry(SITE, "invented-1"),
            topics.telemetry(SITE, "invented-2"),
        ]
        assert all("unknown device" in letter.reason for letter in letters), [letter.reason for letter in letters]
    finally:
        store.close()
