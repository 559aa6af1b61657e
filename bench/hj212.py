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


async def _drive(
    stations: int, port: int, seconds: float, interval_s: float, pid: int, broker_pid: int | None
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    load = _Load()
    protocols: list[_Station] = []
    for i in range(stations):
        proto = _Station(_packets(f"BENCH{i:06d}", PACKETS_PER_STATION), load)
        await loop.create_connection(lambda p=proto: p, "127.0.0.1", port)  # type: ignore[misc]
        protocols.append(proto)
    await asyncio.gather(*(p.connected for p in protocols))
    # warm-up: one answered packet each
    load.flat_out = False
    for p in protocols:
        p.send()
    await asyncio.sleep(2.0)
    # paced phase
    load.recording, load.count, load.latencies = True, 0, []
    start = time.perf_counter()
    ticks = 0
    while time.perf_counter() - start < seconds:
        for k, p in enumerate(protocols):  # spread over the interval, as real stations are
            loop.call_later(interval_s * k / stations, p.send)
        ticks += 1
        await asyncio.sleep(interval_s)
    paced_count, paced_p99 = load.count, _p99(load.latencies)
    paced_p50 = round(statistics.median(load.latencies), 2) if load.latencies else None
    await asyncio.sleep(1.0)
    # flat-out phase
    load.count, load.latencies, load.flat_out = 0, [], True
    broker0 = _cpu_s(broker_pid) if broker_pid is not None else 0.0
    cpu0, threads0, load0, t0 = _cpu_s(pid), _threads_cpu_s(pid), time.process_time(), time.perf_counter()
    for p in protocols:
        p.send()
    await asyncio.sleep(seconds)
    wall, cpu, threads = time.perf_counter() - t0, _cpu_s(pid) - cpu0, _threads_cpu_s(pid) - threads0
    broker_cpu = _cpu_s(broker_pid) - broker0 if broker_pid is not None else 0.0
    load_cpu = time.process_time() - load0
    flat_count, flat_lat = load.count, list(load.latencies)
    load.flat_out = False
    for p in protocols:
        assert p.transport is not None
        p.transport.close()
    await asyncio.sleep(0.2)
    return {
        "stations": stations,
        "packets_per_s": round(flat_count / wall, 1),
        "p99_answer_ms": paced_p99,
        "p50_answer_ms": paced_p50,
        "paced_packets_per_s": round(paced_count / (ticks * interval_s), 1),
        "p99_answer_ms_saturated": _p99(flat_lat),
        "server_cpu_us_per_packet": round(cpu / flat_count * 1e6, 1) if flat_count else None,
        "server_other_threads_cpu_us_per_packet": round(threads / flat_count * 1e6, 1) if flat_count else None,
        "server_cpu_percent": round(100 * cpu / wall, 1),
        "broker_cpu_percent": round(100 * broker_cpu / wall, 1),
        "stations_cpu_percent": round(100 * load_cpu / wall, 1),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "connections_lost": load.lost - stations,
        "cores": os.cpu_count(),
    }


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _ours(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="lifeline-bench-hj212-") as tmp,
        closed_broker(Path(tmp), [hj212_account([SITE])]) as broker,
    ):
        port = free_port()
        config = _config(Path(tmp), args.stations, broker, port)
        server = subprocess.Popen(
            [sys.executable, "-m", "lifeline", "--log-level", "WARNING", "hj212", "--config", str(config)]
        )
        try:
            if not wait_for_port("127.0.0.1", port, 20.0, server):
                raise SystemExit("the hj212 server did not start")
            assert broker.proc is not None
            return asyncio.run(_drive(args.stations, port, args.seconds, args.interval_s, server.pid, broker.proc.pid))
        finally:
            _stop(server)


def _reference(args: argparse.Namespace) -> dict[str, Any]:
    """The minimal reference server (bench._reference_hj212: parse, CRC, answer; no broker) under the same load."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "bench._reference_hj212", str(port)])
    try:
        if not wait_for_port("127.0.0.1", port, 20.0, server):
            raise SystemExit("the reference server did not start")
        return asyncio.run(_drive(args.stations, port, args.seconds, args.interval_s, server.pid, None))
    finally:
        _stop(server)


def run(args: argparse.Namespace) -> int:
    """Lifeline's ingest, then the reference under the same station simulator, in the same sitting; the ratio."""
    ours = _ours(args)
    reference = None if args.no_reference else _reference(args)
    result: dict[str, Any] = {"lifeline": ours, "reference": reference, "cores": os.cpu_count()}
    if reference is not None and reference["packets_per_s"]:
        result["ratio_packets_per_s"] = round(ours["packets_per_s"] / reference["packets_per_s"], 3)
    write_json(args.json, "hj212", result)
    for who, figures in (("lifeline", ours), ("reference", reference)):
        for key, value in (figures or {}).items():
            figure(f"{who + ' ' + key:44} {value}")
    if "ratio_packets_per_s" in result:
        figure(f"{'ratio packets/s lifeline / reference':44} {result['ratio_packets_per_s']}")
    return 0
