"""Zero loss at the edge (docs/decisions/010): gas sensor messages heard on a site broker survive an uplink outage,
a clean stop, a SIGKILL of the agent, a broker that forgets what it PUBACKed, and a full quota drops only the
oldest, counted, logged and published as the agent's health. A test-only acker stands in for the bridge: it
publishes ``Stored`` for every telemetry message it sees. Every seq and sample time is compared."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from edge_agent import EdgeAgent, EdgeConfig, build_site
from edge_agent.config import HEALTH_DEVICE, OUTBOX_FILE
from infra.mqtt import Client, MQTTMessage, client
from lifeline.broker_auth import Account, edge_account, edge_sensor_account
from telemetry import Stored, StoredRange, Telemetry, decode_agent_state, decode_telemetry, encode, topics
from testing import Mosquitto
from tests.helpers import LoopThread, Subscriber, client_account, wait_until

pytestmark = pytest.mark.integration
SITE = "plant-9"
VENDOR_TOPIC = "vendor/gasdet/GD-0001/up"
T0 = 1_780_000_000_000


def broker_of(broker: Mosquitto, account: Account) -> dict[str, Any]:
    """The one place this module says how to reach a broker: as ``account`` (the same one on every call)."""
    return broker.add(account, reconnect_initial_s=0.1, reconnect_max_s=0.3).model_dump(mode="json")


def mqtt_client(broker: Mosquitto, client_id: str) -> Client:
    account = client_account(broker, name=client_id)
    made = client(account, client_id)
    made.connect(broker.host, broker.port, keepalive=10)
    made.loop_start()
    return made


def site_config(uplink: Mosquitto, sensors: Mosquitto, state_dir: Path, **publish: Any) -> EdgeConfig:
    return EdgeConfig.model_validate(
        {
            "site": SITE,
            "broker": broker_of(uplink, edge_account(SITE)),
            "sensor_broker": broker_of(sensors, edge_sensor_account(SITE, [VENDOR_TOPIC])),
            "state_dir": str(state_dir),
            "publish": {"ack_timeout_s": 2.0, "health_interval_s": 3600, **publish},
            "devices": [{"id": "gas-1", "profile": "gas_detector", "source_id": "GD-0001"}],
        }
    )


@pytest.fixture(autouse=True)
def _uplink_account(mosquitto: Mosquitto) -> None:
    broker_of(mosquitto, edge_account(SITE))  # made now: tests stop the uplink before configuring the agent


@pytest.fixture
def site_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """The site's own broker, which the gas sensors publish to (not the uplink)."""
    broker = Mosquitto(tmp_path / "site-mosquitto", control=True)
    broker.start()
    broker_of(broker, edge_sensor_account(SITE, [VENDOR_TOPIC]))  # made now: tests stop brokers before configuring
    yield broker
    broker.remove()


class Vendor:
    """A gas detector on the site broker: message i has sample time T0 + i and lel i."""

    def __init__(self, broker: Mosquitto) -> None:
        self.client = mqtt_client(broker, "vendor-gas")

    def send(self, numbers: range) -> None:
        for i in numbers:
            body = {"sn": "GD-0001", "ts": T0 + i, "data": {"lel": float(i), "alarm": "normal", "battery": 90}}
            self.client.publish(VENDOR_TOPIC, orjson.dumps(body), qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class Acker:
    """Test-only stand-in for the bridge: publishes Stored (one range a message) for every telemetry it sees."""

    def __init__(self, broker: Mosquitto) -> None:
        self.seen = 0
        self.lock = threading.Lock()
        self.client = client(client_account(broker, name="fake-bridge"), "fake-bridge")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topics.telemetry_filter(SITE), qos=1)
        self.client.on_message = self._on_message
        self.client.connect_async(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, c: Client, userdata: Any, msg: MQTTMessage) -> None:
        t = decode_telemetry(bytes(msg.payload), msg.topic)
        ack = Stored(
            site=t.site,
            bridge="fake-bridge",
            ts=int(time.time() * 1000),
            ranges=[StoredRange(device=t.device, run=t.run, first=t.seq, last=t.seq)],
        )
        c.publish(topics.stored(SITE), encode(ack), qos=1)
        with self.lock:
            self.seen += 1

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def gas_of(sub: Subscriber) -> dict[tuple[str, int], int]:
    """(run, seq) -> sample time of every gas telemetry message received (resends collapse into one)."""
    out: dict[tuple[str, int], int] = {}
    for m in sub.snapshot():
        if m.topic == topics.telemetry(SITE, "gas-1"):
            t = decode_telemetry(m.payload)
            ts = t.samples[0].ts
            assert out.setdefault((t.run, t.seq), ts) == ts, "a resend changed its sample time"
            assert t.samples[0].values["lel"] == ts - T0
    return out


