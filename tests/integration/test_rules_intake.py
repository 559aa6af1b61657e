"""The rules service on a real Mosquitto: no false "no data" through a broker outage whose backlog the edge sends
afterwards, and no alert from a forged body or an unknown device (the engine's dead letters keep them).

The edge is played by a test publisher with the site's own broker account, sampling every 0.5 s with the wall
clock's time and keeping what it could not send, as the edge's outbox does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from alerts.config import AlertServiceConfig
from alerts.store import AlertStore, StoredAlert
from edge_agent.config import DeviceConfig, EdgeConfig
from infra.deadletter import DeadLetterStore
from infra.mqtt import client
from lifeline.broker_auth import edge_account, rules_account, rules_publisher_account
from lifeline.rules_cli import RulesServiceConfig
from rules import PACKS
from rules.config import RulesConfig
from telemetry import AgentState, Sample, Telemetry, encode, topics
from testing import Mosquitto
from tests.helpers import Publisher, account_for, wait_until
from tests.integration.test_rules_service import RunningRules

pytestmark = pytest.mark.integration

GATES = ("gate-1", "gate-2", "gate-3")
SITE = "plant-1"


def site_files(tmp_path: Path) -> Path:
    """The deployment's site files: plant-1 with three sluice gates, mini-water and mini-safety a gas detector each."""
    folder = tmp_path / "sites"
    folder.mkdir()
    sites = {
        SITE: [DeviceConfig(id=g, profile="sluice_gate_plc", host="127.0.0.1") for g in GATES],
        "mini-water": [DeviceConfig(id="gas-1", profile="gas_detector")],
        "mini-safety": [DeviceConfig(id="gas-1", profile="gas_detector")],
    }
    for site, devices in sites.items():
        data = EdgeConfig(site=site, devices=devices).model_dump(mode="json", exclude_defaults=True)
        (folder / f"{site}.yaml").write_text(yaml.safe_dump(data))
    return folder


AGENT_PACK = """
rules:
  - id: device.silent.modbus
    title: Modbus device sends no data
    select: {profile: sluice_gate_plc}
    severity: warning
    deadman: {intervals: 5, interval_s: 1}
  - id: agent.lost
    title: Edge agent lost
    select: {device: agent}
    severity: critical
    agent: {timeout_s: 60, death_hold_s: 1}
"""


def config(broker: Mosquitto, tmp_path: Path, packs: list[Path] | None = None) -> RulesServiceConfig:
    return RulesServiceConfig(
        broker=account_for(broker, rules_account(), reconnect_initial_s=0.1, reconnect_max_s=0.5),
        publisher=account_for(broker, rules_publisher_account(), reconnect_initial_s=0.1, reconnect_max_s=0.5),
        rules=RulesConfig(
            packs=packs or [PACKS / "devices.yaml", PACKS / "gas.yaml"],
            tick_s=0.2,
            checkpoint_s=0.2,
            sites=[site_files(tmp_path)],
            dead_letter_path=tmp_path / "rules-deadletter.sqlite",
            reconnect_grace_s=5,
        ),
        alerts=AlertServiceConfig(store_url=f"sqlite:///{tmp_path / 'alerts.db'}", tick_s=0.2),
    )


@pytest.fixture
def rules_running() -> Iterator[Callable[[RulesServiceConfig], RunningRules]]:
    running: list[RunningRules] = []

    def start(cfg: RulesServiceConfig) -> RunningRules:
        r = RunningRules(cfg).start()
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


def alerts(cfg: RulesServiceConfig) -> list[StoredAlert]:
    store = AlertStore(cfg.alerts.store_url)
    try:
        return store.list_alerts(active_only=False, limit=1000)
    finally:
        store.close()


