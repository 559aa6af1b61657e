"""``lifeline bench edge``: how many water-quality devices (1 s interval) one agent polls on time.

The simulated devices are a lean asyncio Modbus TCP responder in a separate process (one listening port a device,
answers from a fixed register image: a few µs a request, so the cores measured are the agent's; its CPU is counted
apart), a Mosquitto broker receives the telemetry, and the agent runs in this process with its worker processes
(``workers:``). For each device count the agent runs a warm-up and then a measured window; the figure is the
largest count whose p99 poll-start lateness stays under 200 ms with no failed or skipped poll, and whose messages reach
the broker (95 % of those queued in the window acknowledged in it; the rest are in flight). The agent's CPU is
this process's and its workers'. The search runs for the workers asked for (default ``auto``) and, in the same run,
for ``workers: 1`` (one process, one loop) as the reference. On a 2-core machine the responder, the broker and the
agent share the cores: the figure is for the whole chain on one machine, which is what a small edge box looks like.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench._broker import closed_broker
from bench._figures import figure, write_json
from device_profiles import Function, load_catalogue
from edge_agent import EdgeAgent, EdgeConfig, build_site
from edge_agent.workers import usable_cores
from infra.gc_tuning import tune_for_throughput
from lifeline._run import install_stop_signals
from lifeline.broker_auth import edge_account
from testing import Mosquitto

PROFILE = "water_quality_station"
SITE = "bench"
TARGET_P99_MS = 200.0
MIN_DELIVERED = 0.95  # of the window's messages acknowledged by the broker within it (the rest are in flight)


@dataclass
class StepResult:
    devices: int
    p50_lateness_ms: float
    p99_lateness_ms: float
    max_lateness_ms: float
    readings_per_s: float
    cpu_s_per_1000_readings: float
    cpu_percent: float
    poll_failures: int
    overruns: int
    workers: int = 1
    responder_cpu_percent: float = 0.0
    broker_cpu_percent: float = 0.0
    delivered: float = 0.0  # messages the broker acknowledged in the window, over those the agent queued in it

    @property
    def on_time(self) -> bool:
        """p99 under the target, no poll lost (none failed, none skipped because the one before ran late), and what
        was polled reached the broker (a poll that is never sent counts for nothing)."""
        return (
            self.p99_lateness_ms < TARGET_P99_MS
            and self.poll_failures == 0
            and self.overruns == 0
            and self.delivered >= MIN_DELIVERED
        )


@dataclass
class Window:
    """What the agent did in the measured window."""

    agent: EdgeAgent
    cpu_s: float  # this process and the agent's worker processes
    responder_cpu_s: float
    broker_cpu_s: float
    wall_s: float
    readings: int
    failures: int
    overruns: int
    queued: int  # messages the agent put in its outbox in the window
    acked: int  # PUBACKs it got in the window


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def proc_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (Linux /proc); 0 when it is gone or unknown."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class SimProcess:
    """N lean simulated devices of one profile in a child process; their ports come back on its first line."""

    def __init__(self, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.edge", "--respond", PROFILE, str(count)],
            stdout=subprocess.PIPE,
            stdin=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the simulator process did not start")
        self.ports: list[int] = json.loads(line)["ports"]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


# -- the lean responder (its own process) -------------------------------------------------------------------------
def _image(profile_name: str) -> dict[int, list[int]]:
    """Registers of every function code a device of the profile answers: each point at the middle of its range."""
    from simulators.modbus import RegisterMap

    spec = load_catalogue()[profile_name].modbus
    assert spec is not None
    values: dict[str, Any] = {}
    for p in spec.points:
        if p.type.value in ("bool", "bit"):
            values[p.name] = False
        elif p.type.value == "string":
            values[p.name] = "BENCH"
        elif p.range is not None:
            values[p.name] = (p.range[0] + p.range[1]) / 2
        else:
            values[p.name] = 1
    image = RegisterMap(spec).encode(values)
    codes = {Function.COIL: 1, Function.DISCRETE_INPUT: 2, Function.HOLDING_REGISTER: 3, Function.INPUT_REGISTER: 4}
    flat: dict[int, list[int]] = {}
    for function, blocks in image.items():
        words = flat.setdefault(codes[function], [])
        for start, block in blocks.items():
            if len(words) < start + len(block):
                words.extend([0] * (start + len(block) - len(words)))
            words[start : start + len(block)] = block
    return flat


class _Responder(asyncio.Protocol):
    """Modbus TCP read requests (FC 1-4) answered from a shared register image; anything else: exception 01."""

    def __init__(self, answers: dict[bytes, bytes], image: dict[int, list[int]]) -> None:
        self.answers = answers  # request PDU (after the unit id) -> response PDU
        self.image = image
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data
        out: list[bytes] = []
        while len(buf) >= 7:
            length = (buf[4] << 8) | buf[5]
            end = 6 + length
            if len(buf) < end:
                break
            tid, unit, pdu = buf[0:2], buf[6:7], buf[7:end]
            buf = buf[end:]
            answer = self.answers.get(pdu)
            if answer is None:
                answer = self.answers[pdu] = _answer(pdu, self.image)
            out.append(tid + b"\x00\x00" + struct.pack(">H", len(answer) + 1) + unit + answer)
        self.buf = buf
        if out and self.transport is not None:
            self.transport.write(b"".join(out))


def _answer(pdu: bytes, image: dict[int, list[int]]) -> bytes:
    fc = pdu[0]
    if fc not in (1, 2, 3, 4) or len(pdu) != 5:
        return bytes([fc | 0x80, 1])
    start, count = struct.unpack(">HH", pdu[1:5])
    words = image.get(fc, [])
    if start + count > len(words):
        return bytes([fc | 0x80, 2])
    if fc in (1, 2):
        bits = words[start : start + count]
        packed = bytes(sum(1 << i for i, b in enumerate(bits[j : j + 8]) if b) for j in range(0, count, 8))
        return bytes([fc, len(packed)]) + packed
    body = struct.pack(f">{count}H", *words[start : start + count])
    return bytes([fc, len(body)]) + body


async def respond(profile_name: str, count: int) -> None:
    """Listen on ``count`` loopback ports, print them as one JSON line, serve until SIGTERM or stdin's end."""
    image = _image(profile_name)
    answers: dict[bytes, bytes] = {}
    loop = asyncio.get_running_loop()
    servers = [
        await loop.create_server(lambda: _Responder(answers, image), "127.0.0.1", 0, backlog=64) for _ in range(count)
    ]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    print(json.dumps({"ports": ports}), flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    with contextlib.suppress(ValueError, OSError):
        fd = sys.stdin.fileno()
        loop.add_reader(fd, lambda: None if os.read(fd, 4096) else stop.set())
    await stop.wait()
    for s in servers:
        s.close()


async def _measure(
    config: EdgeConfig, warmup_s: float, window_s: float, interval_s: float, others: tuple[int | None, int | None]
) -> Window:
    agent = EdgeAgent(build_site(config), keep_lateness=int(4 * window_s / interval_s) + 10)
    tune_for_throughput()  # as lifeline edge does
    install_stop_signals()  # for SIGUSR1 (task dump); Ctrl-C ends the benchmark as usual
    asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    stop = asyncio.Event()
    task = asyncio.ensure_future(agent.run(stop))
    # the warm-up counts from when every device has been polled once (workers spawn and connect first), at most 30 s
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(st.polls == 0 for st in agent.stats.values()):  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    await asyncio.sleep(warmup_s)
    for st in agent.stats.values():
        st.lateness_s.clear()
    readings0 = sum(st.readings for st in agent.stats.values())
    failures0 = sum(st.poll_failures for st in agent.stats.values())
    overruns0 = sum(st.overruns for st in agent.stats.values())
    queued0, acked0 = agent.outbox.stats.queued, agent.outbox.stats.acked
    pids = agent.workers.pids if agent.workers is not None else []
    responder, broker = others

    def cpu_now() -> tuple[float, float, float]:
        own = time.process_time() + sum(proc_cpu_s(p) for p in pids)
        return own, proc_cpu_s(responder), proc_cpu_s(broker)

    cpu0, wall0 = cpu_now(), time.monotonic()
    await asyncio.sleep(window_s)
    cpu1, wall = cpu_now(), time.monotonic() - wall0
    cpu, responder_cpu, broker_cpu = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    readings = sum(st.readings for st in agent.stats.values()) - readings0
    failures = sum(st.poll_failures for st in agent.stats.values()) - failures0
    overruns = sum(st.overruns for st in agent.stats.values()) - overruns0
    queued, acked = agent.outbox.stats.queued - queued0, agent.outbox.stats.acked - acked0
    stop.set()
    await task
    return Window(agent, cpu, responder_cpu, broker_cpu, wall, readings, failures, overruns, queued, acked)


def run_step(
    broker: Mosquitto, devices: int, interval_s: float, window_s: float, workers: int | str, client: str = "lean"
) -> StepResult:
    sims = SimProcess(devices)
    state = tempfile.TemporaryDirectory(prefix="lifeline-bench-edge-")  # the outbox file, as in a deployment
    try:
        config = EdgeConfig.model_validate(
            {
                "site": SITE,
                "state_dir": state.name,
                "broker": broker.config_for(f"edge-{SITE}"),
                "modbus": {"timeout_s": 1.0, "client": client},
                "workers": workers,
                "devices": [
                    {
                        "id": f"wq-{i:04d}",
                        "profile": PROFILE,
                        "host": "127.0.0.1",
                        "port": port,
                        "poll_interval_s": interval_s,
                    }
                    for i, port in enumerate(sims.ports)
                ],
            }
        )
        warmup_s = min(3.0, 2 * interval_s + 1)
        broker_proc = getattr(broker, "proc", None)
        others = (sims.proc.pid, broker_proc.pid if broker_proc is not None else None)
        w = asyncio.run(_measure(config, warmup_s, window_s, interval_s, others))
    finally:
        sims.stop()
        state.cleanup()
    lateness = [x * 1000 for st in w.agent.stats.values() for x in st.lateness_s]
    cpu, wall, readings = w.cpu_s, w.wall_s, w.readings
    return StepResult(
        devices=devices,
        p50_lateness_ms=round(percentile(lateness, 0.50), 2),
        p99_lateness_ms=round(percentile(lateness, 0.99), 2),
        max_lateness_ms=round(max(lateness, default=float("nan")), 2),
        readings_per_s=round(readings / wall, 1),
        cpu_s_per_1000_readings=round(cpu / readings * 1000, 4) if readings else float("nan"),
        cpu_percent=round(100 * cpu / wall, 1),
        poll_failures=w.failures,
        overruns=w.overruns,
        workers=len(w.agent.workers.workers) if w.agent.workers is not None else 1,
        responder_cpu_percent=round(100 * w.responder_cpu_s / wall, 1),
        broker_cpu_percent=round(100 * w.broker_cpu_s / wall, 1),
        delivered=round(w.acked / w.queued, 3) if w.queued else 0.0,
    )


def search(broker: Mosquitto, args: argparse.Namespace, workers: int | str) -> dict[str, Any]:
    """The largest on-time device count for one ``workers`` setting: doubling, then two bisection steps."""
    interval = float(args.interval)
    results: list[StepResult] = []
    count = max(1, int(args.start))
    best: StepResult | None = None
    worst: StepResult | None = None

    def step(n: int) -> StepResult:
        result = run_step(broker, n, interval, float(args.step_seconds), workers, _client(args))
        results.append(result)
        figure(_row(result))
        return result

    while count <= args.max_devices:
        result = step(count)
        if not result.on_time:
            worst = result
            break
        best = result
        if count >= args.max_devices:
            break
        count = min(count * 2, int(args.max_devices))
    # narrow the gap between the last good and the first bad count (two bisection steps)
    for _ in range(2):
        if best is None or worst is None or worst.devices - best.devices <= max(10, best.devices // 8):
            break
        result = step((best.devices + worst.devices) // 2)
        if result.on_time:
            best = result
        else:
            worst = result
    return {
        "workers_setting": workers,
        "workers": best.workers if best else None,
        "devices": best.devices if best else 0,
        "interval_s": interval,
        "p99_lateness_ms": best.p99_lateness_ms if best else None,
        "cpu_s_per_1000_readings": best.cpu_s_per_1000_readings if best else None,
        "readings_per_s": best.readings_per_s if best else None,
        "responder_cpu_percent": best.responder_cpu_percent if best else None,
        "broker_cpu_percent": best.broker_cpu_percent if best else None,
        "first_over_limit": asdict(worst) if worst else None,
        "steps": [asdict(r) for r in results],
    }


def _client(args: argparse.Namespace) -> str:
    return str(getattr(args, "modbus_client", "lean"))


def _workers_arg(value: str) -> int | str:
    return value if value == "auto" else max(1, int(value))


def run(args: argparse.Namespace) -> int:
    cores = usable_cores()
    workers = _workers_arg(str(getattr(args, "workers", "auto")))
    load0 = os.getloadavg()
    print(
        f"cores: {cores} usable (os.cpu_count {os.cpu_count()}); load average {load0[0]:.2f} {load0[1]:.2f} "
        f"{load0[2]:.2f}; modbus client: {_client(args)}; workers: {workers}, then workers: 1 as the reference",
        flush=True,
    )
    runs: list[dict[str, Any]] = []
    with (
        tempfile.TemporaryDirectory(prefix="lifeline-bench-") as tmp,
        closed_broker(Path(tmp), [edge_account(SITE)]) as broker,
    ):
        for setting in [workers] if workers == 1 else [workers, 1]:
            print(f"-- workers: {setting}", flush=True)
            runs.append(search(broker, args, setting))
    load1 = os.getloadavg()
    summary = {
        "cores": cores,
        "modbus_client": _client(args),
        "load_average_start": [round(x, 2) for x in load0],
        "load_average_end": [round(x, 2) for x in load1],
        "points_per_device": 10,
        "limit": f"p99 poll-start lateness < {TARGET_P99_MS:g} ms, no failed or skipped poll",
        **{k: v for k, v in runs[0].items() if k != "steps"},
        "reference_workers_1": {k: v for k, v in runs[-1].items() if k != "steps"} if len(runs) > 1 else None,
        "steps": [s for r in runs for s in r["steps"]],
    }
    write_json(args.json, "edge", summary)
    print(f"\non {cores} cores (load average {load1[0]:.2f} at the end):")
    for r in runs:
        print(
            f"  workers: {r['workers_setting']} ({r['workers']} process(es) polling): {r['devices']} {PROFILE} "
            f"devices every {r['interval_s']:g} s on time (p99 lateness {r['p99_lateness_ms']} ms), "
            f"{r['cpu_s_per_1000_readings']} CPU s per 1,000 readings (agent and workers; responder "
            f"{r['responder_cpu_percent']}% and broker {r['broker_cpu_percent']}% of a core apart)"
        )
    return 0


def _row(r: StepResult) -> str:
    return (
        f"devices={r.devices:<5} p50={r.p50_lateness_ms:>7.1f} ms  p99={r.p99_lateness_ms:>7.1f} ms  "
        f"max={r.max_lateness_ms:>7.1f} ms  readings/s={r.readings_per_s:>8.0f}  "
        f"cpu={r.cpu_percent:>5.1f}%  cpu_s/1000={r.cpu_s_per_1000_readings:.4f}  "
        f"failures={r.poll_failures} overruns={r.overruns}  responder={r.responder_cpu_percent:>5.1f}% "
        f"broker={r.broker_cpu_percent:>5.1f}%  delivered={r.delivered:.3f}  {'ok' if r.on_time else 'OVER'}"
    )


if __name__ == "__main__":  # the responder process: python -m bench.edge --respond PROFILE COUNT
    if len(sys.argv) == 4 and sys.argv[1] == "--respond":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(respond(sys.argv[2], int(sys.argv[3])))
    else:
        sys.exit("usage: python -m bench.edge --respond PROFILE COUNT (the benchmark: lifeline bench edge)")
