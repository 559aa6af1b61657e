"""``lifeline bench district``: the whole chain of ``lifeline up`` loaded as a full-size Baoshan, then k of them.

The chain is ``lifeline up``'s own (lifeline/up.py, not a second deployment): its closed Mosquitto (TLS, an account
per client), InfluxDB with authentication, the bridge, the rules engine with the shipped packs and an SQLite alert
store, the API, the simulated Baoshan scenario's edge agents (its Modbus gates and stations, polled) and its HJ 212
ingest with the scenario's stations. Two things differ, both in the deployment file ``lifeline up`` reads, never in
its code: the alert flood limit is lifted (every probe is a new alert of the same audience; past 10 in 10 minutes an
operator gets a flood summary instead, which is right for a city and wrong for a latency figure), and the broker
knows the bench's accounts (``bench-listen``, ``bench-load-<n>``): one a connection, as the broker takes a client's
id from its user name.

The load: per district (k = 1, 2, 4, 8, 16 ... districts), what the district's gateways and its HJ 212 ingest
publish, at their real rates: 1,000 enterprises with 10 detectors each (6 gas, 4 fire) every 10 s, 100 water-quality
stations every 5 s, 500 HJ 212 sources' real-time data every 30 s. It is published as the edge agents and the ingest
publish it (``telemetry.codec.encode_telemetry``, the edge's own encoder, QoS 1, per-device ``seq``), from one
process of the benchmark's own, so the load needs neither 1,000 agents nor 16,000 Modbus servers: what an edge agent
and the ingest can carry is ``lifeline bench edge`` and ``lifeline bench hj212``; this bench is the centre, with the
real edges and ingest of one Baoshan running beside it. Every synthetic device is in a site file the bridge
validates against (grouped in parks of 100 enterprises, one gateway each), so nothing is dead-lettered for being
unknown.

Per k, a bounded step (``--step-seconds``, 60 by default; ``--quick``: 20):
- sample-to-stored: every message of the load, from its sample time to the bridge's ``stored`` acknowledgement that
  covers its ``seq`` (InfluxDB accepted it); a message never acknowledged is lost;
- sample-to-notification: probes, gas detectors of the probe site jumping to 60 %LEL (the gas pack's critical level,
  no delay), every ``--probe-interval`` s, from the sample time to the notification on the MQTT channel;
- CPU (share of one core) and peak memory of each service process (/proc), the load generator's CPU, the
  bridge's dead letters, the load average.
The largest k whose probes' p99 sample-to-notification is under 1 s with nothing lost is the figure. Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import json
import multiprocessing
import os
import signal
import sqlite3
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import yaml

from bench._figures import cores, figure, write_json

LISTENER = "bench-listen"  # the bench's accounts: the listener's, and bench-load-<n> a publishing connection
PARK = 100  # enterprises a park (one gateway, one site)
DETECTORS = 10  # per enterprise: 6 gas, 4 fire
GAS = 6
ENTERPRISES = 1000
STATIONS = 100
SOURCES = 500
DETECTOR_S = 10.0
STATION_S = 5.0
SOURCE_S = 30.0
MINUTE_S = 600.0
HOUR_S = 3600.0
PROBE_SITE = "bench-probes"
PROBES_MAX = 4000
DRAIN_S = 60.0  # after a step, how long the backlog may take before what is missing counts as lost
WQ = {
    "ph": 7.3,
    "do": 7.5,
    "codmn": 3.1,
    "cod": 12.0,
    "nh3_n": 0.3,
    "tp": 0.08,
    "tn": 0.9,
    "turbidity": 8.0,
    "conductivity": 420.0,
    "water_temp": 18.5,
}


# --- the synthetic district's devices ------------------------------------------------------------------------------


def _parks(k: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """(site, [(device, profile)]) of k districts: enterprise parks, water stations, HJ 212 sources."""
    out: list[tuple[str, list[tuple[str, str]]]] = []
    for d in range(k):
        for p in range(ENTERPRISES // PARK):
            devices = [
                (f"e{e:03d}-{'gas' if j < GAS else 'fire'}-{j}", "gas_detector" if j < GAS else "fire_detector")
                for e in range(p * PARK, (p + 1) * PARK)
                for j in range(DETECTORS)
            ]
            out.append((f"bench-d{d:02d}-park{p}", devices))
        out.append((f"bench-d{d:02d}-water", [(f"wq-{i:03d}", "water_quality_station") for i in range(STATIONS)]))
        out.append((f"bench-d{d:02d}-sources", [(f"src-{i:03d}", "wastewater_outlet_hj212") for i in range(SOURCES)]))
    return out


def _write_sites(folder: Path, k: int) -> None:
    """Site files for the bridge's validation (the devices it knows): k districts' and the probe site."""
    folder.mkdir(parents=True, exist_ok=True)
    sites = [*_parks(k), (PROBE_SITE, [(f"probe-{i:05d}", "gas_detector") for i in range(PROBES_MAX)])]
    for site, devices in sites:
        # no agent polls these (the load plays their gateways): a Modbus station's address is only a placeholder
        modbus = {"host": "127.0.0.1", "port": 502}
        body = {
            "site": site,
            "devices": [
                {"id": dev, "profile": prof, **(modbus if prof == "water_quality_station" else {})}
                for dev, prof in devices
            ],
        }
        (folder / f"{site}.yaml").write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")


# --- processes and /proc -------------------------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _cpu_rss(pid: int) -> tuple[float, int] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK, int(fields[21]) * _PAGE


def _service_name(pid: int) -> str | None:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    words = [a.decode(errors="replace") for a in argv if a]
    if not words:
        return None
    base = Path(words[0]).name
    if base in ("mosquitto", "influxd"):
        return base
    if "lifeline" in words and words.index("lifeline") + 1 < len(words):
        what = words[words.index("lifeline") + 1]
        if what == "edge":
            return "edge agents"
        return what
    return None


def _children(root: int) -> dict[int, str]:
    """Every descendant of ``root`` that is a service, by pid."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        by_parent.setdefault(ppid, []).append(int(entry.name))
    out: dict[int, str] = {}
    todo = [root]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            todo.append(child)
            name = _service_name(child)
            if name is not None:
                out[child] = name
    return out