class Edge:
    """Samples the site's gates every 0.5 s (sample time: now) and sends them, keeping what the broker did not take."""

    def __init__(self, broker: Mosquitto) -> None:
        self.broker = broker
        self.account = account_for(broker, edge_account(SITE), reconnect_initial_s=0.1, reconnect_max_s=0.5)
        self.pub: Publisher | None = Publisher(None, self.account)
        self.kept: list[tuple[str, bytes]] = []
        self.seq = 0

    def poll(self, devices: tuple[str, ...] = GATES) -> None:
        ts = int(time.time() * 1000)
        for device in devices:
            self.seq += 1
            body = Telemetry(
                site=SITE,
                device=device,
                profile="sluice_gate_plc",
                measurement="sluice_gate",
                seq=self.seq,
                samples=[Sample(ts=ts, values={"gate_opening": 1.2})],
            )
            self.kept.append((topics.telemetry(SITE, device), encode(body)))
        if self.pub is not None:
            self.flush()

    def flush(self) -> None:
        assert self.pub is not None
        while self.kept:
            self.pub.send(*self.kept[0])
            self.kept.pop(0)

    def run(self, seconds: float, devices: tuple[str, ...] = GATES) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.poll(devices)
            time.sleep(0.5)

    def lose_broker(self) -> None:
        if self.pub is not None:
            self.pub.client.loop_stop()
            self.pub = None

    def reconnect(self) -> None:
        self.pub = Publisher(None, self.account)

    def close(self) -> None:
        if self.pub is not None:
            self.pub.close()


def test_a_broker_outage_raises_no_false_no_data_and_a_real_silence_still_raises(
    mosquitto: Mosquitto, tmp_path: Path, rules_running: Callable[[RulesServiceConfig], RunningRules]
) -> None:
    cfg = config(mosquitto, tmp_path)
    running = rules_running(cfg)
    service = running.parts["service"]
    edge = Edge(mosquitto)
    try:
        edge.run(3)
        mosquitto.stop()  # 10 s: twice the Modbus deadman; the edge keeps sampling into its outbox
        edge.lose_broker()
        edge.run(10)
        assert service.cut_off()  # the engine knows it is cut off
        assert len(edge.kept) >= 3 * 15
        mosquitto.start()
        wait_until(lambda: service.consumer.connected, 20, "rules reconnected")
        edge.reconnect()
        edge.flush()  # the backlog, covering the gap with its sample times
        edge.run(4)
        time.sleep(1.0)  # ticks judge
        assert [str(a.alert.key) for a in alerts(cfg)] == []
        assert service.counters.telemetry >= 3 * 30
        # the same setup sees a real silence: gate-3 stops while the site speaks on; one alert, for gate-3 only
        edge.run(7, devices=("gate-1", "gate-2"))
        wait_until(lambda: alerts(cfg), 10, "gate-3 reported silent")
        time.sleep(0.5)
        found = alerts(cfg)
        assert [(a.alert.key.rule_id, a.alert.key.device) for a in found] == [("device.silent.modbus", "gate-3")]
    finally:
        edge.close()


