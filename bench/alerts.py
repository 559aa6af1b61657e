"""``lifeline bench alerts``: reading-to-notification latency under load, and the most one rules engine evaluates.

Loopback only: a Mosquitto of the benchmark's own (temporary folder), the rules service as a child process
(``lifeline rules run``) with the shipped packs and an SQLite alert store, its notifications on the MQTT channel.
A reading is one point value; the load is water-quality samples of 10 readings each, from 200 stations.

- max: messages are queued at the broker (in the engine's persistent session) before the clock starts; the figure
  is readings evaluated per second from the engine's connection (not its process start) until it has seen them all.
- steady: ``--rate`` readings/s (default 20,000) for ``--seconds``; meanwhile every ``--probe-interval`` a gas
  detector that has not alarmed before jumps to 60 %LEL (the shipped gas.lel rule's critical level, no delay).
  Latency is from that reading's publish to the notification arriving on ``lifeline/v1/alerts/notify/safety``:
  through the broker, the engine, the alert store (SQLite, one transaction per alert) and the notifier.

The flood limit is lifted for the benchmark (every probe is a new alert for the same audience; with the shipped
limit of 10 in 10 minutes the 11th would be held in a flood summary, which is what an operator wants, not a
benchmark).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import orjson
import yaml

from bench._broker import bench_client, closed_broker, service_broker
from bench._figures import figure, write_json
from bench.bridge import Publisher
from infra.mqtt import Client, MQTTMessage
from lifeline.broker_auth import rules_account, rules_publisher_account
from rules.config import PACKS
from telemetry import Sample, Telemetry, encode, topics
from testing import Mosquitto, ServiceProcess, free_port

POINTS = ["ph", "do", "codmn", "cod", "nh3_n", "tp", "tn", "turbidity", "conductivity", "water_temp"]
STATIONS = 200
PER_MESSAGE = len(POINTS)


def wq(device: int, seq: int, ts: int) -> tuple[str, bytes]:
    values = {p: 7.0 + (seq % 13) / 100 + j / 100 for j, p in enumerate(POINTS)}  # normal water: no alert
    values["do"] = 7.5
    msg = Telemetry(
        site="bench",
        device=f"wq-{device:03d}",
        profile="water_quality_station",
        measurement="water_quality",
        seq=seq,
        samples=[Sample(ts=ts, values=values)],
    )
    return topics.telemetry("bench", msg.device), encode(msg)


def gas(probe: int, ts: int) -> tuple[str, bytes]:
    msg = Telemetry(
        site="bench-plant",
        device=f"gas-{probe:05d}",
        profile="gas_detector",
        measurement="gas_safety",  # the profile's (the rules engine refuses any other, as the bridge)
        seq=1,
        samples=[Sample(ts=ts, values={"lel": 60.0})],
    )
    return topics.telemetry("bench-plant", msg.device), encode(msg)


class Notifications:
    """Arrival times of notifications by device."""

    def __init__(self, broker: Mosquitto) -> None:
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = bench_client(broker, "notifications")
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.ready.wait(10)

    def _on_connect(self, client: Client, *args: object) -> None:
        client.subscribe(topics.alert_notification("safety"), qos=1)
        self.ready.set()

    def _on_message(self, client: Client, userdata: object, msg: MQTTMessage) -> None:
        now = time.time()
        body = orjson.loads(msg.payload)
        if body.get("kind") == "raised" and body.get("device"):
            with self.lock:
                self.arrived.setdefault(body["device"], now)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _seen(engine: ServiceProcess) -> float:
    return engine.metrics().get("lifeline_rules_telemetry_total", 0.0)


def max_rate(broker: Mosquitto, engine: ServiceProcess, messages: int) -> dict[str, object]:
    engine.start()
    engine.stop()  # the session stays at the broker and queues what follows
    pub = Publisher(broker)
    ts0 = int(time.time() * 1000) - 3_600_000
    for i in range(messages):
        pub.send(*wq(i % STATIONS, i, ts0 + i * 10))
    pub.close()
    engine.start()  # returns once it is connected: the process start is not counted
    started, base = time.monotonic(), _seen(engine)
    while time.monotonic() - started < 300 and _seen(engine) < messages:
        time.sleep(0.05)
    took = time.monotonic() - started
    seen = _seen(engine)
    engine.stop()
    return {
        "mode": "max",
        "messages": int(seen),
        "seconds": round(took, 2),
        "readings_per_s": round((seen - base) * PER_MESSAGE / took),
    }


def steady(broker: Mosquitto, engine: ServiceProcess, rate: int, seconds: float, probe_s: float) -> dict[str, object]:
    engine.start()
    notes = Notifications(broker)
    pub = Publisher(broker)
    per_s = rate / PER_MESSAGE
    probes: dict[str, float] = {}
    base = _seen(engine)
    started, sent, next_probe = time.monotonic(), 0, time.monotonic() + 1.0
    while time.monotonic() - started < seconds:
        due = int((time.monotonic() - started) * per_s)
        while sent < due:
            pub.send(*wq(sent % STATIONS, sent, int(time.time() * 1000)))
            sent += 1
        if time.monotonic() >= next_probe:
            next_probe += probe_s
            now = time.time()
            topic, payload = gas(len(probes), int(now * 1000))
            probes[f"gas-{len(probes):05d}"] = now
            pub.send(topic, payload)
        time.sleep(0.0005)
    pub.close()
    took = time.monotonic() - started
    evaluated = _seen(engine) - base
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(notes.arrived) < len(probes):
        time.sleep(0.05)
    notes.close()
    engine.stop()
    lat = sorted((notes.arrived[d] - t) * 1000 for d, t in probes.items() if d in notes.arrived)
    return {
        "mode": "steady",
        "readings_per_s": round(sent * PER_MESSAGE / took),
        "evaluated_readings_per_s": round(evaluated * PER_MESSAGE / took),
        "probes": len(probes),
        "notified": len(lat),
        "p50_ms": round(statistics.median(lat), 1) if lat else None,
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 1) if lat else None,
        "seconds": round(took, 2),
    }


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lifeline-bench-alerts-") as tmp:
        folder = Path(tmp)
        with closed_broker(folder, [rules_account(1), rules_publisher_account(1)]) as broker:
            metrics_port = free_port()
            config = folder / "rules.yaml"
            config.write_text(
                yaml.safe_dump(
                    {
                        "broker": service_broker(folder, broker, "rules-1"),
                        "publisher": service_broker(folder, broker, "rules-1-pub"),
                        "rules": {"packs": [str(PACKS)]},  # the shipped subscription: $share/lifeline-rules/
                        "alerts": {
                            "store_url": f"sqlite:///{folder / 'alerts.db'}",
                            "policy": {"flood": {"max_new": 1_000_000}},
                            "notify": {"channels": {"bus": {"type": "mqtt"}}, "routes": [{"channels": ["bus"]}]},
                        },
                        "metrics_port": metrics_port,
                    }
                )
            )
            engine = ServiceProcess(
                ["rules", "run"], config, metrics_port, folder / "rules.log", "lifeline_rules_broker_connected"
            )
            try:
                top = max_rate(broker, engine, args.messages)
                figure(
                    f"max     {top['readings_per_s']:>8} readings/s evaluated ({top['messages']} messages of "
                    f"{PER_MESSAGE} in {top['seconds']} s)"
                )
                load = steady(broker, engine, args.rate, args.seconds, args.probe_interval)
            finally:
                engine.stop()
    write_json(
        args.json,
        "alerts",
        {
            "readings_per_s": load["readings_per_s"],
            "p50_ms": load["p50_ms"],
            "p99_ms": load["p99_ms"],
            "max_readings_per_s": top["readings_per_s"],
            "steady": load,
            "max": top,
        },
    )
    figure(
        f"steady  {load['readings_per_s']:>8} readings/s offered, {load['evaluated_readings_per_s']} evaluated; "
        f"reading-to-notification p50={load['p50_ms']} ms p99={load['p99_ms']} ms "
        f"({load['notified']}/{load['probes']} probes notified)"
    )
    return 0
