"""A rules engine with a hot standby: two processes of one config (``lifeline rules run --standby``), on a real
Mosquitto, the alert store in SQLite and in PostgreSQL. The standby waits on the lease in the alert store without
subscribing; the active engine is killed (SIGKILL, by its PID) in the middle of an alarm; the standby takes over
within seconds, from the store's state and the partition's MQTT session, and every alarm is raised exactly once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
import yaml
from sqlalchemy import select

from alerts import _tables as t
from alerts.db import make_engine
from alerts.lifecycle import State
from alerts.store import AlertStore
from lifeline.broker_auth import rules_account, rules_publisher_account
from lifeline.runners import stop_process
from telemetry import encode, topics
from testing import Mosquitto, ServiceProcess, free_port
from tests.helpers import Publisher, Subscriber, account_for, wait_until
from tests.integration.test_rules_service import alerts_of, gas, lel_rules, now_ms

pytestmark = pytest.mark.integration

DEVICES = [f"gas-{i:02d}" for i in range(40)]
STEPS = [(0, 10.0), (1, 30.0), (2, 60.0), (3, 10.0)]  # normal, first alarm, second alarm, clear
STATE = "rules.engine"  # the unpartitioned engine's state, and its lease's name
TAKEOVER_LIMIT_S = 10.0  # the lease is valid 5 s after a renewal (every 1.5 s), the standby looks every 0.5 s


def _lease(url: str) -> tuple[str, int] | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                select(t.rules_leases.c.holder, t.rules_leases.c.epoch).where(t.rules_leases.c.name == STATE)
            ).one_or_none()
    finally:
        engine.dispose()
    return None if row is None else (str(row.holder), int(row.epoch))


def _holder_pid(url: str) -> int | None:
    lease = _lease(url)
    return None if lease is None else int(lease[0].rsplit(":", 1)[1])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_active_engine_killed_mid_alarm_the_standby_takes_over_and_raises_each_alarm_once(
    mosquitto: Mosquitto, tmp_path: Path, publisher: Publisher, request: pytest.FixtureRequest, backend: str
) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
    metrics_port = free_port()  # one config for both: the standby serves it once it runs
    config = tmp_path / "rules.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "broker": account_for(mosquitto, rules_account()).model_dump(mode="json"),
                "publisher": account_for(mosquitto, rules_publisher_account()).model_dump(mode="json"),
                "rules": {"packs": [str(lel_rules(tmp_path))], "checkpoint_s": 0.5},
                "alerts": {
                    "store_url": url,
                    "policy": {"flood": {"max_new": 1000}},
                    # the outbox's lease (120 s) is longer than the test: the notifications the killed engine had
                    # claimed are due at once because the standby frees them when it takes over
                    "notify": {"channels": {"bus": {"type": "mqtt"}}, "routes": [{"channels": ["bus"]}]},
                },
                "metrics_port": metrics_port,
            }
        )
    )
    active = ServiceProcess(
        ["rules", "run", "--standby"], config, metrics_port, tmp_path / "active.log", "lifeline_rules_broker_connected"
    )
    argv = [
        sys.executable,
        "-m",
        "lifeline",
        "--log-level",
        "INFO",
        "rules",
        "run",
        "--standby",
        "--config",
        str(config),
    ]
    notes = Subscriber(mosquitto, "lifeline/v1/alerts/notify/#")
    standby: subprocess.Popen[bytes] | None = None
    t0 = now_ms() + 1_000
    try:
        active.start()
        assert active.proc is not None
        assert _holder_pid(url) == active.proc.pid
        with (tmp_path / "standby.log").open("ab") as out:
            standby = subprocess.Popen(argv, stdout=out, stderr=out)
        wait_until(lambda: b"waiting for its lease" in (tmp_path / "standby.log").read_bytes(), 20, "standby waits")
        sent = 0
        takeover_s = None
        for dt, value in STEPS:
            for seq, device in enumerate(DEVICES, start=1):
                publisher.send(topics.telemetry("plant-1", device), encode(gas(device, seq, t0 + dt * 1000, value)))
                sent += 1
                time.sleep(0.002)  # the engine keeps up, a batch behind: it dies with some stored and some not
                if sent == 60:
                    # the standby holds no share of the partition's group: the active engine got every message
                    wait_until(
                        lambda: active.metrics().get("lifeline_rules_messages_received_total") == 60,
                        10,
                        "the active engine received all 60 messages",
                    )
                if sent == 75:  # mid-alarm: devices raising, their first alarm half stored
                    active.proc.kill()
                    killed = time.monotonic()
                    active.proc.wait(10)
                    wait_until(lambda: _holder_pid(url) == standby.pid, TAKEOVER_LIMIT_S, "the standby took over")
                    takeover_s = time.monotonic() - killed
        assert takeover_s is not None
        wait_until(
            lambda: sum(a.alert.state is State.CLEARED_UNACK for a in alerts_of(url)) == len(DEVICES),
            30,
            "every device raised, escalated and cleared",
        )
        time.sleep(0.5)
        store = AlertStore(url)
        try:
            histories = {a.alert.key.device: [h.action for h in store.history(a.id)] for a in alerts_of(url)}
            log = store.notifications(limit=1000)
        finally:
            store.close()
        lease = _lease(url)
        received = {orjson.loads(m.payload)["id"] for m in notes.snapshot()}
    finally:
        active.stop()
        stop_process(standby, 20.0)
        notes.close()
    print(f"{backend}: the standby took over {takeover_s:.1f} s after the active engine was killed")
    assert takeover_s < TAKEOVER_LIMIT_S
    assert lease is not None
    assert lease[1] == 2  # taken over once
    assert sorted(histories) == DEVICES  # no alarm lost
    assert {d: h for d, h in histories.items() if h != ["raise", "severity", "clear"]} == {}  # none twice
    kinds: dict[int | None, list[str]] = {}
    for n in log:
        kinds.setdefault(n.alert_id, []).append(n.kind)
    assert len(kinds) == len(DEVICES)
    assert all(sorted(k) == ["cleared", "raised", "severity"] for k in kinds.values()), kinds  # each told once
    assert {n.message_id for n in log} <= received, "a logged notification never reached the broker"