def expect(runs: list[tuple[str, range]]) -> dict[tuple[str, int], int]:
    """What must arrive: each run's messages numbered from 1, with the vendor's numbers as sample times."""
    return {(run, seq): T0 + i for run, numbers in runs for seq, i in enumerate(numbers, start=1)}


def rows_on_disk(state_dir: Path, device: str = "gas-1") -> list[tuple[str, int]]:
    """(run, seq) of the device's messages in the outbox file, read as another process would."""
    with sqlite3.connect(f"file:{state_dir / OUTBOX_FILE}?mode=ro", uri=True) as db:
        return db.execute("SELECT run, seq FROM message WHERE device = ? ORDER BY id", (device,)).fetchall()


def start_agent(config: EdgeConfig) -> tuple[EdgeAgent, LoopThread]:
    agent = EdgeAgent(build_site(config))
    thread = LoopThread(agent.run)
    wait_until(lambda: agent.sensor_link is not None and agent.sensor_link.connected, what="sensor link up")
    time.sleep(0.2)  # the SUBSCRIBE follows the CONNACK
    return agent, thread


def test_sensors_heard_on_the_site_broker_through_an_uplink_outage(
    mosquitto: Mosquitto, site_broker: Mosquitto, tmp_path: Path
) -> None:
    mosquitto.stop()
    agent, thread = start_agent(site_config(mosquitto, site_broker, tmp_path / "state"))
    vendor = Vendor(site_broker)
    try:
        vendor.send(range(1, 21))
        wait_until(lambda: agent.seq.get("gas-1") == 20, what="20 gas messages heard")
        wait_until(lambda: len(rows_on_disk(tmp_path / "state")) == 20, what="20 on disk")
        assert rows_on_disk(tmp_path / "state") == [(agent.run_id, s) for s in range(1, 21)]
        mosquitto.start()
        sub = Subscriber(mosquitto, topics.telemetry_filter(SITE))
        acker = Acker(mosquitto)
        sub.wait_for(lambda ms: len(gas_of(sub)) >= 20, timeout=15)
        assert gas_of(sub) == expect([(agent.run_id, range(1, 21))])
        wait_until(lambda: len(agent.outbox) == 0, what="every message confirmed")
        wait_until(lambda: rows_on_disk(tmp_path / "state") == [], what="and gone from the file")
        acker.close()
        sub.close()
    finally:
        vendor.close()
        thread.stop()


def test_clean_stop_during_an_outage_loses_nothing(
    mosquitto: Mosquitto, site_broker: Mosquitto, tmp_path: Path
) -> None:
    config = site_config(mosquitto, site_broker, tmp_path / "state")
    mosquitto.stop()
    vendor = Vendor(site_broker)
    first, thread = start_agent(config)
    vendor.send(range(1, 11))
    wait_until(lambda: first.seq.get("gas-1") == 10, what="first run heard 10")
    thread.stop()
    second, thread = start_agent(config)
    try:
        assert second.run_id != first.run_id
        assert second.outbox.recovered >= 10
        vendor.send(range(11, 16))
        wait_until(lambda: second.seq.get("gas-1") == 5, what="second run heard 5")
        mosquitto.start()
        sub = Subscriber(mosquitto, topics.all_filter())
        acker = Acker(mosquitto)
        sub.wait_for(lambda ms: len(gas_of(sub)) >= 15, timeout=15)
        assert gas_of(sub) == expect([(first.run_id, range(1, 11)), (second.run_id, range(11, 16))])
        births = [decode_agent_state(m.payload) for m in sub.snapshot() if m.topic == topics.agent_state(SITE)]
        assert any(b.online and b.run == second.run_id for b in births)
        wait_until(lambda: len(second.outbox) == 0, what="every message confirmed")
        acker.close()
        sub.close()
    finally:
        vendor.close()
        thread.stop()


