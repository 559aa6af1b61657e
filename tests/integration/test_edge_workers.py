"""The agent's Modbus polling over worker processes (workers: 2): simulators → workers → agent → Mosquitto."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import pytest

from telemetry import Quality, decode_telemetry, topics
from testing import Mosquitto
from tests.helpers import Subscriber
from tests.integration.conftest import RunningAgent, RunningDistrict

pytestmark = pytest.mark.integration
SITE = "mini-water"


def _by_device(sub: Subscriber) -> dict[str, list[tuple[int, int]]]:
    """(seq, sample ts) of every telemetry message so far, per device."""
    out: dict[str, list[tuple[int, int]]] = {}
    with sub.lock:
        messages = list(sub.messages)
    for m in messages:
        t = decode_telemetry(m.payload)
        out.setdefault(t.device, []).extend((t.seq, s.ts) for s in t.samples)
    return out


def test_workers_poll_publish_once_and_survive_kill(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: Callable[..., RunningAgent]
) -> None:
    config = mini.site_config(SITE, workers=2)
    sub = Subscriber(mosquitto, topics.telemetry_filter(SITE))
    running = start_agent(config)
    agent = running.agent
    pool = agent.workers
    assert pool is not None, "workers: 2 with more than one Modbus device starts a worker pool"
    sharded = {d for w in pool.workers for d in w.devices}
    assert len(pool.workers) == 2
    assert len(sharded) >= 2
    gates = {d.id for d in config.devices if d.control and d.control.enabled}
    assert gates == {"gate-1"}
    assert not gates & sharded, "gates stay in the agent, next to the commands and interlocks"
    assert set(agent.commands.gates) == gates
    assert {p.device.id for p in agent.pollers} >= gates

    # every sharded device publishes, with good values, through the agent's one outbox
    sub.wait_for(lambda ms: sharded | gates <= set(_by_device(sub)), timeout=15)
    last = decode_telemetry(next(m.payload for m in reversed(sub.messages) if b'"wq-1"' in m.payload))
    assert last.samples[0].quality_of("ph") is Quality.GOOD
    assert agent.stats["wq-1"].readings > 0, "the workers' counters reach the agent's"

    # kill -9 one worker: its devices resume within a bounded time, numbered on without a gap
    victim = pool.workers[0]
    assert victim.process is not None
    pid = victim.process.pid
    assert pid is not None
    killed_ms = int(time.time() * 1000)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()

    def resumed() -> bool:
        seen = _by_device(sub)
        return all(any(ts > killed_ms + 200 for _, ts in seen.get(d, [])) for d in victim.devices)

    sub.wait_for(lambda _: resumed(), timeout=15)
    assert time.monotonic() - t0 < 10, "a dead worker's devices resume within 10 s"
    assert pool.restarts >= 1
    assert victim.process is not None
    assert victim.process.pid != pid
    for device, got in _by_device(sub).items():
        seqs = [s for s, _ in got]
        assert seqs == list(range(1, len(seqs) + 1)), f"{device}: one publisher numbers every message once"
    sub.close()
    running.stop()
    assert all(w.process is None for w in pool.workers), "the agent's stop ends its workers"


def test_lean_client_in_workers_reads_what_pymodbus_reads(
    mini: RunningDistrict, mosquitto: Mosquitto, start_agent: Callable[..., RunningAgent]
) -> None:
    """modbus: client: lean decodes every point of the simulated station the same; a dead device turns bad."""
    forced = {"ph": 7.42, "do": 6.15, "cod": 18.5, "conductivity": 812.0, "water_temp": 17.25}
    assert mini.district is not None
    sim = mini.district.modbus["wq-1"]

    def force() -> None:
        for point, value in forced.items():
            sim.set_value(point, value)

    mini.on_loop(force)
    sub = Subscriber(mosquitto, topics.telemetry(SITE, "wq-1"))
    start_agent(mini.site_config(SITE, workers=2, modbus={"client": "lean"}))
    got = sub.wait_for(lambda ms: len(ms) >= 2, timeout=15)
    (sample,) = decode_telemetry(got[-1].payload).samples
    for name, value in forced.items():
        assert sample.values[name] == pytest.approx(value, rel=1e-6), name
        assert sample.quality_of(name) is Quality.GOOD
    mini.on_loop(sim.stop_answering)  # connected, silent: the lean client times out
    samples_bad = sub.wait_for(
        lambda ms: any(s.quality_of("ph") is Quality.BAD for m in ms for s in decode_telemetry(m.payload).samples),
        timeout=15,
    )
    assert samples_bad
    sub.close()
