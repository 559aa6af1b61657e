"""Scale-out: three bridge processes in one shared group on a real Mosquitto (accounts and ACLs on) and a real
InfluxDB; one is killed with SIGKILL mid-stream and started again; every reading is stored exactly once.

Mosquitto 2.0 does not hand a dead member's in-flight messages to the other members of the group: they wait in the
killed bridge's persistent session (clean start false, session expiry) and are delivered when it comes back, and the
edges resend what was never confirmed. Either way a reading may reach InfluxDB twice; the write is idempotent (same
series and timestamp overwrite), so exactly one point per (device, point, timestamp) is stored and none is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from broker_bridge.config import BridgeConfig
from lifeline.broker_auth import bridge_account, bridge_publisher_account
from telemetry import encode, topics
from testing import Influxd, Mosquitto
from tests.helpers import Publisher, wait_until
from tests.integration.test_bridge import WQ_POINTS, influx_query, wq_message

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
DEVICES = [f"wq-{n}" for n in range(1, 7)]
MESSAGES = 900  # per run, spread over DEVICES; 5 samples each
SAMPLES = 5


def bridge_config(broker: Mosquitto, influx: Influxd, tmp_path: Path, n: int) -> Path:
    name = f"bridge-{n}-{tmp_path.name}"[:56]
    data: dict[str, Any] = {
        "broker": broker.add(replace(bridge_account(n), username=name)).model_dump(mode="json"),
        "publisher": broker.add(replace(bridge_publisher_account(n), username=f"{name}-pub")).model_dump(mode="json"),
        # the same group for all three; each its own persistent session (client id = user name)
        "subscription": {"client_id": name, "receive_maximum": 500, "session_expiry_s": 60},
        "influx": {"url": influx.url, "database": "lifeline", "timeout_s": 2.0},
        "batch": {"max_points": 1000, "max_delay_s": 0.2},
        "retry": {"initial_s": 0.2, "max_s": 1.0},
        "dead_letter_path": str(tmp_path / f"dead-{n}.sqlite"),
    }
    path = tmp_path / f"bridge-{n}.yaml"
    path.write_text(yaml.safe_dump(BridgeConfig.model_validate(data).model_dump(mode="json")))
    return path


def spawn(cfg: Path, log: Path) -> subprocess.Popen[bytes]:
    out = log.open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "lifeline", "bridge", "--config", str(cfg)], stdout=out, stderr=out, cwd=ROOT
    )


def stored(influx: Influxd) -> dict[str, list[int]]:
    """device -> the timestamps of its stored pH points (one row per point InfluxDB holds)."""
    out: dict[str, list[int]] = {}
    for row in influx_query(influx, 'SELECT "ph" FROM "water_quality" GROUP BY "device"'):
        out.setdefault(row["device"], []).append(int(row["time"]))
    return out


def test_three_bridges_one_killed_mid_stream_every_reading_stored_once(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path
) -> None:
    configs = [bridge_config(mosquitto, influxdb, tmp_path, n) for n in (1, 2, 3)]
    logs = [tmp_path / f"bridge-{n}.log" for n in (1, 2, 3)]
    procs = [spawn(c, log) for c, log in zip(configs, logs, strict=True)]
    publisher = Publisher(mosquitto)
    ts0 = int(time.time() * 1000) - 600_000
    expected: dict[str, list[int]] = {d: [] for d in DEVICES}
    try:
        for log in logs:
            wait_until(lambda log=log: log.exists() and b"bridge connected" in log.read_bytes(), 20, f"{log.name} up")
        for i in range(MESSAGES):
            device = DEVICES[i % len(DEVICES)]
            ts = ts0 + i * 10
            publisher.send(topics.telemetry("s1", device), encode(wq_message(device, i, ts, samples=SAMPLES)))
            expected[device].extend(ts + j for j in range(SAMPLES))
            if i == MESSAGES // 3:
                os.kill(procs[1].pid, signal.SIGKILL)  # bridge 2 dies with whatever it holds unacknowledged
                procs[1].wait(10)
            if i == 2 * MESSAGES // 3:
                # Mosquitto keeps giving the away member its share: it waits in bridge 2's session, not stored yet
                so_far = sum(len(v) for v in expected.values())
                time.sleep(1.0)
                waiting = so_far - sum(len(v) for v in stored(influxdb).values())
                assert waiting > 0, "the killed bridge's share was stored without it: the test proves nothing"
                procs[1] = spawn(configs[1], logs[1])  # and comes back to its session
        total = sum(len(v) for v in expected.values())
        wait_until(lambda: sum(len(v) for v in stored(influxdb).values()) >= total, 40, f"all {total} readings")
        time.sleep(1.0)  # a late redelivery would show as an extra point now
        got = stored(influxdb)
        assert {d: sorted(ts) for d, ts in got.items()} == {d: sorted(ts) for d, ts in expected.items()}
        for device, times in got.items():
            assert len(times) == len(set(times)), f"{device}: a reading stored twice"
        # every point of the contract stored, not only pH
        rows = influx_query(influxdb, 'SELECT count(*) FROM "water_quality"')
        assert all(rows[0][f"count_{p}"] == total for p in WQ_POINTS)
    finally:
        publisher.close()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(15)