class Usage:
    """CPU seconds and peak RSS of each service (summed over its processes) between ``start`` and ``stop``."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.pids = _children(root) | {root: "lifeline up (simulated district)"}
        self.base: dict[int, float] = {}
        self.peak: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self.base = {pid: u[0] for pid in self.pids if (u := _cpu_rss(pid)) is not None}
        self.started = time.monotonic()
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            rss: dict[str, int] = {}
            for pid, name in self.pids.items():
                u = _cpu_rss(pid)
                if u is not None:
                    rss[name] = rss.get(name, 0) + u[1]
            for name, value in rss.items():
                self.peak[name] = max(self.peak.get(name, 0), value)

    def stop(self) -> dict[str, dict[str, float]]:
        self._stop.set()
        self._thread.join()
        took = time.monotonic() - self.started
        cpu: dict[str, float] = {}
        for pid, name in self.pids.items():
            u = _cpu_rss(pid)
            if u is not None and pid in self.base:
                cpu[name] = cpu.get(name, 0.0) + u[0] - self.base[pid]
        return {
            name: {
                "cpu_cores": round(cpu.get(name, 0.0) / took, 3),
                "peak_rss_mb": round(self.peak.get(name, 0) / 2**20),
            }
            for name in sorted(set(cpu) | set(self.peak))
        }


# --- the load and the probes (a process of its own) -------------------------------------------------------------


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, int(len(s) * q))], 1)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = n >> 7, n & 0x7F
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(data: bytes) -> bytes:
    return len(data).to_bytes(2, "big") + data


class LeanPublisher:
    """One MQTT 3.1.1 connection that only publishes at QoS 1: packets built here and written in batches, PUBACKs
    counted by a reader thread. paho took about 100 us of the generator's CPU a message (its per-message objects,
    locks and callbacks); the load is the generator's cost, not the chain's, and must stay small beside it."""

    def __init__(self, account: Any, client_id: str, window: int = 2000) -> None:
        import socket
        import ssl

        raw = socket.create_connection((account.host, account.port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock: socket.socket = raw
        if account.tls is not None:
            ctx = ssl.create_default_context(cafile=str(account.tls.ca_file))
            if account.tls.cert_file is not None:
                ctx.load_cert_chain(str(account.tls.cert_file), str(account.tls.key_file))
            sock = ctx.wrap_socket(raw, server_hostname=account.host)
        password = account.password.reveal("bench-load password").encode() if account.password else b""
        flags = 0x02 | (0x80 if account.username else 0) | (0x40 if password else 0)  # clean session
        body = _field(b"MQTT") + bytes([4, flags]) + (600).to_bytes(2, "big") + _field(client_id.encode())
        if account.username:
            body += _field(account.username.encode())
        if password:
            body += _field(password)
        sock.sendall(b"\x10" + _varint(len(body)) + body)
        ack = b""
        while len(ack) < 4:
            got = sock.recv(4 - len(ack))
            if not got:
                raise RuntimeError(f"the broker closed {client_id}'s connection at CONNECT")
            ack += got
        if ack[0] != 0x20 or ack[3] != 0:
            raise RuntimeError(f"the broker refused {client_id}: CONNACK {ack.hex()}")
        sock.settimeout(None)
        self.sock = sock
        self.window = window
        self.sent = 0
        self.acked = 0
        self.next_id = 0
        self.buffer: list[bytes] = []
        self.acks = threading.Condition()
        self.reader = threading.Thread(target=self._read, daemon=True, name=f"{client_id}-acks")
        self.reader.start()

    def _read(self) -> None:
        pending = b""
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            pending += data
            acked = 0
            while len(pending) >= 2:
                size = pending[1]  # PUBACK and PINGRESP: one-byte lengths
                if len(pending) < 2 + size:
                    break
                if pending[0] >> 4 == 4:
                    acked += 1
                pending = pending[2 + size :]
            if acked:
                with self.acks:
                    self.acked += acked
                    self.acks.notify_all()

    def add(self, topic: str, payload: bytes) -> None:
        """Queue one QoS 1 PUBLISH; ``flush`` writes what is queued."""
        self.next_id = self.next_id % 65535 + 1
        t = topic.encode()
        body = _field(t) + self.next_id.to_bytes(2, "big") + payload
        self.buffer.append(b"\x32" + _varint(len(body)) + body)

    def flush(self) -> None:
        if not self.buffer:
            return
        with self.acks:  # never more than the window unacknowledged
            while self.sent + len(self.buffer) - self.acked > self.window:
                self.acks.wait(1.0)
        self.sock.sendall(b"".join(self.buffer))
        self.sent += len(self.buffer)
        self.buffer.clear()

    def ping(self) -> None:
        self.sock.sendall(b"\xc0\x00")

    def close(self) -> None:
        self.flush()
        with self.acks:
            self.acks.wait_for(lambda: self.acked >= self.sent, 10.0)
        with contextlib.suppress(OSError):
            self.sock.sendall(b"\xe0\x00")
            self.sock.close()


class Load:
    """Publishes k districts' telemetry at their rates, probes, and collects acknowledgements and notifications."""

    def __init__(self, listener: dict[str, Any], publishers: list[dict[str, Any]]) -> None:
        from infra.mqtt import BrokerConfig, client
        from telemetry import topics
        from telemetry.codec import encode_telemetry

        self.topics = topics
        self.encode = encode_telemetry  # the edge's own encoder of a one-sample message
        self.account = BrokerConfig.model_validate(listener)
        self.publisher_accounts = [BrokerConfig.model_validate(p) for p in publishers]
        self.lock = threading.Lock()
        self.sent: dict[tuple[str, str], dict[int, int]] = {}  # (site, device) -> seq -> sample ts (ms)
        self.stored_ms: list[float] = []
        self.notified: dict[str, float] = {}
        self.listener = client(self.account, LISTENER)
        self.listener.on_connect = self._subscribe
        self.listener.on_message = self._message
        self.pubs: list[LeanPublisher] = []
        self.ready = threading.Event()

    def connect(self) -> None:
        self.listener.connect(self.account.host, self.account.port)
        self.listener.loop_start()
        self.pubs = [LeanPublisher(a, a.username or "") for a in self.publisher_accounts]
        if not self.ready.wait(30):
            raise RuntimeError("the bench's listener did not subscribe within 30 s")

    def _subscribe(self, c: Any, *args: object) -> None:
        notify = self.topics.alert_notification("safety").rpartition("/")[0] + "/#"  # every audience
        c.subscribe([(self.topics.stored("+"), 1), (notify, 1)])
        self.ready.set()

    def _message(self, c: Any, userdata: object, msg: Any) -> None:
        import orjson

        now = time.time() * 1000
        body = orjson.loads(msg.payload)
        if msg.topic.endswith("/agent/stored"):
            site = body.get("site", "")
            with self.lock:
                for r in body.get("ranges", []):
                    sent = self.sent.get((site, r["device"]))
                    if not sent:
                        continue
                    for seq in range(r["first"], r["last"] + 1):
                        ts = sent.pop(seq, None)
                        if ts is not None:
                            self.stored_ms.append(now - ts)
        elif body.get("kind") == "raised" and str(body.get("device", "")).startswith("probe-"):
            with self.lock:
                self.notified.setdefault(body["device"], now)

    def publish(
        self,
        site: str,
        device: str,
        profile: str,
        measurement: str,
        seq: int,
        ts: int,
        values: dict[str, Any],
        run: str,
    ) -> None:
        payload = self.encode(site, device, profile, measurement, seq, run, {}, {}, ts, values, {})
        with self.lock:
            self.sent.setdefault((site, device), {})[seq] = ts
        # a site's gateway is one connection (its messages stay in order): by the site, not the device
        self.pubs[zlib.crc32(site.encode()) % len(self.pubs)].add(self.topics.telemetry(site, device), payload)

    def flush(self) -> None:
        for pub in self.pubs:
            pub.flush()

    def ping(self) -> None:
        for pub in self.pubs:
            pub.ping()

    def close(self) -> None:
        for pub in self.pubs:
            pub.close()
        self.listener.disconnect()
        self.listener.loop_stop()