def test_sigkilled_agent_resends_what_was_not_confirmed(
    mosquitto: Mosquitto, site_broker: Mosquitto, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    site_file = tmp_path / "site.yaml"
    site_file.write_text(yaml.safe_dump(site_config(mosquitto, site_broker, state).model_dump(mode="json")))
    sub = Subscriber(mosquitto, topics.all_filter())
    vendor = Vendor(site_broker)

    def agent() -> subprocess.Popen[bytes]:
        with (tmp_path / "agent.log").open("ab") as log:  # read it when this test fails
            return subprocess.Popen(
                [sys.executable, "-m", "lifeline", "edge", "--config", str(site_file)],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    def runs() -> list[str]:
        return [
            s.run
            for m in sub.snapshot()
            if m.topic == topics.agent_state(SITE)
            if (s := decode_agent_state(m.payload)).online
        ]

    proc = agent()
    try:
        wait_until(lambda: len(runs()) == 1, timeout=20, what="first birth")
        time.sleep(0.5)  # the sensor link subscribes right after its CONNACK
        vendor.send(range(1, 11))
        sub.wait_for(lambda ms: len(gas_of(sub)) >= 10, timeout=15)  # published and PUBACKed, not confirmed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        (first_run,) = runs()
        assert rows_on_disk(state) == [(first_run, s) for s in range(1, 11)]
        proc = agent()
        wait_until(lambda: len(runs()) == 2, timeout=20, what="second birth")
        acker = Acker(mosquitto)  # the centre starts confirming
        wait_until(lambda: rows_on_disk(state) == [], timeout=20, what="the old run's messages confirmed")
        assert acker.seen >= 10  # resent after the restart (the old run's ids kept)
        assert runs()[1] != first_run
        assert gas_of(sub) == expect([(first_run, range(1, 11))])
        acker.close()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)
        vendor.close()
        sub.close()


def test_a_broker_that_forgets_loses_nothing_once_confirmed(
    mosquitto: Mosquitto, site_broker: Mosquitto, tmp_path: Path
) -> None:
    agent, thread = start_agent(site_config(mosquitto, site_broker, tmp_path / "state"))
    vendor = Vendor(site_broker)
    try:
        vendor.send(range(1, 11))
        wait_until(lambda: agent.seq.get("gas-1") == 10 and agent.outbox.unacked == 0, what="10 PUBACKed")
        mosquitto.stop()
        (mosquitto.data_dir / "mosquitto.db").unlink(missing_ok=True)  # the broker forgets what it PUBACKed
        mosquitto.start()
        sub = Subscriber(mosquitto, topics.telemetry_filter(SITE))
        acker = Acker(mosquitto)
        sub.wait_for(lambda ms: len(gas_of(sub)) >= 10, timeout=15)
        assert gas_of(sub) == expect([(agent.run_id, range(1, 11))])
        wait_until(lambda: len(agent.outbox) == 0, what="every message confirmed")
        assert agent.outbox.stats.resent >= 10
        acker.close()
        sub.close()
    finally:
        vendor.close()
        thread.stop()


def test_full_quota_drops_the_oldest_counts_warns_and_publishes_health(
    mosquitto: Mosquitto, site_broker: Mosquitto, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    mosquitto.stop()
    config = site_config(mosquitto, site_broker, tmp_path / "state", outbox_max_bytes=8192, health_interval_s=0.5)
    with caplog.at_level(logging.WARNING, logger="lifeline.edge.outbox"):
        agent, thread = start_agent(config)
        vendor = Vendor(site_broker)
        try:
            vendor.send(range(1, 61))
            wait_until(lambda: agent.seq.get("gas-1") == 60, what="60 heard")
            time.sleep(0.3)  # a tick to write them
            dropped = agent.outbox.stats.dropped
            assert dropped > 0
            assert agent.outbox.bytes <= 8192
            mosquitto.start()
            sub = Subscriber(mosquitto, topics.telemetry_filter(SITE))
            acker = Acker(mosquitto)
            health = topics.telemetry(SITE, HEALTH_DEVICE)

            def dropped_points() -> list[Telemetry]:
                return [decode_telemetry(m.payload) for m in sub.snapshot() if m.topic == health]

            def dropped_counts() -> list[int]:
                counts = [t.samples[0].values["outbox_dropped"] for t in dropped_points()]
                return [n for n in counts if isinstance(n, int)]

            sub.wait_for(lambda ms: any(n >= dropped for n in dropped_counts()))
            wait_until(lambda: len(agent.outbox) == 0, what="the rest confirmed")
            got = gas_of(sub)
            kept = sorted(seq for _, seq in got)
            assert kept == list(range(kept[0], 61))  # the newest survive, the oldest went
            assert got == {(agent.run_id, s): T0 + s for s in kept}
            (point,) = {t.profile for t in dropped_points()}
            assert point == "edge_agent"
            acker.close()
            sub.close()
        finally:
            vendor.close()
            thread.stop()
    full = [r for r in caplog.records if "outbox full" in r.getMessage()]
    assert len(full) == 1
    assert full[0].levelno == logging.WARNING
