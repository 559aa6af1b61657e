"""Telemetry from a real Mosquitto into a real InfluxDB 1.6.7 through the bridge, and its failure cases."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from broker_bridge.bridge import Batch, Bridge
from broker_bridge.config import BridgeConfig
from infra.deadletter import DeadLetterStore
from lifeline import runners
from lifeline.bridge_cli import known_site
from lifeline.broker_auth import bridge_account, bridge_publisher_account, replay_account
from telemetry import PointQuality, Quality, Sample, Telemetry, decode_telemetry, encode, topics
from testing import Influxd, Mosquitto
from tests.helpers import LoopThread, Publisher, Subscriber, wait_until
from tests.integration.conftest import RunningDistrict, StartAgent
from tests.servers import InfluxCompatProxy

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
WQ_POINTS = ["ph", "do", "codmn", "cod", "nh3_n", "tp", "tn", "turbidity", "conductivity", "water_temp"]


def config(broker: Mosquitto, influx_server: runners.Influxd, tmp_path: Path, **over: Any) -> BridgeConfig:
    name = f"bridge-{tmp_path.name}"[:56]
    data: dict[str, Any] = {
        # one bridge per test: the same accounts (so the same persistent session) however often it is configured
        "broker": broker.add(replace(bridge_account(), username=name)).model_dump(mode="json"),
        "publisher": broker.add(replace(bridge_publisher_account(), username=f"{name}-pub")).model_dump(mode="json"),
        "subscription": {"client_id": f"bridge-{tmp_path.name}"[:60], "receive_maximum": 2000},
        "influx": {"url": influx_server.url, "database": "lifeline", "timeout_s": 2.0},
        "batch": {"max_points": 2000, "max_delay_s": 0.2},
        "retry": {"initial_s": 0.2, "max_s": 1.0},
        "dead_letter_path": str(tmp_path / "dead.sqlite"),
    }
    for key, value in over.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return BridgeConfig.model_validate(data)


def influx_query(influx: Influxd, q: str) -> list[dict[str, Any]]:
    resp = httpx.get(f"{influx.url}/query", params={"db": "lifeline", "q": q, "epoch": "ms"}, timeout=10)
    resp.raise_for_status()
    out = []
    for result in resp.json()["results"]:
        for series in result.get("series", []):
            for row in series["values"]:
                out.append({**series.get("tags", {}), **dict(zip(series["columns"], row, strict=True))})
    return out


def count_points(influx: Influxd, measurement: str = "water_quality", field: str = "ph") -> int:
    rows = influx_query(influx, f'SELECT count("{field}") FROM "{measurement}"')
    return int(rows[0]["count"]) if rows else 0


def wq_message(device: str, seq: int, ts0: int, samples: int = 1, site: str = "s1") -> Telemetry:
    return Telemetry(
        site=site,
        device=device,
        profile="water_quality_station",
        measurement="water_quality",
        seq=seq,
        tags={"domain": "environment"},
        units={"ph": "pH"},
        samples=[
            Sample(ts=ts0 + i, values={p: round(7 + (seq % 100) / 100 + i / 1000, 6) for p in WQ_POINTS})
            for i in range(samples)
        ],
    )


def start_bridge(cfg: BridgeConfig) -> tuple[Bridge, LoopThread]:
    holder: dict[str, Bridge] = {}

    async def main(stop: Any) -> None:
        holder["bridge"] = Bridge(cfg, load_site=known_site)
        await holder["bridge"].run(stop)

    thread = LoopThread(main)
    wait_until(lambda: "bridge" in holder and holder["bridge"].consumer.connected, 10, "bridge connected")
    return holder["bridge"], thread


def test_readings_stored_exactly_as_sampled(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher
) -> None:
    bridge, thread = start_bridge(config(mosquitto, influxdb, tmp_path, metrics_port=0))
    try:
        ts0 = int(time.time() * 1000) - 60_000
        msg = wq_message("wq-9", 1, ts0, samples=3)
        msg.samples[1].values["cod"] = None
        msg.samples[1].quality["cod"] = PointQuality(q=Quality.BAD, reason="modbus exception 2")
        msg.samples[2].quality["ph"] = PointQuality(q=Quality.UNCERTAIN, reason="15 outside the range [0, 14]")
        msg.samples[2].values["ph"] = 15.0
        publisher.send(topics.telemetry("s1", "wq-9"), encode(msg))
        wait_until(lambda: count_points(influxdb) == 3, 10, "3 points stored")
        rows = influx_query(influxdb, 'SELECT * FROM "water_quality" GROUP BY *')
        assert [r["time"] for r in rows] == [ts0, ts0 + 1, ts0 + 2]
        for row, sample in zip(rows, msg.samples, strict=True):
            assert (row["site"], row["device"], row["profile"], row["domain"]) == (
                "s1",
                "wq-9",
                "water_quality_station",
                "environment",
            )
            for point, value in sample.values.items():
                assert row[point] == value, point
        assert rows[1]["cod.q"] == 2
        assert rows[1]["cod.reason"] == "modbus exception 2"
        assert rows[2]["ph.q"] == 1
        assert rows[0].get("ph.q") is None
        wait_until(lambda: bridge.counters.batches == 1, 5, "the batch is counted once acknowledged")
        assert bridge.counters.written_points == 3
        assert bridge.metrics_port
        text = httpx.get(f"http://127.0.0.1:{bridge.metrics_port}/metrics", timeout=5).text
        assert "lifeline_bridge_received_total 1" in text
        assert "lifeline_bridge_written_points_total 3" in text
        assert "lifeline_bridge_dead_lettered_total 0" in text
        assert "lifeline_bridge_batches_total 1" in text
        assert 'lifeline_bridge_sample_age_seconds{quantile="0.99"}' in text
        since = float(re.search(r"^lifeline_bridge_broker_connected_since_seconds (\S+)$", text, re.M)[1])  # type: ignore[index]
        written = float(re.search(r"^lifeline_bridge_last_write_seconds (\S+)$", text, re.M)[1])  # type: ignore[index]
        assert 0 < since <= written <= time.time()
    finally:
        thread.stop()


def test_edge_to_influx_end_to_end(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, mini: RunningDistrict, start_agent: StartAgent
) -> None:
    sub = Subscriber(mosquitto, topics.telemetry("mini-water", "wq-1"))
    sites = tmp_path / "sites"
    sites.mkdir()
    assert mini.district is not None
    (sites / "mini-water.yaml").write_text(yaml.safe_dump(mini.district.site_config("mini-water")))
    bridge, thread = start_bridge(config(mosquitto, influxdb, tmp_path, validation={"sites": [str(sites)]}))
    try:
        start_agent(mini.site_config("mini-water"))
        got = sub.wait_for(lambda ms: len(ms) >= 3, timeout=15)
        samples = [s for m in got for s in decode_telemetry(m.payload).samples]
        wait_until(lambda: count_points(influxdb) >= len(samples), 10, "edge samples stored")
        rows = {
            r["time"]: r for r in influx_query(influxdb, """SELECT * FROM "water_quality" WHERE "device" = 'wq-1'""")
        }
        for sample in samples:
            row = rows[sample.ts]
            for point, value in sample.values.items():
                assert isinstance(value, int | float), (point, value)
                assert math.isclose(row[point], value, rel_tol=0, abs_tol=0), (point, row[point], value)
        gate = influx_query(influxdb, """SELECT last("gate_opening") FROM "sluice_gate" WHERE "device" = 'gate-1'""")
        assert gate
        assert bridge.counters.dead_lettered == 0
    finally:
        thread.stop()
        sub.close()


def test_bad_messages_are_dead_lettered_and_good_ones_flow(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher
) -> None:
    cfg = config(mosquitto, influxdb, tmp_path)
    _, thread = start_bridge(cfg)
    now = int(time.time() * 1000)
    good_topic = topics.telemetry("s1", "wq-1")
    bad = [
        (good_topic, b"{not json", "not JSON"),
        (good_topic, b'{"v": 1, "site": "s1"}', "Field required"),
        (topics.telemetry("s1", "wq-2"), encode(wq_message("wq-1", 1, now)), "came on topic"),
        (good_topic, encode(wq_message("wq-1", 2, now + 86_400_000)), "in the future"),
        (good_topic, encode(wq_message("wq-1", 3, now).model_copy(update={"profile": "nope"})), "unknown profile"),
        (good_topic, encode(wq_message("wq-1", 4, now)).replace(b'"ph":7.04', b'"ph":1e999'), "infinity"),
    ]
    try:
        for i, (topic, payload, _) in enumerate(bad):
            publisher.send(topic, payload)
            publisher.send(good_topic, encode(wq_message("wq-1", 100 + i, now - 10_000 + i)))
        wait_until(lambda: count_points(influxdb) == len(bad), 10, "good messages stored")
        store = DeadLetterStore(tmp_path / "dead.sqlite")
        letters = sorted(store.list(100), key=lambda d: d.id)
        assert len(letters) == len(bad)
        for letter, (topic, payload, reason) in zip(letters, bad, strict=True):
            assert letter.topic == topic
            assert letter.payload == payload
            assert reason in letter.reason, (reason, letter.reason)
            assert letter.stage == "validate"
        store.close()
    finally:
        thread.stop()


def test_points_influx_refuses_are_dead_lettered_with_its_reason(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher
) -> None:
    # a type conflict: "ph" already exists as a string field in this shard
    now = int(time.time() * 1000)
    httpx.post(
        f"{influxdb.url}/write",
        params={"db": "lifeline", "precision": "ms"},
        content=f'water_quality,device=old ph="seven" {now - 5000}',
    ).raise_for_status()
    bridge, thread = start_bridge(config(mosquitto, influxdb, tmp_path))
    try:
        msg = wq_message("wq-5", 1, now - 1000, samples=4)
        publisher.send(topics.telemetry("s1", "wq-5"), encode(msg))
        other = wq_message("wq-6", 1, now - 1000).model_copy(update={"measurement": "water_quality"})
        publisher.send(topics.telemetry("s1", "wq-6"), encode(other))
        wait_until(lambda: bridge.counters.dead_lettered >= 2, 15, "refused points dead-lettered")
        store = DeadLetterStore(tmp_path / "dead.sqlite")
        letters = store.list()
        assert {d.stage for d in letters} == {"influx"}
        assert all("field type conflict" in d.reason for d in letters), letters[0].reason
        store.close()
    finally:
        thread.stop()


def test_influx_down_30s_nothing_lost_memory_bounded(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher
) -> None:
    cfg = config(mosquitto, influxdb, tmp_path, subscription={"receive_maximum": 300})
    bridge, thread = start_bridge(cfg)
    peak = [0]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            queued: deque[Batch] = bridge._batches._queue  # type: ignore[attr-defined]  # asyncio.Queue's own deque
            pending = len(bridge.consumer.inbox) + sum(len(b.items) for b in list(queued))
            peak[0] = max(peak[0], pending)
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    ts0 = int(time.time() * 1000) - 600_000
    sent = 0
    try:
        for i in range(200):
            publisher.send(topics.telemetry("s1", "wq-1"), encode(wq_message("wq-1", i, ts0 + i * 10, samples=10)))
            sent += 10
        wait_until(lambda: count_points(influxdb) == sent, 10, "before the outage")
        influxdb.stop()
        t_down = time.monotonic()
        i = 200
        while time.monotonic() - t_down < 30:
            publisher.send(topics.telemetry("s1", "wq-1"), encode(wq_message("wq-1", i, ts0 + i * 10, samples=10)))
            sent += 10
            i += 1
            time.sleep(0.01)
        assert bridge.counters.retries > 0
        held_while_down = peak[0]
        influxdb.start()
        wait_until(lambda: count_points(influxdb) == sent, 60, f"all {sent} points after the outage")
        # while InfluxDB was down the bridge held no more than the broker's window toward it (Receive Maximum),
        # and while the backlog drained no more than twice that (its own cap) plus the batches in hand
        assert held_while_down <= 300
        assert peak[0] <= 2 * 300 + 2 * 200, peak[0]
        assert sent > 5000  # and the outage saw far more messages than that window
    finally:
        done.set()
        thread.stop()


def test_kill_9_bridge_loses_nothing(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher
) -> None:
    cfg_path = tmp_path / "bridge.yaml"
    cfg_path.write_text(yaml.safe_dump(config(mosquitto, influxdb, tmp_path).model_dump(mode="json")))

    def spawn() -> subprocess.Popen[bytes]:
        log = (tmp_path / "bridge.log").open("ab")
        return subprocess.Popen(
            [sys.executable, "-m", "lifeline", "bridge", "--config", str(cfg_path)], stdout=log, stderr=log, cwd=ROOT
        )

    proc = spawn()
    ts0 = int(time.time() * 1000) - 600_000
    sent = 0
    try:
        wait_until(lambda: b"bridge connected" in (tmp_path / "bridge.log").read_bytes(), 15, "bridge up")
        for i in range(1500):
            publisher.send(topics.telemetry("s1", "wq-1"), encode(wq_message("wq-1", i, ts0 + i * 10, samples=5)))
            sent += 5
            if i == 700:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
            if i == 1000:
                proc = spawn()
        wait_until(lambda: count_points(influxdb) == sent, 60, f"all {sent} points after kill -9")
        time.sleep(1.0)
        assert count_points(influxdb) == sent  # once each: redelivery overwrote, never duplicated
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(15)


def test_v2_transport_through_a_2x_compatible_endpoint(
    mosquitto: Mosquitto, influxdb: Influxd, influx_compat: InfluxCompatProxy, tmp_path: Path, publisher: Publisher
) -> None:
    cfg = config(
        mosquitto,
        influxdb,
        tmp_path,
        influx={
            "transport": "v2",
            "url": influx_compat.url,
            "org": "baoshan",
            "bucket": "lifeline/autogen",
            "token": "t0ken",
        },
    )
    bridge, thread = start_bridge(cfg)
    try:
        ts0 = int(time.time() * 1000) - 30_000
        for i in range(5):
            publisher.send(topics.telemetry("s1", "wq-2"), encode(wq_message("wq-2", i, ts0 + i * 100, samples=2)))
        wait_until(lambda: count_points(influxdb) == 10, 15, "10 points through the 2.x endpoint")
        rows = influx_query(influxdb, 'SELECT "ph" FROM "water_quality"')
        assert [r["time"] for r in rows] == sorted(ts0 + i * 100 + j for i in range(5) for j in range(2))
        wait_until(lambda: bridge.counters.written_points == 10, 5, "10 points counted")
    finally:
        thread.stop()


def test_deadletter_cli_lists_shows_and_replays(
    mosquitto: Mosquitto, influxdb: Influxd, tmp_path: Path, publisher: Publisher, capsys: pytest.CaptureFixture[str]
) -> None:
    from lifeline.cli import main

    cfg = config(mosquitto, influxdb, tmp_path)
    cfg_path = tmp_path / "bridge.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    bridge, thread = start_bridge(cfg)
    try:
        now = int(time.time() * 1000)
        future = encode(wq_message("wq-3", 1, now + 3_600_000))  # an edge clock an hour ahead
        publisher.send(topics.telemetry("s1", "wq-3"), future)
        wait_until(lambda: bridge.counters.dead_lettered == 1, 10, "dead-lettered")
        assert main(["deadletter", "--config", str(cfg_path), "list"]) == 0
        out = capsys.readouterr().out
        assert "1 dead letter(s)" in out
        assert "lifeline/v1/s1/wq-3/telemetry" in out
        assert "in the future" in out
        letter_id = int(out.splitlines()[1].split()[0])
        assert main(["deadletter", "--config", str(cfg_path), "show", str(letter_id)]) == 0
        shown = capsys.readouterr().out
        assert future.decode() in shown
        # the operator fixes the cause (here: allows two hours ahead) and replays
        thread.stop()
        relaxed = config(mosquitto, influxdb, tmp_path, validation={"max_future_s": 7200})
        bridge, thread = start_bridge(relaxed)
        mosquitto.add(replay_account())  # replayed as its own account: the bridge's publisher sends only `stored`
        assert main(["deadletter", "--config", str(cfg_path), "replay"]) == 0
        assert "replayed 1 dead letter(s)" in capsys.readouterr().out
        wait_until(lambda: count_points(influxdb) == 1, 10, "replayed reading stored")
        assert main(["deadletter", "--config", str(cfg_path), "list", "--pending"]) == 0
        assert "lifeline/v1/s1/wq-3" not in capsys.readouterr().out.split("\n", 1)[1]
    finally:
        thread.stop()