_Entry = tuple[float, float, str, str, str, str, dict[str, Any]]


def _schedule(k: int) -> list[_Entry]:
    """(period s, offset s, site, device, profile, measurement, values) of every device of k districts."""
    out = []
    fire = {"fire_alarm": False, "detector_fault": False, "smoke_density": 0.01, "temperature": 22.0}
    for site, devices in _parks(k):
        n = len(devices)
        for i, (dev, prof) in enumerate(devices):
            if prof == "gas_detector":
                out.append(
                    (DETECTOR_S, DETECTOR_S * i / n, site, dev, prof, "gas_safety", {"lel": 0.0, "alarm_level": 0})
                )
            elif prof == "fire_detector":
                out.append((DETECTOR_S, DETECTOR_S * i / n, site, dev, prof, "fire_safety", fire))
            elif prof == "water_quality_station":
                out.append((STATION_S, STATION_S * i / n, site, dev, prof, "water_quality", WQ))
            else:
                out.append((SOURCE_S, SOURCE_S * i / n, site, dev, prof, "wastewater", {"cod": 18.0, "ph": 7.2}))
                # and its minute data (HJ 212 2051, every 10 minutes) and hourly data (2061)
                minute = {"cod_minute_avg": 18.1, "cod_minute_min": 17.2, "cod_minute_max": 19.0}
                out.append((MINUTE_S, MINUTE_S * i / n, site, dev, prof, "wastewater", minute))
                hour = {"cod_hour_avg": 18.0, "cod_hour_min": 16.9, "cod_hour_max": 19.4}
                out.append((HOUR_S, HOUR_S * i / n, site, dev, prof, "wastewater", hour))
    return out


