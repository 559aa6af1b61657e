"""``lifeline bench edge``: how many water-quality devices (1 s interval) one agent polls on time.

The simulated devices run in a separate process (so the agent's CPU time is its own) on loopback ports, a
Mosquitto broker receives the telemetry, and the agent runs in this process. For each device count the agent
runs a warm-up and then a measured window; the figure is the largest count whose p99 poll-start lateness stays
under 200 ms. On a 2-core machine the simulators, the broker and the agent share the cores: the figure is for
the whole chain on one machine, which is what a small edge box looks like.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench._broker import closed_broker
from bench._figures import figure, write_json
from edge_agent import EdgeAgent, EdgeConfig, build_site
from lifeline._run import install_stop_signals
from lifeline.broker_auth import edge_account
from lifeline.services import Mosquitto

PROFILE = "water_quality_station"
SITE = "bench"
TARGET_P99_MS = 200.0


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

    @property
    def on_time(self) -> bool:
        """p99 under the target, and no poll lost: none failed, none skipped because the one before ran late."""
        return self.p99_lateness_ms < TARGET_P99_MS and self.poll_failures == 0 and self.overruns == 0


@dataclass
class Window:
    """What the agent did in the measured window."""

    agent: EdgeAgent
    cpu_s: float
    wall_s: float
    readings: int
    failures: int
    overruns: int


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class SimProcess:
    """N simulated devices of one profile in a child process; their ports come back on its first line."""

    def __init__(self, count: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "simulators.farm", "--profile", PROFILE, "--count", str(count)],
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


async def _measure(
    config: EdgeConfig, warmup_s: float, window_s: float, interval_s: float
) -> Window:
    agent = EdgeAgent(build_site(config), keep_lateness=int(4 * window_s / interval_s) + 10)
    install_stop_signals()  # for SIGUSR1 (task dump); Ctrl-C ends the benchmark as usual
    asyncio.get_running_loop().remove_signal_handler(signal.SIGINT)
    stop = asyncio.Event()
    task = asyncio.ensure_future(agent.run(stop))
    await asyncio.sleep(warmup_s)
    for st in agent.stats.values():
        st.lateness_s.clear()
    readings0 = sum(st.readings for st in agent.stats.values())
    failures0 = sum(st.poll_failures for st in agent.stats.values())
    overruns0 = sum(st.overruns for st in agent.stats.values())
    cpu0, wall0 = time.process_time(), time.monotonic()
    await asyncio.sleep(window_s)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    readings = sum(st.readings for st in agent.stats.values()) - readings0
    failures = sum(st.poll_failures for st in agent.stats.values()) - failures0
    overruns = sum(st.overruns for st in agent.stats.values()) - overruns0
    stop.set()
    await task
    return Window(agent, cpu, wall, readings, failures, overruns)


def run_step(broker: Mosquitto, devices: int, interval_s: float, window_s: float) -> StepResult:
    sims = SimProcess(devices)
    state = tempfile.TemporaryDirectory(prefix="lifeline-bench-edge-")  # the outbox file, as in a deployment
    try:
        config = EdgeConfig.model_validate(
            {
                "site": SITE,
                "state_dir": state.name,
                "broker": broker.config_for(f"edge-{SITE}"),
                "modbus": {"timeout_s": 1.0},
                "devices": [
                    {"id": f"wq-{i:04d}", "profile": PROFILE, "host": "127.0.0.1", "port": port,
                     "poll_interval_s": interval_s}
                    for i, port in enumerate(sims.ports)
                ],
            }
        )  # fmt: skip
        warmup_s = min(3.0, 2 * interval_s + 1)
        w = asyncio.run(_measure(config, warmup_s, window_s, interval_s))
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
    )


def run(args: argparse.Namespace) -> int:
    interval = float(args.interval)
    results: list[StepResult] = []
    with (
        tempfile.TemporaryDirectory(prefix="lifeline-bench-") as tmp,
        closed_broker(Path(tmp), [edge_account(SITE)]) as broker,
    ):
        count = max(1, int(args.start))
        best: StepResult | None = None
        worst: StepResult | None = None
        while count <= args.max_devices:
            result = run_step(broker, count, interval, float(args.step_seconds))
            results.append(result)
            figure(_row(result))
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
            mid = (best.devices + worst.devices) // 2
            result = run_step(broker, mid, interval, float(args.step_seconds))
            results.append(result)
            figure(_row(result))
            if result.on_time:
                best = result
            else:
                worst = result
    summary = {
        "devices": best.devices if best else 0,
        "interval_s": interval,
        "p99_lateness_ms": best.p99_lateness_ms if best else None,
        "cpu_s_per_1000_readings": best.cpu_s_per_1000_readings if best else None,
        "readings_per_s": best.readings_per_s if best else None,
        "points_per_device": 10,
        "limit": f"p99 poll-start lateness < {TARGET_P99_MS:g} ms, no failed or skipped poll",
        "first_over_limit": asdict(worst) if worst else None,
        "steps": [asdict(r) for r in results],
    }
    write_json(args.json, "edge", summary)
    figure(
        f"\none agent polls {summary['devices']} {PROFILE} devices every {interval:g} s on time "
        f"(p99 lateness {summary['p99_lateness_ms']} ms), "
        f"{summary['cpu_s_per_1000_readings']} CPU s per 1,000 readings"
    )
    return 0


def _row(r: StepResult) -> str:
    return (
        f"devices={r.devices:<5} p50={r.p50_lateness_ms:>7.1f} ms  p99={r.p99_lateness_ms:>7.1f} ms  "
        f"max={r.max_lateness_ms:>7.1f} ms  readings/s={r.readings_per_s:>8.0f}  "
        f"cpu={r.cpu_percent:>5.1f}%  cpu_s/1000={r.cpu_s_per_1000_readings:.4f}  "
        f"failures={r.poll_failures} overruns={r.overruns}  {'ok' if r.on_time else 'OVER'}"
    )
