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

The ceiling: InfluxDB's own ingest in the same run, where the bridge writes (``lifeline up``'s write gateway, nginx
in front of influxd, when nginx is installed, as ``lifeline up`` runs it; ``--direct``: influxd itself, for bridge
and ceiling alike): the lines the bridge would write for the same messages (its own encoder, batches of its
``max_points``), encoded before the clock starts and posted by 1, 2, 4 and 8 concurrent writers; the best is the
ceiling, and each drain case prints the bridge's readings/s as a fraction of it (goal: 0.8 at 10 and 100 readings a
message). Lines of 10 values each, as the bridge writes 10 and 100 readings a message (1 reading a message is a line
of one value: the ceiling of those lines is not measured).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from bench._broker import bench_account, bench_client, closed_broker, service_broker
from bench._figures import figure, write_json
from lifeline.broker_auth import bridge_account, bridge_publisher_account
from lifeline.runners import ServiceError, find_binary
from lifeline.write_gateway import WriteGateway
from storage.lineproto import LineEncoder
from telemetry import Sample, Telemetry, decode_telemetry, encode, topics
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


class Target:
    """Where the bridge writes, and the ceiling is measured: the write gateway (as ``lifeline up``) or influxd."""

    def __init__(self, folder: Path, influx: Influxd, direct: bool) -> None:
        self.influx = influx
        self.gateway: WriteGateway | None = None
        self.password = secrets.token_urlsafe(32)
        if not direct:
            try:
                find_binary("nginx")
            except ServiceError:
                direct = True  # no nginx here: the bridge writes to influxd, and says so
        if not direct:
            self.gateway = WriteGateway(folder / "gateway", influx.url, ("writer", "unused"), {"bridge": self.password})
            self.gateway.start()
        self.name = "write gateway (nginx) -> influxd" if self.gateway is not None else "influxd"

    def influx_config(self) -> dict[str, object]:
        config: dict[str, object] = {"url": self.influx.url, "database": "lifeline"}
        if self.gateway is not None:
            config["gateway"] = {"url": self.gateway.url, "username": "bridge", "password": self.password}
        return config

    def client(self) -> httpx.Client:
        if self.gateway is not None:
            return httpx.Client(base_url=self.gateway.url, auth=("bridge", self.password), timeout=60)
        return httpx.Client(base_url=self.influx.url, timeout=60)

    def stop(self) -> None:
        if self.gateway is not None:
            self.gateway.stop()


def _ceiling_batches(batches: int, lines_per_batch: int) -> list[bytes]:
    """The line protocol the bridge writes for 10-reading messages (its own encoder), in batches of its size."""
    encoder = LineEncoder()
    out = []
    ts0 = int(time.time() * 1000) - 7_200_000
    for b in range(batches):
        msgs = [
            decode_telemetry(message(i % DEVICES, b * lines_per_batch + i, 10, ts0 + b * lines_per_batch + i)[1])
            for i in range(lines_per_batch)
        ]
        body, _ = encoder.encode_batch(msgs)
        # a measurement of its own: the bridge's series (and its overwrite guard's marks) are not touched
        out.append(body.replace(b"water_quality,", b"ceiling_water_quality,"))
    return out


def ceiling(target: Target, seconds: float, lines_per_batch: int = 5000) -> dict[str, object]:
    """Readings/s InfluxDB stores from pre-encoded batches, by writers; the best is the ceiling."""
    batches = _ceiling_batches(24, lines_per_batch)
    by_writers: dict[int, int] = {}
    for writers in (1, 2, 4, 8):
        done = [0] * writers
        stop_at = time.monotonic() + seconds
        failures: list[str] = []

        def post(
            k: int,
            done: list[int] = done,
            stop_at: float = stop_at,
            failures: list[str] = failures,
            step: int = writers,
        ) -> None:
            with target.client() as client:
                i = k
                while time.monotonic() < stop_at:
                    answer = client.post(
                        "/write", params={"db": "lifeline", "precision": "ms"}, content=batches[i % len(batches)]
                    )
                    if answer.status_code != 204:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                        return
                    done[k] += 1
                    i += step

        started = time.monotonic()
        threads = [threading.Thread(target=post, args=(k,)) for k in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failures:
            raise SystemExit(f"the ceiling's writes failed at {target.name}: {failures[0]}")
        by_writers[writers] = round(sum(done) * lines_per_batch * 10 / (time.monotonic() - started))
    best = max(by_writers, key=lambda w: by_writers[w])
    return {
        "mode": "ceiling",
        "target": target.name,
        "readings_per_line": 10,
        "lines_per_batch": lines_per_batch,
        "readings_per_s_by_writers": by_writers,
        "readings_per_s": by_writers[best],
        "writers": best,
        "load_average_1m": round(os.getloadavg()[0], 2),
    }


def run(args: argparse.Namespace) -> int:
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="lifeline-bench-bridge-") as tmp:
        folder = Path(tmp)
        accounts = [bridge_account(1), bridge_publisher_account(1)]
        with closed_broker(folder, accounts) as broker, Influxd(folder / "influx") as influx:
            influx.create_database("lifeline")
            influx.create_database("reference")
            target = Target(folder, influx, args.direct)
            metrics_port = free_port()
            config = folder / "bridge.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "broker": service_broker(folder, broker, "bridge-1"),
                        "publisher": service_broker(folder, broker, "bridge-1-pub"),
                        "subscription": {"client_id": "bridge-1", "receive_maximum": 20000},
                        "influx": target.influx_config(),
                        "batch": {"max_points": 5000, "max_delay_s": 0.2},
                        "dead_letter_path": str(folder / "dead.sqlite"),
                        "metrics_port": metrics_port,
                    }
                )
            )
            config.chmod(0o600)
            bridge = ServiceProcess(
                ["bridge"], config, metrics_port, folder / "bridge.log", "lifeline_bridge_broker_connected"
            )
            try:
                reference = Reference(folder, broker, influx.url)
                ours = None if args.reference else bridge
                top: dict[str, object] | None = None
                if ours is not None and args.ceiling_seconds > 0:
                    top = ceiling(target, args.ceiling_seconds)
                    results.append(top)
                    figure(
                        f"ceiling  readings/s={top['readings_per_s']:>8} at {top['target']} with {top['writers']}"
                        f" writers (by writers: {top['readings_per_s_by_writers']})"
                    )
                for readings in (int(n) for n in args.per_message.split(",")):
                    total = args.readings if readings > 1 else args.readings // 5
                    case = drain(broker, ours, reference, readings, total)
                    if top is not None and readings >= 10 and "readings_per_s" in case:
                        case["target"] = top["target"]
                        case["ceiling_readings_per_s"] = top["readings_per_s"]
                        case["fraction_of_ceiling"] = round(case["readings_per_s"] / top["readings_per_s"], 2)  # type: ignore[operator]
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
                target.stop()
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
    if "fraction_of_ceiling" in case:
        row += f"  of the ceiling={case['fraction_of_ceiling']}"
    if "ratio" in case:
        row += (
            f"  reference readings/s={case['reference_readings_per_s']:>8}"
            f" CPU/message={case['reference_cpu_us_per_message']} us  ratio={case['ratio']}"
        )
    return row
