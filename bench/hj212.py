"""``lifeline bench hj212``: packets/s one HJ 212 ingest process parses, answers and forwards with 500 connected
stations, and how long the answers take.

Loopback only. A Mosquitto of the benchmark's own; the ingest server (``lifeline hj212``) in a child process, so
its CPU is its own; the stations in this process: one asyncio connection each, sending CEMS real-time packets
(CN 2011, nine values) with the A bit set and waiting for the 9014 answer. The server answers only after the
broker acknowledged the telemetry (QoS 1), so every answered packet was parsed, mapped and forwarded.

Two phases, each ``--seconds`` long after every station connected:
- paced: each station sends one packet per ``--interval-s`` (default 1 s: 500 packets/s for 500 stations):
  ``p99_answer_ms`` is the p99 of write-to-answer time at that load;
- flat out: each station sends its next packet as soon as the last is answered: ``packets_per_s`` is the most
  one ingest process forwards; ``p99_answer_ms_saturated`` its answer time then.
On a 2-core machine the stations, the broker and the server share the cores: the figure is for the whole chain;
the CPU share of each and the machine's load average are printed with it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench._broker import closed_broker, service_broker
from bench._figures import figure, write_json
from edge_agent.hj212.framing import encode_frame
from edge_agent.hj212.segment import build_segment
from lifeline.broker_auth import hj212_account
from testing import Mosquitto, free_port, wait_for_port

PASSWORD = "bench1"
SITE = "bench"
PACKETS_PER_STATION = 20  # distinct prebuilt packets each station cycles through


def _packets(mn: str, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        t = time.gmtime(1_796_000_000 + i * 30)
        cp = f"DataTime={time.strftime('%Y%m%d%H%M%S', t)};" + ";".join(
            f"{code}-Rtd={value + i % 7 / 10:.2f},{code}-Flag=N"
            for code, value in (
                ("a21026", 18.2),
                ("a21002", 30.1),
                ("a34013", 3.1),
                ("a19001", 8.2),
                ("a00000", 199.3),
                ("a01012", 111.7),
                ("a01014", 10.4),
                ("a01013", -0.6),
                ("a01011", 9.1),
            )
        )
        qn = time.strftime("%Y%m%d%H%M%S", t) + f"{i % 1000:03d}"
        out.append(encode_frame(build_segment(qn=qn, st="31", cn="2011", pw=PASSWORD, mn=mn, flag=5, cp=cp)))
    return out


class _Station(asyncio.Protocol):
    """One station: one packet outstanding at a time; every CR LF that arrives is the answer to it."""

    def __init__(self, packets: list[bytes], bench: _Load) -> None:
        self.packets, self.bench = packets, bench
        self.transport: asyncio.Transport | None = None
        self.i = 0
        self.sent_at: float | None = None
        self.connected = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.connected.set_result(None)

    def send(self) -> None:
        if self.sent_at is not None or self.transport is None or self.transport.is_closing():
            return
        self.sent_at = time.perf_counter()
        self.transport.write(self.packets[self.i % len(self.packets)])
        self.i += 1

    def data_received(self, data: bytes) -> None:
        for _ in range(data.count(b"\r\n")):
            if self.sent_at is None:
                continue
            self.bench.answered(time.perf_counter() - self.sent_at)
            self.sent_at = None
            if self.bench.flat_out:
                self.send()

    def connection_lost(self, exc: Exception | None) -> None:
        self.bench.lost += 1


class _Load:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.flat_out = False
        self.recording = False
        self.count = 0
        self.lost = 0

    def answered(self, seconds: float) -> None:
        if self.recording:
            self.count += 1
            self.latencies.append(seconds * 1000)


def _config(folder: Path, stations: int, broker: Mosquitto, port: int) -> Path:
    mns = [f"BENCH{i:06d}" for i in range(stations)]
    pw = folder / "passwords.yaml"
    pw.write_text(yaml.safe_dump(dict.fromkeys(mns, PASSWORD)))
    pw.chmod(0o600)
    config = {
        "listen": {"host": "127.0.0.1", "port": port},
        "broker": service_broker(folder, broker, "hj212"),
        "client_id": "hj212",
        "publish": {"max_inflight": 1000},
        "passwords_file": str(pw),
        "stations": [
            # o2_ref as a real source has one (a coal-fired boiler, 6 %): the O2-corrected values are computed
            {
                "mn": mn,
                "site": SITE,
                "device": f"cems-{i:04d}",
                "profile": "flue_gas_cems_hj212",
                "tags": {"o2_ref": "6"},
            }
            for i, mn in enumerate(mns)
        ],
    }
    path = folder / "hj212.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _threads_cpu_s(pid: int) -> float:
    """CPU seconds of the process's threads other than the main one (the ingest: paho's network thread)."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        if task.name != str(pid):
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _p99(values: list[float]) -> float | None:
    if len(values) < 2:
        return None
    return round(statistics.quantiles(values, n=100)[98], 2)


