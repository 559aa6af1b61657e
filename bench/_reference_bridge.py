"""The reference bridge of ``lifeline bench bridge``: the least a bridge can do, to measure Lifeline's against.

paho (MQTT 5, persistent session, QoS 1 acknowledged on receipt), orjson, and line protocol built by hand; no
validation beyond JSON, no retries, no dead letters, no confirmations, no metrics. A child process:
``python -m bench._reference_bridge CONFIG.json`` with ``{"broker": {"host", "port", "username", "password"},
"client_id", "topic", "influx_url", "database", "expect_lines", "max_points", "max_delay_s", "subscribe_only"}``.
It stores until ``expect_lines`` lines are written, then prints one JSON line: the lines and the seconds (and CPU
seconds) from its CONNACK to the last write (``subscribe_only``: it connects, subscribes and leaves, so its session
queues).

It stays raw public paho on purpose, the one client outside ``infra.mqtt``: it is the independent yardstick, so it
shares none of the transport's code (no lean client, no backoff, no settings model).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import httpx
import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def lines_of(payload: bytes | bytearray) -> list[str]:
    msg = orjson.loads(payload)
    prefix = f"{msg['measurement']},device={msg['device']},profile={msg['profile']},site={msg['site']}"
    out = []
    for sample in msg["samples"]:
        values = sample["values"]
        fields = ",".join(f"{k}={float(values[k])!r}" for k in sorted(values))
        out.append(f"{prefix} {fields} {sample['ts']}")
    return out


def _store(cfg: dict[str, Any], pending: list[str], lock: threading.Lock, started: float) -> tuple[int, float]:
    """Write what arrives in batches until ``expect_lines`` are written; the lines and the last write's time."""
    written, last = 0, started
    url = f"{cfg['influx_url']}/write"
    params = {"db": cfg["database"], "precision": "ms"}
    with httpx.Client(timeout=30) as http:
        deadline = time.monotonic() + 300
        cut = time.monotonic()
        while written < cfg["expect_lines"] and time.monotonic() < deadline:
            if len(pending) < cfg["max_points"] and time.monotonic() - cut < cfg["max_delay_s"]:
                time.sleep(0.005)
                continue
            cut = time.monotonic()
            with lock:
                batch = pending[: cfg["max_points"]]
                del pending[: cfg["max_points"]]
            if batch:
                http.post(url, params=params, content="\n".join(batch).encode()).raise_for_status()
                written += len(batch)
                last = time.monotonic()
    return written, last


def main(path: str) -> int:
    cfg: dict[str, Any] = json.loads(open(path).read())  # noqa: SIM115 - a tiny file, read once
    pending: list[str] = []
    lock = threading.Lock()
    connected = threading.Event()
    subscribed = threading.Event()

    clock: list[float] = []  # monotonic time and process CPU at the CONNACK: messages flow from there

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        clock[:] = [time.monotonic(), time.process_time()]
        connected.set()
        client.subscribe(cfg["topic"], qos=1)

    def on_subscribe(*args: Any) -> None:
        subscribed.set()

    def on_message(client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        lines = lines_of(message.payload)
        with lock:
            pending.extend(lines)

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=cfg["client_id"], protocol=mqtt.MQTTv5
    )
    broker = cfg["broker"]
    client.username_pw_set(broker["username"], broker["password"])
    client.on_connect, client.on_message, client.on_subscribe = on_connect, on_message, on_subscribe
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    props.ReceiveMaximum = 20000
    client.connect(broker["host"], broker["port"], clean_start=False, properties=props)
    client.loop_start()
    if not connected.wait(20) or not subscribed.wait(20):
        return 1
    started, cpu = clock
    if cfg.get("subscribe_only"):
        client.disconnect()
        client.loop_stop()
        return 0
    written, last = _store(cfg, pending, lock, started)
    cpu = time.process_time() - cpu
    client.disconnect()
    client.loop_stop()
    print(json.dumps({"lines": written, "seconds": round(last - started, 3), "cpu_s": round(cpu, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1]))
