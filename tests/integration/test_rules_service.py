"""The rules service end to end on a real Mosquitto with the alert store in SQLite: telemetry in, alerts stored.

Sample times are set by the tests (a little ahead of the wall clock, so the service's own clock-driven tick
never decides for them): delays are checked on the data's time, not slept through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from alerts.config import AlertServiceConfig
from alerts.lifecycle import State, acknowledge, shelve, unshelve
from alerts.store import AlertStore, StoredAlert
from lifeline.broker_auth import rules_account, rules_publisher_account
from lifeline.rules_cli import RulesServiceConfig, run_service
from rules import PACKS
from rules.config import RulesConfig
from telemetry import Sample, Telemetry, encode, topics
from testing import Mosquitto
from tests.helpers import LoopThread, Publisher, account_for, wait_until

pytestmark = pytest.mark.integration

LEL_RULE = """
rules:
  - id: test.lel
    title: Test gas concentration
    audience: safety
    select: {profile: gas_detector}
    on_delay_s: ON
    off_delay_s: OFF
    threshold:
      point: lel
      direction: high
      deadband: 2
      levels: [{severity: warning, value: 25}, {severity: critical, value: 50}]
"""


def lel_rules(tmp_path: Path, on_delay: float = 0, off_delay: float = 0) -> Path:
    path = tmp_path / "rules" / "lel.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(LEL_RULE.replace("ON", str(on_delay)).replace("OFF", str(off_delay)))
    return path


def service_config(broker: Mosquitto, tmp_path: Path, packs: list[Path], **alerts: Any) -> RulesServiceConfig:
    return RulesServiceConfig(
        broker=account_for(broker, rules_account(), reconnect_initial_s=0.1, reconnect_max_s=0.5),
        publisher=account_for(broker, rules_publisher_account(), reconnect_initial_s=0.1, reconnect_max_s=0.5),
        rules=RulesConfig(packs=packs, tick_s=0.2, checkpoint_s=0.2),
        alerts=AlertServiceConfig(store_url=f"sqlite:///{tmp_path / 'alerts.db'}", tick_s=0.2, **alerts),
    )


@dataclass
class RunningRules:
    config: RulesServiceConfig
    parts: dict[str, Any] = field(default_factory=dict)
    thread: LoopThread | None = None

    def start(self) -> RunningRules:
        def started(service: Any, manager: Any) -> None:
            self.parts.update(service=service, manager=manager)

        self.parts.clear()
        self.thread = LoopThread(lambda stop: run_service(self.config, stop, started))
        wait_until(lambda: "service" in self.parts and self.parts["service"].consumer.connected, 10, "rules connected")
        time.sleep(0.2)  # the subscription's SUBACK
        return self

    def stop(self) -> None:
        if self.thread is not None:
            self.thread.stop()
            self.thread = None


@pytest.fixture
def rules_service() -> Iterator[Callable[[RulesServiceConfig], RunningRules]]:
    running: list[RunningRules] = []

    def start(config: RulesServiceConfig) -> RunningRules:
        r = RunningRules(config).start()
        running.append(r)
        return r

    yield start
    for r in running:
        r.stop()


def gas(device: str, seq: int, ts: int, lel: float, site: str = "plant-1") -> Telemetry:
    return Telemetry(
        site=site,
        device=device,
        profile="gas_detector",
        measurement="gas_safety",
        seq=seq,
        samples=[Sample(ts=ts, values={"lel": lel})],
    )


def send_series(pub: Publisher, device: str, t0: int, series: list[tuple[float, float]], site: str = "plant-1") -> None:
    """Publish ``(seconds after t0, lel)`` samples in order."""
    for seq, (dt, value) in enumerate(series, start=1):
        pub.send(topics.telemetry(site, device), encode(gas(device, seq, t0 + int(dt * 1000), value, site)))


def alerts_of(store_url: str, rule: str | None = None) -> list[StoredAlert]:
    store = AlertStore(store_url)
    try:
        return store.list_alerts(rule=rule, limit=100)
    finally:
        store.close()


def history(store_url: str, alert_id: int) -> list[str]:
    store = AlertStore(store_url)
    try:
        return [h.action for h in store.history(alert_id)]
    finally:
        store.close()


def notification_kinds(store_url: str) -> list[str]:
    store = AlertStore(store_url)
    try:
        return sorted(n.kind for n in store.notifications(limit=1000))
    finally:
        store.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def test_noisy_signal_around_a_threshold_with_deadband_raises_one_alert(
    mosquitto: Mosquitto, tmp_path: Path, publisher: Publisher, rules_service: Callable[..., RunningRules]
) -> None:
    cfg = service_config(mosquitto, tmp_path, [lel_rules(tmp_path)])
    rules_service(cfg)
    noisy = [20, 26, 24.5, 25.5, 24, 25.2, 23.5, 25.9, 24.1, 23.2, 25.0, 24.0]  # deadband 2: clears below 23
    send_series(publisher, "gas-1", now_ms(), [(i, v) for i, v in enumerate(noisy)])
    url = cfg.alerts.store_url
    wait_until(lambda: len(alerts_of(url)) == 1 and alerts_of(url)[0].alert.last_ms is not None, 10, "one alert")
    send_series(publisher, "gas-1", now_ms() + 20_000, [(0, 22.9)])
    wait_until(lambda: alerts_of(url)[0].alert.state is State.CLEARED_UNACK, 10, "cleared below 25 - 2")
    (only,) = alerts_of(url)
    assert only.alert.count == 1
    assert history(url, only.id) == ["raise", "clear"]
    assert only.meta.audience == "safety"
    assert notification_kinds(url) == ["cleared", "raised"]  # no channel configured: logged as unrouted


def test_on_delay_and_off_delay_hold_back_raise_and_clear(
    mosquitto: Mosquitto, tmp_path: Path, publisher: Publisher, rules_service: Callable[..., RunningRules]
) -> None:
    cfg = service_config(mosquitto, tmp_path, [lel_rules(tmp_path, on_delay=5, off_delay=5)])
    rules_service(cfg)
    url = cfg.alerts.store_url
    t0 = now_ms() + 5_000
    # above for 3 s only, then below: the on-delay is not met
    send_series(publisher, "gas-2", t0, [(0, 30), (3, 20), (4, 30), (8, 30)])
    time.sleep(0.5)
    assert alerts_of(url) == [], "raised before the on-delay of 5 s was met"
    send_series(publisher, "gas-2", t0, [(10, 30)])  # 6 s above since t0+4
    wait_until(lambda: len(alerts_of(url)) == 1, 10, "raised after the on-delay")
    (raised,) = alerts_of(url)
    assert raised.alert.first_ms == t0 + 10_000
    # below for 2 s, above again, then below for 6 s: only the last one clears
    send_series(publisher, "gas-2", t0, [(11, 20), (13, 30), (14, 20), (17, 20)])
    time.sleep(0.5)
    assert alerts_of(url)[0].alert.active, "cleared before the off-delay of 5 s was met"
    send_series(publisher, "gas-2", t0, [(20, 20)])
    wait_until(lambda: not alerts_of(url)[0].alert.active, 10, "cleared after the off-delay")
    assert history(url, raised.id) == ["raise", "clear"]


def test_restart_keeps_state_and_raises_no_duplicate(
    mosquitto: Mosquitto, tmp_path: Path, publisher: Publisher, rules_service: Callable[..., RunningRules]
) -> None:
    cfg = service_config(mosquitto, tmp_path, [lel_rules(tmp_path)])
    first = rules_service(cfg)
    url = cfg.alerts.store_url
    t0 = now_ms() + 1_000
    send_series(publisher, "gas-3", t0, [(0, 60)])
    wait_until(lambda: len(alerts_of(url)) == 1, 10, "raised")
    first.stop()
    # while the engine is away the broker keeps its messages (persistent session); then it comes back
    send_series(publisher, "gas-3", t0, [(1, 61), (2, 62)])
    rules_service(cfg)
    send_series(publisher, "gas-3", t0, [(3, 63)])
    time.sleep(1.0)
    (alert,) = alerts_of(url)
    assert alert.alert.active
    assert alert.alert.count == 1
    assert notification_kinds(url) == ["raised"]
    send_series(publisher, "gas-3", t0, [(4, 10)])
    wait_until(lambda: not alerts_of(url)[0].alert.active, 10, "cleared by the restarted engine")
    assert [a.id for a in alerts_of(url)] == [alert.id]


def test_acknowledge_shelve_unshelve_and_clear(
    mosquitto: Mosquitto, tmp_path: Path, publisher: Publisher, rules_service: Callable[..., RunningRules]
) -> None:
    cfg = service_config(mosquitto, tmp_path, [lel_rules(tmp_path)])
    rules_service(cfg)
    url = cfg.alerts.store_url
    t0 = now_ms() + 1_000
    send_series(publisher, "gas-4", t0, [(0, 30)])
    wait_until(lambda: len(alerts_of(url)) == 1, 10, "raised")
    alert_id = alerts_of(url)[0].id
    store = AlertStore(url)
    try:
        store.act(alert_id, lambda a: acknowledge(a, "inspector-wang", now_ms(), "crew sent"))
        assert store.get(alert_id).alert.state is State.ACTIVE_ACK  # type: ignore[union-attr]
        send_series(publisher, "gas-4", t0, [(1, 10)])
        wait_until(lambda: store.get(alert_id).alert.state is State.NORMAL, 10, "acked + cleared -> normal")  # type: ignore[union-attr]
        store.act(alert_id, lambda a: shelve(a, "inspector-wang", now_ms() + 3_600_000, "sensor maintenance", now_ms()))
        send_series(publisher, "gas-4", t0, [(2, 30)])  # raised again while shelved: tracked, not notified
        wait_until(lambda: store.get(alert_id).alert.active, 10, "raised while shelved")  # type: ignore[union-attr]
        kinds_while_shelved = notification_kinds(url)
        store.act(alert_id, lambda a: unshelve(a, "inspector-wang", now_ms(), "maintenance done"))
        send_series(publisher, "gas-4", t0, [(3, 10)])
        wait_until(lambda: store.get(alert_id).alert.state is State.CLEARED_UNACK, 10, "cleared")  # type: ignore[union-attr]
        actions = [h.action for h in store.history(alert_id)]
    finally:
        store.close()
    assert set(kinds_while_shelved) <= {"cleared", "raised"}, "a shelved alert notified its raise"
    assert actions == ["raise", "ack", "clear", "shelve", "raise", "unshelve", "clear"]
    # notifications are recorded after the alert's commit (decision 007): wait for the last one, then look at all
    # (a notified raise while shelved would make a second "raised")
    wait_until(lambda: len(notification_kinds(url)) >= 3, 10, "the last clear notified")
    time.sleep(0.3)
    assert notification_kinds(url) == ["cleared", "cleared", "raised"]


def test_device_that_stops_answering_raises_one_offline_alert_and_clears(
    mosquitto: Mosquitto, tmp_path: Path, mini: Any, start_agent: Any, rules_service: Callable[..., RunningRules]
) -> None:
    cfg = service_config(mosquitto, tmp_path, [PACKS / "devices.yaml"])
    rules_service(cfg)
    url = cfg.alerts.store_url
    start_agent(mini.site_config("mini-water"))
    time.sleep(1.5)
    gate = mini.district.modbus["gate-1"]
    mini.on_loop(gate.stop_answering)
    wait_until(lambda: any(a.alert.active for a in alerts_of(url, "device.offline")), 15, "offline alert")
    time.sleep(1.5)  # more failed polls: still one alert
    mini.on_loop(gate.resume)
    wait_until(lambda: not any(a.alert.active for a in alerts_of(url, "device.offline")), 15, "cleared on return")
    offline = alerts_of(url, "device.offline")
    assert [(a.alert.key.site, a.alert.key.device) for a in offline] == [("mini-water", "gate-1")]
    assert history(url, offline[0].id) == ["raise", "clear"]
    assert offline[0].meta.audience == "water_ops"  # from the sluice gate profile's domain


def test_killed_mid_stream_the_engine_repeats_nothing_and_misses_nothing(
    mosquitto: Mosquitto, tmp_path: Path, publisher: Publisher
) -> None:
    import orjson
    import yaml

    from testing import ServiceProcess, free_port
    from tests.helpers import Subscriber

    metrics_port = free_port()
    config = tmp_path / "rules.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "broker": account_for(mosquitto, rules_account()).model_dump(mode="json"),
                "publisher": account_for(mosquitto, rules_publisher_account()).model_dump(mode="json"),
                "rules": {"packs": [str(lel_rules(tmp_path))], "checkpoint_s": 0.5},
                "alerts": {
                    "store_url": f"sqlite:///{tmp_path / 'alerts.db'}",
                    "policy": {"flood": {"max_new": 1000}},
                    "notify": {"channels": {"bus": {"type": "mqtt"}}, "routes": [{"channels": ["bus"]}]},
                },
                "metrics_port": metrics_port,
            }
        )
    )
    engine = ServiceProcess(
        ["rules", "run"], config, metrics_port, tmp_path / "rules.log", "lifeline_rules_broker_connected"
    )
    notes = Subscriber(mosquitto, "lifeline/v1/alerts/notify/#")
    devices = [f"gas-{i:02d}" for i in range(40)]
    t0 = now_ms() + 1_000
    steps = [(0, 10.0), (1, 30.0), (2, 60.0), (3, 10.0)]  # normal, first alarm, second alarm, clear
    try:
        engine.start()
        sent = 0
        for dt, value in steps:
            for seq, device in enumerate(devices, start=1):
                publisher.send(topics.telemetry("plant-1", device), encode(gas(device, seq, t0 + dt * 1000, value)))
                sent += 1
                time.sleep(0.002)  # the engine keeps up, a batch behind: it dies with some stored and some not
                if sent == 75:
                    assert engine.proc is not None
                    engine.proc.kill()  # SIGKILL in the middle of the stream: no clean stop, no last checkpoint
                    engine.proc.wait(10)
                    engine.start()  # the broker kept the session's messages
        url = f"sqlite:///{tmp_path / 'alerts.db'}"
        wait_until(
            lambda: sum(a.alert.state is State.CLEARED_UNACK for a in alerts_of(url)) == len(devices),
            30,
            "every device raised, escalated and cleared",
        )
        time.sleep(0.5)
        second_run_received = engine.metrics().get("lifeline_rules_messages_received_total", 0.0)
        stored = alerts_of(url)
        store = AlertStore(url)
        try:
            histories = {a.alert.key.device: [h.action for h in store.history(a.id)] for a in stored}
            log = store.notifications(limit=1000)
        finally:
            store.close()
        received = {orjson.loads(m.payload)["id"] for m in notes.snapshot()}
    finally:
        engine.stop()
        notes.close()
    assert second_run_received >= sent - 75, "the restarted engine did not get the rest of the stream"
    assert sorted(histories) == devices
    assert {d: h for d, h in histories.items() if h != ["raise", "severity", "clear"]} == {}
    kinds: dict[int | None, list[str]] = {}
    for n in log:
        kinds.setdefault(n.alert_id, []).append(n.kind)
    assert all(sorted(k) == ["cleared", "raised", "severity"] for k in kinds.values()), kinds
    assert {n.message_id for n in log} <= received, "a logged notification never reached the broker"