def _offer(
    load: Load, plan: list[_Entry], seconds: float, probe_s: float, first_probe: int, run: str
) -> tuple[int, int, dict[str, float]]:
    """Publish ``plan`` at its rates for ``seconds``, a probe every ``probe_s``: (messages, readings, probes)."""
    seqs: dict[tuple[str, str], int] = {}  # one counter a device, whatever it sends
    heap = [(offset, i) for i, (_, offset, *_) in enumerate(plan)]
    heapq.heapify(heap)
    t0 = time.time()
    sent = readings = 0
    probes: dict[str, float] = {}
    next_probe, next_ping = 1.0, 60.0
    while (now := time.time() - t0) < seconds:
        while heap and heap[0][0] <= now:
            at, i = heapq.heappop(heap)
            period, _, site, dev, prof, meas, values = plan[i]
            seq = seqs[site, dev] = seqs.get((site, dev), 0) + 1
            readings += len(values)
            load.publish(site, dev, prof, meas, seq, int((t0 + at) * 1000), values, run)
            sent += 1
            heapq.heappush(heap, (at + period, i))
        if now >= next_probe:
            next_probe += probe_s
            dev = f"probe-{first_probe + len(probes):05d}"
            ts = int(time.time() * 1000)
            probes[dev] = ts
            load.publish(PROBE_SITE, dev, "gas_detector", "gas_safety", 1, ts, {"lel": 60.0, "alarm_level": 2}, run)
        load.flush()  # what fell due this tick, one write a connection
        if now >= next_ping:
            next_ping += 60.0
            load.ping()
        wait = min(heap[0][0] if heap else seconds, next_probe) - (time.time() - t0)
        if wait > 0:
            time.sleep(min(wait, 0.01))
    return sent, readings, probes