def test_a_forged_body_or_an_unknown_device_raises_nothing_and_is_kept_as_a_dead_letter(
    mosquitto: Mosquitto, tmp_path: Path, rules_running: Callable[[RulesServiceConfig], RunningRules]
) -> None:
    cfg = config(mosquitto, tmp_path)
    running = rules_running(cfg)
    service = running.parts["service"]
    water = Publisher(None, account_for(mosquitto, edge_account("mini-water")))  # the broker lets it write its own
    try:
        now = int(time.time() * 1000)

        def gas(site: str, device: str, lel: float, seq: int) -> bytes:
            body = Telemetry(
                site=site,
                device=device,
                profile="gas_detector",
                measurement="gas_safety",
                seq=seq,
                samples=[Sample(ts=now + seq, values={"lel": lel})],
            )
            return encode(body)

        forged = [
            (topics.telemetry("mini-water", "gas-1"), gas("mini-safety", "gas-1", 80.0, 1)),  # another site's body
            (topics.telemetry("mini-water", "ghost"), gas("mini-water", "ghost", 80.0, 2)),  # no such device
            (
                topics.agent_state("mini-water"),
                encode(AgentState(site="mini-safety", agent="x", online=False, ts=now)),  # another site's death
            ),
        ]
        for topic, payload in forged:
            water.send(topic, payload)
        wait_until(lambda: service.counters.dead_letters == len(forged), 10, "the forged messages refused")
        time.sleep(1.0)  # ticks: no deadman, no agent lost for what was never valid
        assert alerts(cfg) == []
        # the account's own device, on its own topic: evaluated (the engine is not simply deaf)
        water.send(topics.telemetry("mini-water", "gas-1"), gas("mini-water", "gas-1", 80.0, 3))
        wait_until(lambda: alerts(cfg), 10, "the real alarm raised")
        assert {(a.alert.key.site, a.alert.key.device) for a in alerts(cfg)} == {("mini-water", "gas-1")}
    finally:
        water.close()
    letters = DeadLetterStore(tmp_path / "rules-deadletter.sqlite")
    try:
        kept = sorted((d.source, d.stage, d.topic) for d in letters.list())
    finally:
        letters.close()
    assert kept == sorted(("rules", "validate", topic) for topic, _ in forged)
    assert f"lifeline_rules_dead_letters_total {len(forged)}" in service.metrics_text()


def test_an_agent_gone_for_good_is_one_alert_for_its_site_not_one_per_device(
    mosquitto: Mosquitto, tmp_path: Path, rules_running: Callable[[RulesServiceConfig], RunningRules]
) -> None:
    """The agent's last will (the broker publishes it when the connection drops without a goodbye): one agent.lost,
    believed after its hold, and none of the site's three silent gates raises its own."""
    pack = tmp_path / "agent.yaml"
    pack.write_text(AGENT_PACK)
    cfg = config(mosquitto, tmp_path, [pack])  # the shipped deadman and agent.lost, the death's hold shortened
    running = rules_running(cfg)
    service = running.parts["service"]
    account = account_for(mosquitto, edge_account(SITE))
    agent = client(account, f"edge-{SITE}", reconnect=False)
    state = topics.agent_state(SITE)
    will = AgentState(site=SITE, agent=f"edge-{SITE}", online=False, ts=int(time.time() * 1000), reason="lost")
    agent.will_set(state, encode(will), qos=1, retain=True)
    agent.connect(account.host, account.port)
    agent.loop_start()
    try:
        birth = AgentState(site=SITE, agent=f"edge-{SITE}", online=True, ts=int(time.time() * 1000), devices=[*GATES])
        agent.publish(state, encode(birth), qos=1, retain=True).wait_for_publish(10)
        for i in range(6):
            ts = int(time.time() * 1000)
            for device in GATES:
                body = Telemetry(
                    site=SITE,
                    device=device,
                    profile="sluice_gate_plc",
                    measurement="sluice_gate",
                    seq=i + 1,
                    samples=[Sample(ts=ts, values={"gate_opening": 1.2})],
                )
                agent.publish(topics.telemetry(SITE, device), encode(body), qos=1).wait_for_publish(10)
            time.sleep(0.5)
        wait_until(lambda: service.counters.agent_states == 1 and service.counters.telemetry == 18, 10, "all seen")
        sock = agent.socket()
        assert sock is not None
        sock.close()  # a crash: no DISCONNECT, the broker publishes the will
        wait_until(lambda: alerts(cfg), 15, "the agent reported lost")
        time.sleep(7.0)  # twice the gates' deadman: none of them raises its own
        found = [(a.alert.key.rule_id, a.alert.key.site, a.alert.key.device) for a in alerts(cfg)]
        assert found == [("agent.lost", SITE, "agent")]
        assert "is gone (lost)" in alerts(cfg)[0].meta.reason
    finally:
        agent.loop_stop()