@dataclass
class _Server:
    """One server under test in the sitting: its stations' connections and what its flat-out rounds counted."""

    name: str
    pid: int
    broker_pid: int | None
    load: _Load = field(default_factory=_Load)
    protocols: list[_Station] = field(default_factory=list)
    count: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    threads: float = 0.0
    broker_cpu: float = 0.0
    load_cpu: float = 0.0
    saturated: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)  # packets/s of each round
    paced: dict[str, Any] = field(default_factory=dict)


async def _connect(server: _Server, stations: int, port: int) -> None:
    loop = asyncio.get_running_loop()
    for i in range(stations):
        proto = _Station(_packets(f"BENCH{i:06d}", PACKETS_PER_STATION), server.load)
        await loop.create_connection(lambda p=proto: p, "127.0.0.1", port)  # type: ignore[misc]
        server.protocols.append(proto)
    await asyncio.gather(*(p.connected for p in server.protocols))
    for p in server.protocols:  # warm-up: one answered packet each
        p.send()


async def _paced(server: _Server, seconds: float, interval_s: float) -> None:
    loop = asyncio.get_running_loop()
    load, protocols = server.load, server.protocols
    load.recording, load.count, load.latencies = True, 0, []
    start = time.perf_counter()
    ticks = 0
    while time.perf_counter() - start < seconds:
        for k, p in enumerate(protocols):  # spread over the interval, as real stations are
            loop.call_later(interval_s * k / len(protocols), p.send)
        ticks += 1
        await asyncio.sleep(interval_s)
    await asyncio.sleep(min(1.0, interval_s))  # the last answers
    server.paced = {
        "p50_answer_ms": round(statistics.median(load.latencies), 2) if load.latencies else None,
        "p99_answer_ms": _p99(load.latencies),
        "paced_packets_per_s": round(load.count / (ticks * interval_s), 1),
    }


async def _flat(server: _Server, seconds: float) -> None:
    """One flat-out round: each station sends its next packet on the answer; then the last answers are awaited."""
    load, pid, broker_pid = server.load, server.pid, server.broker_pid
    load.count, load.latencies, load.flat_out = 0, [], True
    broker0 = _cpu_s(broker_pid) if broker_pid is not None else 0.0
    cpu0, threads0, load0, t0 = _cpu_s(pid), _threads_cpu_s(pid), time.process_time(), time.perf_counter()
    for p in server.protocols:
        p.send()
    await asyncio.sleep(seconds)
    wall = time.perf_counter() - t0
    server.cpu += _cpu_s(pid) - cpu0
    server.threads += _threads_cpu_s(pid) - threads0
    server.broker_cpu += _cpu_s(broker_pid) - broker0 if broker_pid is not None else 0.0
    server.load_cpu += time.process_time() - load0
    server.count += load.count
    server.wall += wall
    server.saturated += load.latencies
    server.rounds.append(round(load.count / wall, 1))
    load.flat_out = False
    deadline = time.perf_counter() + 10
    while any(p.sent_at is not None for p in server.protocols) and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)  # the other server's round starts on a quiet one