def _step(load: Load, k: int, seconds: float, probe_s: float, first_probe: int, root: int) -> dict[str, Any]:
    """One k for ``seconds``; then up to ``DRAIN_S`` for the acknowledgements and notifications on their way."""
    plan = sorted(_schedule(k), key=lambda d: d[1])
    with load.lock:
        load.sent.clear()
        load.stored_ms.clear()
        load.notified.clear()
    data = Path(os.environ["LIFELINE_BENCH_DATA"])
    bridge_dl, hj212_dl = data / "bridge" / "deadletter.sqlite", data / "hj212" / "deadletter.sqlite"
    dead0, hj0 = _dead_letters(bridge_dl), _dead_letters(hj212_dl)
    usage = Usage(root)
    usage.start()
    me0 = _cpu_rss(os.getpid())
    t0 = time.time()
    sent, readings, probes = _offer(load, plan, seconds, probe_s, first_probe, f"bench-k{k}")  # a run id a step
    gen_cpu = (_cpu_rss(os.getpid()) or (0.0, 0))[0] - (me0 or (0.0, 0))[0]
    took = time.time() - t0
    usage_out = usage.stop()
    drained_s = _drain(load, probes, DRAIN_S)
    with load.lock:
        stored = list(load.stored_ms)
        lost = sum(len(s) for s in load.sent.values())
        notified = {d: load.notified[d] - ts for d, ts in probes.items() if d in load.notified}
    lat = list(notified.values())
    return {
        "k": k,
        "seconds": round(took, 1),
        "messages": sent,
        "messages_per_s": round(sent / took),
        "readings_per_s": round(readings / took),
        "drained_s": drained_s,
        "devices": len({(site, dev) for _, _, site, dev, *_ in plan}),
        "stored_p50_ms": _pct(stored, 0.5),
        "stored_p99_ms": _pct(stored, 0.99),
        "not_stored": lost,
        "probes": len(probes),
        "notified": len(lat),
        "notify_p50_ms": _pct(lat, 0.5),
        "notify_p99_ms": _pct(lat, 0.99),
        "dead_letters": _dead_letters(bridge_dl) - dead0,  # the bridge's: the load's messages it refused
        "hj212_dead_letters": _dead_letters(hj212_dl) - hj0,  # the ingest's: the scenario's own stations
        "generator_cpu_cores": round(gen_cpu / took, 3),
        "services": usage_out,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _drain(load: Load, probes: dict[str, float], timeout_s: float) -> float | None:
    """Seconds after the step until every message was acknowledged as stored and every probe notified; None: not
    within ``timeout_s`` (what is still missing then counts as lost)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        with load.lock:
            pending = any(load.sent.values())
            missing = any(d not in load.notified for d in probes)
        if not pending and not missing:
            return round(time.monotonic() - started, 1)
        time.sleep(0.1)
    return None


def _dead_letters(store: Path) -> int:
    """Letters in a dead-letter store (infra.deadletter's table), 0 if there is none yet."""
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT count(*) FROM dead_letters").fetchone()[0])
    except sqlite3.Error:
        return 0


def _drive(conf: dict[str, Any]) -> None:
    """The benchmark's own process: wait for the chain, run the steps, write the figures, then stop ``lifeline up``."""
    os.environ["LIFELINE_BENCH_DATA"] = conf["data_dir"]
    root = conf["root"]
    results: list[dict[str, Any]] = []
    error = ""
    try:
        from lifeline.runners import wait_for_port

        if not wait_for_port("127.0.0.1", conf["api_port"], 180):
            raise RuntimeError("the API did not listen within 180 s")
        time.sleep(conf["settle_s"])  # the agents, the ingest and the engines connect
        data = Path(conf["data_dir"])
        load = Load(
            _bench_broker(data, LISTENER), [_bench_broker(data, _publisher(i)) for i in range(conf["publishers"])]
        )
        load.connect()
        first_probe = 0
        k = 1
        while k <= conf["max_k"]:
            r = _step(load, k, conf["step_s"], conf["probe_s"], first_probe, root)
            first_probe += r["probes"]
            results.append(r)
            Path(conf["out"]).write_text(json.dumps({"results": results, "error": ""}))  # kept if up is stopped
            print(_line(r), flush=True)
            if not _passed(r) and not conf["keep_going"]:
                break
            k *= 2
        load.close()
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which prints it
        error = f"{type(exc).__name__}: {exc}"
    Path(conf["out"]).write_text(json.dumps({"results": results, "error": error}))
    os.kill(root, signal.SIGTERM)  # lifeline up stops as on Ctrl-C


def _passed(r: dict[str, Any]) -> bool:
    """p99 sample-to-notification under 1 s, every message stored, nothing dead-lettered, every probe notified."""
    p99 = r["notify_p99_ms"]
    lost = r["not_stored"] or r["dead_letters"] or r["notified"] != r["probes"]
    return p99 is not None and p99 < 1000 and not lost


def _line(r: dict[str, Any]) -> str:
    return (
        f"k={r['k']:<3} {r['devices']:>7} devices {r['messages_per_s']:>6} msg/s  "
        f"stored p50/p99 {r['stored_p50_ms']}/{r['stored_p99_ms']} ms  "
        f"notified p50/p99 {r['notify_p50_ms']}/{r['notify_p99_ms']} ms ({r['notified']}/{r['probes']})  "
        f"lost {r['not_stored']} dead-lettered {r['dead_letters']} (backlog drained in {r['drained_s']} s; "
        f"HJ 212 ingest dead-lettered {r['hj212_dead_letters']} of the scenario's stations)  "
        f"generator {r['generator_cpu_cores']} cores  "
        f"load {' '.join(str(x) for x in r['load_average'])}  {cores()}"
    )


# --- lifeline up ---------------------------------------------------------------------------------------------------


def _publisher(i: int) -> str:
    return f"bench-load-{i}"


def _bench_broker(data_dir: Path, username: str) -> dict[str, Any]:
    """The broker as the API's config names it (host, port, TLS), as the bench-only account ``username``."""
    from infra.mqtt import BrokerConfig
    from lifeline.broker_auth import credential

    api = yaml.safe_load((data_dir / "api.yaml").read_text(encoding="utf-8"))["broker"]
    tls = api.get("tls")
    base = BrokerConfig.model_validate(
        {
            "host": api.get("host", "127.0.0.1"),
            "port": api["port"],
            **({"tls": {"ca_file": tls["ca_file"]}} if tls else {}),
        }
    )
    return credential(data_dir / "credentials", username, base).model_dump(mode="json")


def run(args: argparse.Namespace) -> int:
    from lifeline import up
    from lifeline.broker_auth import Account
    from lifeline.runners import free_port
    from testing.accounts import open_account

    step_s = 20.0 if args.quick else args.step_seconds
    max_k = min(args.max_k, 2) if args.quick else args.max_k
    print(f"lifeline bench district: {cores()}, load average {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="lifeline-bench-district-") as tmp:
        data_dir = Path(args.data_dir or tmp).resolve()  # given: kept, with every service's log
        deploy = data_dir / "deploy.yaml"
        deploy.write_text(
            yaml.safe_dump(
                {
                    "data_dir": str(data_dir),
                    "alerts": {
                        "store_url": f"sqlite:///{data_dir / 'alerts.db'}",
                        "policy": {"flood": {"max_new": 1_000_000}},
                        "notify": {"channels": {"bus": {"type": "mqtt"}}, "routes": [{"channels": ["bus"]}]},
                    },
                }
            ),
            encoding="utf-8",
        )
        _write_sites(data_dir / "sites", max_k)
        # the broker's accounts are the deployment's and the bench's (lifeline up takes them from here); the broker
        # takes a client's id from its user name, so one account a connection: the listener's, each publisher's
        bench: list[Account] = [open_account(n) for n in (LISTENER, *(_publisher(i) for i in range(args.publishers)))]
        platform_accounts = up.platform_accounts  # type: ignore[attr-defined]
        up.platform_accounts = lambda d: [*platform_accounts(d), *bench]  # type: ignore[attr-defined]
        api_port = free_port()
        out = data_dir / "bench.json"
        conf = {
            "root": os.getpid(),
            "data_dir": str(data_dir),
            "api_port": api_port,
            "publishers": args.publishers,
            "max_k": max_k,
            "keep_going": args.keep_going,
            "step_s": step_s,
            "probe_s": args.probe_interval,
            "settle_s": 10.0 if args.quick else 20.0,
            "out": str(out),
        }
        driver = multiprocessing.get_context("spawn").Process(target=_drive, args=(conf,), daemon=True)
        driver.start()
        bound = 300 + (step_s + DRAIN_S + 30) * max_k.bit_length()  # start, then each step, its drain and figures
        up_args = argparse.Namespace(
            config=str(deploy),
            scenario=None,
            data_dir=None,
            mqtt_port=free_port(),
            influx_port=free_port(),
            api_port=api_port,
            duration=bound,
            configs_only=False,
        )
        try:
            code = up.up(up_args)  # returns when the driver is done (it sends SIGTERM, as Ctrl-C) or at the bound
        finally:
            up.platform_accounts = platform_accounts  # type: ignore[attr-defined]
            driver.join(30)
        done: dict[str, Any] = (
            json.loads(out.read_text()) if out.exists() else {"results": [], "error": f"lifeline up exited {code}"}
        )
        if done["error"]:  # the services' last words, before their folder goes
            for log in sorted((data_dir / "logs").glob("*.log")):
                tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-6:]
                print(f"--- {log.name}\n" + "\n".join(tail))
    results: list[dict[str, Any]] = list(done["results"])
    largest = max((r["k"] for r in results if _passed(r)), default=0)
    write_json(args.json, "district", {"largest_k": largest, "steps": results, "error": done["error"] or None})
    if done["error"]:
        print(f"stopped: {done['error']}")
    for r in results:
        for name, u in r["services"].items():
            figure(f"  k={r['k']:<3} {name:<34} cpu {u['cpu_cores']:>6} cores  peak {u['peak_rss_mb']:>5} MB")
    figure(f"largest k with p99 sample-to-notification under 1 s and nothing lost: {largest} (goal 16)")
    return 0 if results else 1
