"""The central broker restarts while MQTT sensors publish to it, as ``lifeline up`` runs them (the edge's sensor link
on the same broker as its uplink, Mosquitto with persistence on): every reading the broker acknowledged to a sensor,
before, during and after the restart, reaches the edge's uplink (its outbox, counted through the sample journal).

Without a persistent session on the sensor link the broker forgets its subscriptions at the restart, and what the
sensors publish between their reconnect and the link's is dropped; with one (fixed client id, clean start false, a
session expiry, QoS 1 subscriptions) the broker queues it and hands it over when the link is back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict
from pathlib import Path

import orjson
import pytest

from device_profiles import load_catalogue
from edge_agent import EdgeAgent, EdgeConfig, build_site
from lifeline.broker_auth import edge_account, edge_sensor_account
from simulators import Sensor, SensorFleet, make_behaviour
from testing import Mosquitto
from tests.helpers import LoopThread, account_for, client_account, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SITE = "restart-site"
SENSORS = 6
INTERVAL_S = 0.1  # each gas detector publishes ten readings a second
RESTARTS = 3


def _edge_config(broker: Mosquitto, tmp_path: Path) -> EdgeConfig:
    ids = [f"GD-{i}" for i in range(1, SENSORS + 1)]
    sensors = edge_sensor_account(SITE, [f"vendor/gasdet/{vid}/up" for vid in ids])
    return EdgeConfig.model_validate(
        {
            "site": SITE,
            "broker": account_for(broker, edge_account(SITE)).model_dump(mode="json"),
            "sensor_broker": account_for(broker, sensors).model_dump(mode="json"),  # the same broker, as lifeline up
            "state_dir": str(tmp_path / "edge"),
            "dead_letter_path": str(tmp_path / "edge" / "dead.sqlite"),
            "sample_journal": str(tmp_path / "edge" / "journal.jsonl"),
            "devices": [
                {"id": f"gas-{i}", "profile": "gas_detector", "source_id": vid} for i, vid in enumerate(ids, 1)
            ],
        }
    )


def _journal(path: Path) -> dict[str, set[int]]:
    """Sample times per device of every telemetry message the edge put in its outbox (the uplink's intake)."""
    out: dict[str, set[int]] = defaultdict(set)
    for line in path.read_bytes().splitlines() if path.exists() else []:
        entry = orjson.loads(line)
        if entry["device"] != "edge":
            out[entry["device"]].update(entry["ts"])
    return out


def _restart(broker: Mosquitto, agent: EdgeAgent, fleet: SensorFleet) -> None:
    link = agent.sensor_link
    assert link is not None
    before, connections = fleet.published, link.connections
    broker.restart()  # SIGTERM (Mosquitto saves its sessions), then the same port and persistence folder
    wait_until(lambda: link.connections > connections, 20, "the sensor link back after the restart")
    assert link.session_present, "the broker kept the sensor link's session"
    wait_until(lambda: fleet.published >= before + 20 * SENSORS, 30, "sensors publishing after the restart")


def test_a_broker_restart_loses_no_sensor_reading(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path / "mosquitto", control=True)  # persistence on, saved every second and at a stop
    broker.start()
    catalogue = load_catalogue()
    published: dict[str, set[int]] = defaultdict(set)  # what the broker acknowledged to the sensors
    lock = threading.Lock()

    def acknowledged(device: str, at: float) -> None:
        with lock:
            published[device].add(int(at * 1000))  # the gas detector's epoch_ms timestamp

    fleet = SensorFleet(
        [
            Sensor(f"gas-{i}", catalogue["gas_detector"], make_behaviour("gas_detector", i), f"GD-{i}", INTERVAL_S)
            for i in range(1, SENSORS + 1)
        ],
        broker.host,
        broker.port,
        tick_s=0.02,
        credentials=client_account(broker, "sim"),
    )
    fleet.on_published = acknowledged
    config = _edge_config(broker, tmp_path)
    agent = EdgeAgent(build_site(config))
    edge = LoopThread(agent.run)
    sensors: LoopThread | None = None
    try:
        wait_until(lambda: agent.sensor_link is not None and agent.sensor_link.connected, 15, "sensor link up")
        time.sleep(0.5)  # the link's SUBSCRIBE follows its CONNACK

        async def run_fleet(stop: asyncio.Event) -> None:
            await fleet.run(stop)

        sensors = LoopThread(run_fleet)
        wait_until(lambda: fleet.published >= 5 * SENSORS, 15, "sensors publishing")
        for _ in range(RESTARTS):  # who reconnects first is down to the jitter: each restart is one more draw
            _restart(broker, agent, fleet)
    finally:
        if sensors is not None:
            sensors.stop()
    try:
        with lock:
            sent = {device: set(times) for device, times in published.items()}
        total = sum(len(times) for times in sent.values())
        journal = tmp_path / "edge" / "journal.jsonl"

        def all_taken() -> bool:
            taken = _journal(journal)
            return all(times <= taken.get(device, set()) for device, times in sent.items())

        try:
            wait_until(all_taken, 20, "every acknowledged reading in the edge's outbox")
        finally:
            taken = _journal(journal)
            lost = {d: sorted(times - taken.get(d, set())) for d, times in sent.items() if times - taken.get(d, set())}
            assert not lost, f"{sum(map(len, lost.values()))} of {total} readings lost: {lost}"
        assert total >= (5 + 20 * RESTARTS) * SENSORS, f"only {total} readings were published"
    finally:
        edge.stop()
        broker.remove()
