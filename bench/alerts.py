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

- ``--devices N``: instead of the above, the CPU one rules engine spends a message at 100 devices and at N
  (the district's gas and fire detectors, each reporting every 10 s; one gas probe a second raises an alert), in
  this process without a broker: the service's own intake (validation against the registry of the site's devices),
  the shipped packs, its ticks and checkpoints (JSON-encoded as the alert store does). What grows with N is what a
  message costs beyond its own evaluation.

The flood limit is lifted for the benchmark (every probe is a new alert for the same audience; with the shipped
limit of 10 in 10 minutes the 11th would be held in a flood summary, which is what an operator wants, not a
benchmark).
"""

from __future__ import annotations

import argparse
import asyncio
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
from device_profiles import load_catalogue
from device_profiles.validate import Registry
from infra.mqtt import Client, Incoming, MQTTMessage
from lifeline.broker_auth import rules_account, rules_publisher_account
from rules import load_rules
from rules.config import PACKS, RulesConfig
from rules.evaluate import Transition
from rules.service import RulesService
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


DETECTORS_A_SITE = 100  # an industrial park's enterprises, 10 detectors each
REPORT_S = 10  # each detector reports every 10 s


def detector(i: int, seq: int, ts: int, lel: float | None = None) -> tuple[str, bytes]:
    """Detector ``i`` of the district (8 gas, 2 fire in every 10), normal readings unless ``lel`` is given."""
    site, device = f"park-{i // DETECTORS_A_SITE:03d}", f"det-{i:05d}"
    if i % 10 < 8:
        gas_values: dict[str, float | int | bool] = {"lel": lel if lel is not None else float(seq % 5)}
        gas_values.update(alarm_level=2 if lel else 0, battery=90.0)
        msg = Telemetry(
            site=site,
            device=device,
            profile="gas_detector",
            measurement="gas_safety",
            seq=seq,
            samples=[Sample(ts=ts, values=gas_values)],
        )
    else:
        fire_values: dict[str, float | int | bool] = {"fire_alarm": False, "detector_fault": False}
        fire_values.update(smoke_density=0.1, temperature=22.0 + seq % 3)
        msg = Telemetry(
            site=site,
            device=device,
            profile="fire_detector",
            measurement="fire_safety",
            seq=seq,
            samples=[Sample(ts=ts, values=fire_values)],
        )
    return topics.telemetry(site, device), encode(msg)


class _Store:
    """The alert store's part in a checkpoint: the state encoded as it encodes it."""

    def __init__(self) -> None:
        self.saves: dict[str, int] = {}  # by blob: the whole state, and the changes saved with transitions
        self.size: dict[str, int] = {}  # the largest of each

    def get_state(self, name: str) -> dict[str, object] | None:
        return None

    def put_state(self, name: str, data: dict[str, object]) -> None:
        kind = "changes" if name.endswith("/changes") else "whole"
        self.saves[kind] = self.saves.get(kind, 0) + 1
        self.size[kind] = max(self.size.get(kind, 0), len(orjson.dumps(data)))


async def _scale(devices: int, seconds: int) -> dict[str, object]:
    store = _Store()

    async def sink(transitions: list[Transition], checkpoint: tuple[str, dict[str, object]] | None) -> None:
        if checkpoint is not None:
            store.put_state(*checkpoint)

    now = [time.time() - seconds - 2 * REPORT_S]
    known = {
        (f"park-{i // DETECTORS_A_SITE:03d}", f"det-{i:05d}"): "gas_detector" if i % 10 < 8 else "fire_detector"
        for i in range(devices)
    }
    registry = Registry(load_catalogue(), known)  # the deployment's devices, as the site files give them
    service = RulesService(RulesConfig(), load_rules([PACKS]), sink, store, clock=lambda: now[0], registry=registry)
    inbox, per_s, mid = service.consumer.inbox, devices // REPORT_S, 0

    def second(k: int, probe: bool) -> float:
        """Queue second ``k``'s messages (and a probe); return the CPU that took (not the engine's)."""
        nonlocal mid
        started = time.process_time()
        ts = int(now[0] * 1000)
        batch = [detector((k * per_s + j) % devices, k, ts) for j in range(per_s)]
        if probe:
            batch.append(detector((k * 10) % devices, k, ts + 500, lel=60.0))
        for topic, payload in batch:
            mid += 1
            inbox.append(Incoming(0, mid, topic, payload, 0))
        return time.process_time() - started

    async def run_for(first: int, count: int, probe: bool) -> tuple[float, int]:
        cpu, seen, last_checkpoint = time.process_time(), service.counters.telemetry, now[0]
        for k in range(first, first + count):
            cpu += second(k, probe)  # not counted: added to the start
            await service.drain()
            await service._emit(service.engine.tick(int(now[0] * 1000)))
            if now[0] - last_checkpoint >= service.config.checkpoint_s:
                await service.checkpoint()
                last_checkpoint = now[0]
            now[0] += 1.0
        return time.process_time() - cpu, service.counters.telemetry - seen

    await run_for(0, REPORT_S, False)  # every device once: the engine's states exist
    await service.checkpoint()
    cpu, messages = await run_for(REPORT_S, seconds, True)
    service.dead_letters.close()
    return {
        "devices": devices,
        "states": len(service.engine.state()["alerts"]),
        "messages": messages,
        "cpu_us_per_message": round(cpu / messages * 1e6, 1),
        "whole_states_saved": store.saves.get("whole", 0),
        "whole_state_bytes": store.size.get("whole", 0),
        "changes_saved": store.saves.get("changes", 0),
        "changes_bytes_max": store.size.get("changes", 0),
        "transitions": service.counters.transitions,
        "invalid": service.counters.invalid,
    }


def device_scale(devices: int, seconds: int) -> list[dict[str, object]]:
    """CPU a message at 100 devices and at ``devices``, in one sitting."""
    return [asyncio.run(_scale(n, seconds)) for n in sorted({100, devices})]


def run(args: argparse.Namespace) -> int:
    if getattr(args, "devices", 0):
        cases = device_scale(args.devices, int(args.seconds))
        for case in cases:
            figure(
                f"devices {case['devices']:>6}: {case['cpu_us_per_message']} us of CPU a message "
                f"({case['messages']} messages, {case['states']} states; {case['whole_states_saved']} whole states "
                f"saved of {case['whole_state_bytes']} bytes, {case['changes_saved']} changes with transitions of at "
                f"most {case['changes_bytes_max']}; {case['transitions']} transitions, {case['invalid']} refused)"
            )
        write_json(args.json, "alerts-devices", {"cases": cases})
        return 0
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
