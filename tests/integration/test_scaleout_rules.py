"""Scale-out: two rules engines on two partitions of one district (index/count by CRC-32 of the site id), each in
its own shared group with its own broker account and saved state, one alert store (SQLite) for both. One engine is
restarted mid-stream; every device's alert is raised once, by the engine that owns its site, and no device's state
is ever held by both engines."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from alerts.config import AlertServiceConfig
from alerts.store import AlertStore
from lifeline.broker_auth import rules_partition_accounts
from lifeline.rules_cli import RulesServiceConfig
from rules.config import PartitionConfig, RulesConfig, site_partition
from telemetry import encode, topics
from testing import Mosquitto
from tests.helpers import Publisher, account_for, wait_until
from tests.integration.test_rules_service import RunningRules, alerts_of, gas, lel_rules, now_ms

pytestmark = pytest.mark.integration

SITES = [f"plant-{n}" for n in range(1, 7)]  # CRC-32 puts plant-1..3 in partition 0 and plant-4..6 in 1
DEVICES = [(site, f"gas-{d}") for site in SITES for d in range(1, 5)]
STEPS = [(0, 10.0), (1, 30.0), (2, 60.0), (3, 10.0)]  # normal, first alarm, second alarm, clear


def partition_config(broker: Mosquitto, tmp_path: Path, index: int) -> RulesServiceConfig:
    part = PartitionConfig(index=index, count=2)
    reader, writer = rules_partition_accounts(part)
    quick = {"reconnect_initial_s": 0.1, "reconnect_max_s": 0.5}
    return RulesServiceConfig(
        broker=account_for(broker, reader, **quick),
        publisher=account_for(broker, writer, **quick),
        rules=RulesConfig(packs=[lel_rules(tmp_path)], tick_s=0.2, checkpoint_s=0.2, partition=part),
        alerts=AlertServiceConfig(
            store_url=f"sqlite:///{tmp_path / 'alerts.db'}", tick_s=0.2, policy={"flood": {"max_new": 1000}}
        ),
    )


def test_two_partitioned_engines_one_restarted_each_alert_raised_once_by_its_owner(
    mosquitto: Mosquitto, tmp_path: Path, publisher: Publisher
) -> None:
    assert {site_partition(s, 2) for s in SITES} == {0, 1}
    configs = [partition_config(mosquitto, tmp_path, i) for i in (0, 1)]
    engines = [RunningRules(c).start() for c in configs]
    url = configs[0].alerts.store_url
    t0 = now_ms() + 1_000
    sent = 0
    try:
        for seq, (dt, value) in enumerate(STEPS, start=1):
            for site, device in DEVICES:
                publisher.send(topics.telemetry(site, device), encode(gas(device, seq, t0 + dt * 1000, value, site)))
                sent += 1
                if sent == len(DEVICES) + len(DEVICES) // 2:
                    engines[1].stop()  # partition 1 goes away mid-stream; its group's messages wait in its session
                    time.sleep(0.5)
                    engines[1].start()
        wait_until(
            lambda: len(alerts_of(url)) == len(DEVICES) and not any(a.alert.active for a in alerts_of(url)),
            30,
            "every device raised, escalated and cleared",
        )
        time.sleep(0.5)
        services = [e.parts["service"] for e in engines]
        # each engine skipped the other partition's sites and evaluated its own
        assert all(s.counters.other_partition > 0 for s in services)
        assert all(s.counters.telemetry > 0 for s in services)
    finally:
        for engine in engines:
            engine.stop()
    check_store(url)


def check_store(url: str) -> None:
    """One alert per device, raised, escalated and cleared once; each partition's state holds its own sites only."""
    store = AlertStore(url)
    try:
        stored = store.list_alerts(limit=1000)
        histories = {(a.alert.key.site, a.alert.key.device): [h.action for h in store.history(a.id)] for a in stored}
        states: dict[int, Any] = {i: store.get_state(f"rules.engine.{i}-of-2") for i in (0, 1)}
        assert store.get_state("rules.engine") is None  # no unpartitioned engine ran
    finally:
        store.close()
    assert sorted(histories) == sorted(DEVICES)  # one alert per device, none twice
    assert {k: h for k, h in histories.items() if h != ["raise", "severity", "clear"]} == {}
    for index, state in states.items():
        assert state is not None
        owned = {(site, device) for site, device, _ in state["profiles"]}
        assert owned == {(s, d) for s, d in DEVICES if site_partition(s, 2) == index}, f"partition {index}"
        assert {a["site"] for a in state["alerts"]} <= {s for s in SITES if site_partition(s, 2) == index}


def test_a_partition_killed_with_sigkill_mid_stream_repeats_nothing_and_misses_nothing(
    mosquitto: Mosquitto, tmp_path: Path, publisher: Publisher
) -> None:
    """Partition 1 as its own process, chosen by ``--partition 1/2`` on the command line, killed with SIGKILL (no last
    checkpoint) and started again; partition 0 runs on meanwhile."""
    import yaml

    from testing import ServiceProcess, free_port

    configs = [partition_config(mosquitto, tmp_path, i) for i in (0, 1)]
    first = RunningRules(configs[0]).start()
    metrics_port = free_port()
    second = configs[1].model_dump(mode="json")
    second["rules"].pop("partition")  # given by the flag instead
    second["metrics_port"] = metrics_port
    path = tmp_path / "rules-1.yaml"
    path.write_text(yaml.safe_dump(second))
    engine = ServiceProcess(
        ["rules", "run", "--partition", "1/2"],
        path,
        metrics_port,
        tmp_path / "rules-1.log",
        "lifeline_rules_broker_connected",
    )
    url = configs[0].alerts.store_url
    t0 = now_ms() + 1_000
    sent = 0
    try:
        engine.start()
        for seq, (dt, value) in enumerate(STEPS, start=1):
            for site, device in DEVICES:
                publisher.send(topics.telemetry(site, device), encode(gas(device, seq, t0 + dt * 1000, value, site)))
                sent += 1
                time.sleep(0.002)  # the engine keeps up a batch behind: it dies with some stored and some not
                if sent == len(DEVICES) + len(DEVICES) // 2:
                    assert engine.proc is not None
                    engine.proc.kill()
                    engine.proc.wait(10)
                    engine.start()  # its partition's session kept the messages
        wait_until(
            lambda: len(alerts_of(url)) == len(DEVICES) and not any(a.alert.active for a in alerts_of(url)),
            30,
            "every device raised, escalated and cleared",
        )
        time.sleep(0.5)
        wait_until(
            lambda: engine.metrics().get("lifeline_rules_messages_received_total", 0) > 0,
            10,
            "the restarted partition received the rest of the stream",
        )
    finally:
        engine.stop()
        first.stop()
    check_store(url)