def _figures(server: _Server, stations: int) -> dict[str, Any]:
    n, wall = server.count, server.wall
    return {
        "stations": stations,
        "packets_per_s": round(n / wall, 1) if wall else None,
        "packets_per_s_by_round": server.rounds,
        **server.paced,
        "p99_answer_ms_saturated": _p99(server.saturated),
        "server_cpu_us_per_packet": round(server.cpu / n * 1e6, 1) if n else None,
        "server_other_threads_cpu_us_per_packet": round(server.threads / n * 1e6, 1) if n else None,
        "server_cpu_percent": round(100 * server.cpu / wall, 1) if wall else None,
        "broker_cpu_percent": round(100 * server.broker_cpu / wall, 1) if wall else None,
        "stations_cpu_percent": round(100 * server.load_cpu / wall, 1) if wall else None,
        "connections_lost": server.load.lost,
    }


async def _sitting(args: argparse.Namespace, servers: list[tuple[_Server, int]]) -> dict[str, Any]:
    """Every server's stations connected at once; paced phases, then flat-out rounds taking turns (so a change in
    the machine's other load falls on both alike); the figures of each."""
    for server, port in servers:
        await _connect(server, args.stations, port)
    await asyncio.sleep(2.0)
    for server, _ in servers:
        await _paced(server, args.seconds, args.interval_s)
    loads = []
    for _ in range(args.rounds):
        for server, _ in servers:
            await _flat(server, args.seconds / args.rounds)
        loads.append(os.getloadavg()[0])
    out: dict[str, Any] = {server.name: _figures(server, args.stations) for server, _ in servers}
    out["load_average_1m"] = round(statistics.mean(loads), 2)
    for server, _ in servers:
        for p in server.protocols:
            if p.transport is not None:
                p.transport.close()
    await asyncio.sleep(0.2)
    return out


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _start(argv: list[str], port: int, what: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(argv)
    if not wait_for_port("127.0.0.1", port, 20.0, proc):
        _stop(proc)
        raise SystemExit(f"the {what} did not start")
    return proc


def run(args: argparse.Namespace) -> int:
    """Lifeline's ingest and the minimal reference under one station simulator, in one sitting; the ratio."""
    procs: list[subprocess.Popen[bytes]] = []
    with (
        tempfile.TemporaryDirectory(prefix="lifeline-bench-hj212-") as tmp,
        closed_broker(Path(tmp), [hj212_account([SITE])]) as broker,
    ):
        try:
            port = free_port()
            config = _config(Path(tmp), args.stations, broker, port)
            argv = [sys.executable, "-m", "lifeline", "--log-level", "WARNING", "hj212", "--config", str(config)]
            procs.append(_start(argv, port, "hj212 server"))
            assert broker.proc is not None
            servers = [(_Server("lifeline", procs[0].pid, broker.proc.pid), port)]
            if not args.no_reference:
                ref_port = free_port()
                procs.append(
                    _start([sys.executable, "-m", "bench._reference_hj212", str(ref_port)], ref_port, "reference")
                )
                servers.append((_Server("reference", procs[1].pid, None), ref_port))
            result = asyncio.run(_sitting(args, servers))
        finally:
            for proc in procs:
                _stop(proc)
    result["cores"] = os.cpu_count()
    ours, reference = result["lifeline"], result.get("reference")
    if reference and reference["packets_per_s"] and ours["packets_per_s"]:
        result["ratio_packets_per_s"] = round(ours["packets_per_s"] / reference["packets_per_s"], 3)
        result["ratio_by_round"] = [
            round(a / b, 3)
            for a, b in zip(ours["packets_per_s_by_round"], reference["packets_per_s_by_round"], strict=True)
            if b
        ]
    write_json(args.json, "hj212", result)
    for who in ("lifeline", "reference"):
        for key, value in (result.get(who) or {}).items():
            figure(f"{who + ' ' + key:48} {value}")
    for key in ("load_average_1m", "ratio_by_round", "ratio_packets_per_s"):
        if key in result:
            figure(f"{key:48} {result[key]}")
    return 0
