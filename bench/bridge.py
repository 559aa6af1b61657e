"""``lifeline bench bridge``: readings/s stored in InfluxDB through the bridge, and sample-to-stored latency.

Loopback only: a Mosquitto and an InfluxDB 1.6.7 of the benchmark's own (temporary folder), the bridge as a child
process (``lifeline bridge``) that reports through its metrics endpoint, and a QoS 1 publisher in this process
with a bounded window. Cases, for 1, 10 and 100 readings per message (a reading is one point value; 10 readings are
one water-quality sample, 100 are ten):

- drain: the messages are queued at the broker (in the bridge's persistent session, and in the reference bridge's:
  bench._reference_bridge, paho + orjson + line protocol and nothing else) before the clock starts; the figure is
  readings stored per second from the bridge's connection to the last one stored, for Lifeline's bridge and then
  the reference, with their ratio (``--reference``: the reference alone);
- live: the publisher sends as fast as it can while the bridge stores; readings stored per second;
- steady (mode ``live`` with ``"steady": true`` in JSON): 10k readings/s (10 per message) for
  ``--latency-seconds``.

In the live cases the sample time is the publish time, and p50/p99 are the bridge's own sample-to-stored age (from
the sample's time to InfluxDB's answer); drain cases have none (their samples were queued before the start).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench._broker import bench_account, bench_client, closed_broker, service_broker
from bench._figures import figure, write_json
from lifeline.broker_auth import bridge_account, bridge_publisher_account
from telemetry import Sample, Telemetry, encode, topics
from testing import Influxd, Mosquitto, ServiceProcess, free_port

POINTS = ["ph", "do", "codmn", "cod", "nh3_n", "tp", "tn", "turbidity", "conductivity", "water_temp"]
DEVICES = 100


def message(device: int, seq: int, readings: int, ts: int) -> tuple[str, bytes]:
    """A water-quality message carrying ``readings`` point values (1, 10 or 100); ``seq`` counts per device, as an
    edge agent's does (so the bridge's Stored confirmations hold one range per device and batch)."""
    per_sample = min(readings, 10)
    samples = [
        Sample(ts=ts + i, values={p: 7.0 + (seq % 97) / 100 + j / 10 for j, p in enumerate(POINTS[:per_sample])})
        for i in range(max(1, readings // 10))
    ]
    msg = Telemetry(
        site="bench",
        device=f"wq-{device:03d}",
        profile="water_quality_station",
        measurement="water_quality",
        seq=seq,
        samples=samples,
    )
    return topics.telemetry("bench", msg.device), encode(msg)


class Publisher:
    """QoS 1 with our own bounded window (the client library's own queue loses messages past 65,535 in flight)."""

    def __init__(self, broker: Mosquitto, window: int = 200) -> None:
        self.client = bench_client(broker, "publisher")
        self.client.max_inflight_messages_set(window)
        self.window = window
        self.unacked = 0
        self.client.on_publish = self._acked
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _acked(self, *args: object) -> None:
        self.unacked -= 1

    def send(self, topic: str, payload: bytes) -> None:
        while self.unacked >= self.window:
            time.sleep(0.0002)
        self.unacked += 1
        self.client.publish(topic, payload, qos=1)

    def flush(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.unacked > 0 and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def _cpu_s(bridge: ServiceProcess) -> float:
    """CPU seconds (user + system) the bridge's process has used so far (Linux /proc)."""
    assert bridge.proc is not None
    fields = Path(f"/proc/{bridge.proc.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _written(bridge: ServiceProcess) -> float:
    return bridge.metrics().get("lifeline_bridge_written_points_total", 0.0)


def _wait_written(bridge: ServiceProcess, lines: int, timeout_s: float) -> float:
    """Seconds until the bridge has stored ``lines`` more lines than now (or the time-out)."""
    base, start = _written(bridge), time.monotonic()
    while time.monotonic() - start < timeout_s:
        if _written(bridge) - base >= lines:
            break
        time.sleep(0.02)
    return time.monotonic() - start


class Reference:
    """The reference bridge (bench._reference_bridge) as a child process, with a bench-only account."""

    def __init__(self, folder: Path, broker: Mosquitto, influx_url: str) -> None:
        account = bench_account(broker, "reference")
        self.path = folder / "reference.json"
        self.base = {
            "broker": {
                "host": broker.host,
                "port": broker.port,
                "username": account.username,
                "password": account.secret(),
            },
            "client_id": "bench-reference",
            "topic": "lifeline/v1/+/+/telemetry",
            "influx_url": influx_url,
            "database": "reference",
            "max_points": 5000,
            "max_delay_s": 0.2,
        }

    def run(self, expect_lines: int = 0, subscribe_only: bool = False) -> dict[str, Any]:
        self.path.write_text(json.dumps({**self.base, "expect_lines": expect_lines, "subscribe_only": subscribe_only}))
        self.path.chmod(0o600)
        done = subprocess.run(
            [sys.executable, "-m", "bench._reference_bridge", str(self.path)],
            capture_output=True,
            timeout=400,
            check=True,
        )
        return json.loads(done.stdout) if not subscribe_only else {}


def drain(
    broker: Mosquitto, bridge: ServiceProcess | None, reference: Reference | None, readings: int, total_readings: int
) -> dict[str, object]:
    """The same backlog queued for Lifeline's bridge and the reference (each its own session), drained one after
    the other; readings/s from the connection to the last stored (the process start is not counted)."""
    count = total_readings // readings
    if bridge is not None:
        bridge.start()
        bridge.stop()  # the session stays at the broker and queues what follows
    if reference is not None:
        reference.run(subscribe_only=True)
    pub = Publisher(broker)
    ts0 = int(time.time() * 1000) - 3_600_000
    for i in range(count):
        pub.send(*message(i % DEVICES, i // DEVICES, readings, ts0 + i * 10))
    pub.close()
    per_line = min(readings, 10)
    lines = count * max(1, readings // 10)
    case: dict[str, object] = {
        "readings_per_message": readings,
        "mode": "drain",
        "messages": count,
        "p50_ms": None,
        "p99_ms": None,
    }
    if bridge is not None:
        bridge.start()  # returns once it is connected (and already storing)
        started, base, cpu = time.monotonic(), _written(bridge), _cpu_s(bridge)
        while time.monotonic() - started < 300 and _written(bridge) < lines:
            time.sleep(0.05)  # each look renders the bridge's metrics: not too often
        cpu = _cpu_s(bridge) - cpu
        m = bridge.metrics()
        bridge.stop()
        # from the broker's CONNACK to InfluxDB's last answer, as the reference measures itself
        took = m["lifeline_bridge_last_write_seconds"] - m["lifeline_bridge_broker_connected_since_seconds"]
        stored = m["lifeline_bridge_written_points_total"] * per_line
        case["write_retries"] = int(m.get("lifeline_bridge_retries_total", 0))  # a slow drain says why
        case.update(
            readings_per_s=round(stored / took),
            seconds=round(took, 2),
            cpu_us_per_message=round(cpu / ((lines - base) / max(1, readings // 10)) * 1e6, 1),
        )
    if reference is not None:
        ref = reference.run(expect_lines=lines)
        case["reference_readings_per_s"] = round(ref["lines"] * per_line / ref["seconds"])
        case["reference_seconds"] = ref["seconds"]
        case["reference_cpu_us_per_message"] = round(ref["cpu_s"] / (ref["lines"] * per_line / readings) * 1e6, 1)
        if bridge is not None:
            case["ratio"] = round(case["readings_per_s"] / case["reference_readings_per_s"], 2)  # type: ignore[operator]
    return case


def live(broker: Mosquitto, bridge: ServiceProcess, readings: int, seconds: float) -> dict[str, object]:
    """As fast as the publisher goes; the sample time is the publish time, so the bridge's age is the latency."""
    bridge.start()
    pub = Publisher(broker)
    started, sent = time.monotonic(), 0
    base = _written(bridge)
    while time.monotonic() - started < seconds:
        pub.send(*message(sent % DEVICES, sent // DEVICES, readings, int(time.time() * 1000)))
        sent += 1
    pub.close()
    lines = sent * max(1, readings // 10)
    while time.monotonic() - started < seconds + 120 and _written(bridge) - base < lines:
        time.sleep(0.02)
    took = time.monotonic() - started
    p50, p99 = _ages(bridge.metrics())
    bridge.stop()
    return {
        "readings_per_message": readings,
        "mode": "live",
        "readings_per_s": round(sent * readings / took),
        "messages": sent,
        "seconds": round(took, 2),
        "p50_ms": p50,
        "p99_ms": p99,
    }


def _ages(m: dict[str, float]) -> tuple[float, float]:
    """p50 and p99 of the bridge's sample-to-stored age, in ms."""
    p50 = m.get('lifeline_bridge_sample_age_seconds{quantile="0.5"}', float("nan")) * 1000
    p99 = m.get('lifeline_bridge_sample_age_seconds{quantile="0.99"}', float("nan")) * 1000
    return round(p50, 1), round(p99, 1)


def latency(broker: Mosquitto, bridge: ServiceProcess, rate: int, seconds: float) -> dict[str, object]:
    """A steady ``rate`` readings/s, 10 per message; the sample time is the publish time."""
    bridge.start()
    pub = Publisher(broker)
    per_s = rate // 10
    started, sent = time.monotonic(), 0
    while time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * per_s)
        while sent < due:
            pub.send(*message(sent % DEVICES, sent // DEVICES, 10, int(time.time() * 1000)))
            sent += 1
        time.sleep(0.001)
    pub.close()
    _wait_written(bridge, 0, 5)
    time.sleep(1.0)
    p50, p99 = _ages(bridge.metrics())
    bridge.stop()
    return {
        "readings_per_message": 10,
        "mode": "live",
        "steady": True,
        "readings_per_s": round(sent * 10 / seconds),
        "messages": sent,
        "seconds": seconds,
        "p50_ms": p50,
        "p99_ms": p99,
    }


def run(args: argparse.Namespace) -> int:
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="lifeline-bench-bridge-") as tmp:
        folder = Path(tmp)
        accounts = [bridge_account(1), bridge_publisher_account(1)]
        with closed_broker(folder, accounts) as broker, Influxd(folder / "influx") as influx:
            influx.create_database("lifeline")
            influx.create_database("reference")
            metrics_port = free_port()
            config = folder / "bridge.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "broker": service_broker(folder, broker, "bridge-1"),
                        "publisher": service_broker(folder, broker, "bridge-1-pub"),
                        "subscription": {"client_id": "bridge-1", "receive_maximum": 20000},
                        "influx": {"url": influx.url, "database": "lifeline"},
                        "batch": {"max_points": 5000, "max_delay_s": 0.2},
                        "dead_letter_path": str(folder / "dead.sqlite"),
                        "metrics_port": metrics_port,
                    }
                )
            )
            bridge = ServiceProcess(
                ["bridge"], config, metrics_port, folder / "bridge.log", "lifeline_bridge_broker_connected"
            )
            try:
                reference = Reference(folder, broker, influx.url)
                ours = None if args.reference else bridge
                for readings in (int(n) for n in args.per_message.split(",")):
                    total = args.readings if readings > 1 else args.readings // 5
                    case = drain(broker, ours, reference, readings, total)
                    results.append(case)
                    figure(_row(case))
                    if ours is not None and not args.drain_only:
                        case = live(broker, bridge, readings, args.live_seconds)
                        results.append(case)
                        figure(_row(case))
                if ours is not None and not args.drain_only:
                    case = latency(broker, bridge, 10_000, args.latency_seconds)
                    results.append(case)
                    figure(_row(case))
            finally:
                bridge.stop()
    write_json(args.json, "bridge", results)
    return 0


def _row(case: dict[str, object]) -> str:
    extra = f"  sample-to-stored p50={case['p50_ms']} ms p99={case['p99_ms']} ms" if case["p50_ms"] else ""
    mode = "steady" if case.get("steady") else case["mode"]
    head = f"{mode:<8} readings/message={case['readings_per_message']:<4} "
    if "readings_per_s" not in case:  # --reference: the reference alone
        return f"{head}reference readings/s={case['reference_readings_per_s']:>8}  messages={case['messages']}"
    row = f"{head}readings/s={case['readings_per_s']:>8}  messages={case['messages']} in {case['seconds']} s{extra}"
    if "cpu_us_per_message" in case:
        row += f"  CPU/message={case['cpu_us_per_message']} us"
    if case.get("write_retries"):
        row += f"  InfluxDB write retries={case['write_retries']}"
    if "ratio" in case:
        row += (
            f"  reference readings/s={case['reference_readings_per_s']:>8}"
            f" CPU/message={case['reference_cpu_us_per_message']} us  ratio={case['ratio']}"
        )
    return row
