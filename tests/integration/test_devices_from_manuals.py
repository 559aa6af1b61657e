"""Devices configured from their manuals, polled over real TCP from simulated devices with each quirk (issue 25):
unit id 247, reserved gaps, a gateway's exception 0B, a wrong unit id that gets no answer, slow answers, floats low
word first, a BCD hour counter and a totaliser composed of two registers that are not adjacent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from device_profiles import Profile, load_profiles
from edge_agent.config import DeviceConfig, ModbusDefaults
from edge_agent.health import modbus_values
from edge_agent.modbus_poller import GATEWAY_HINT, ModbusPoller
from edge_agent.stats import DeviceStats
from infra.clock import SystemClock
from simulators import ModbusDevice
from simulators.behaviours import Behaviour, Value
from telemetry import Quality, Sample

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).parents[2] / "device_profiles" / "examples"

# An 8-channel gas controller as its manual writes it: unit id 247, at most 16 registers a read, channel readings at
# 40001-40008, 40009-40016 reserved, level-1 alarm thresholds at 40017-40024, decimals per channel (0.1 % LEL).
GAS_CONTROLLER = Profile.model_validate(
    {
        "name": "gas_controller_8ch",
        "kind": "gas_controller",
        "protocol": "modbus",
        "measurement": "gas",
        "modbus": {
            "max_registers_per_request": 16,
            "reserved": [{"from": 40009, "to": 40016}],
            "points": [
                *({"name": f"ch{i}", "address": 40000 + i, "type": "uint16", "scale": 0.1} for i in range(1, 9)),
                *({"name": f"al{i}", "address": 40016 + i, "type": "uint16", "writable": True} for i in range(1, 9)),
            ],
        },
    }
)
GAS_VALUES: dict[str, Value] = {**{f"ch{i}": 2.3 * i for i in range(1, 9)}, **{f"al{i}": 20 + i for i in range(1, 9)}}
FLOW_VALUES: dict[str, Value] = {
    "flow_rate": 28.7,
    "velocity": 1.234,
    "total_whole": 1234,
    "alarm_flags": 1,
    "empty_pipe": True,
    "total_fraction": 0.567,
    "run_hours": 125678,
}


class Static(Behaviour):
    """A device whose values are what the test says."""

    profile = "static"

    def __init__(self, values: dict[str, Value]) -> None:
        super().__init__(0)
        self.values = values

    def step(self, now: float) -> dict[str, Value]:
        return dict(self.values)


@dataclass
class Polled:
    device: ModbusDevice
    poller: ModbusPoller
    samples: list[Sample] = field(default_factory=list)
    status: list[tuple[bool, str]] = field(default_factory=list)

    async def poll(self) -> Sample:
        await self.poller.poll_once()
        return self.samples[-1]


@asynccontextmanager
async def polled(
    profile: Profile,
    values: dict[str, Value],
    *,
    unit_id: int = 1,
    device_unit: int | None = None,
    wrong_unit: Literal["gateway", "silent"] = "gateway",
    served_profile: Profile | None = None,
    timeout_s: float = 1.0,
    **device: object,
) -> AsyncIterator[Polled]:
    sim = ModbusDevice(
        "d1", served_profile or profile, Static(values), unit_id=device_unit or unit_id, wrong_unit=wrong_unit
    )
    await sim.start()
    config = DeviceConfig.model_validate(
        {"id": "d1", "profile": profile.name, "host": "127.0.0.1", "port": sim.port, "unit_id": unit_id, **device}
    )
    out = Polled(sim, None)  # type: ignore[arg-type]
    out.poller = ModbusPoller(
        config,
        profile,
        ModbusDefaults(timeout_s=timeout_s),
        on_sample=out.samples.append,
        on_status=lambda online, reason: out.status.append((online, reason)),
        clock=SystemClock(),
        stats=DeviceStats(),
        site="s1",
    )
    try:
        yield out
    finally:
        out.poller.close()
        await sim.stop()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 20))


def test_gas_controller_unit_247_reserved_gap_16_registers_every_point_right_no_exception() -> None:
    async def body() -> None:
        async with polled(GAS_CONTROLLER, GAS_VALUES, unit_id=247) as p:
            for _ in range(3):
                sample = await p.poll()
            assert sample.quality == {}
            assert sample.values == {
                **{f"ch{i}": round(2.3 * i, 1) for i in range(1, 9)},
                **{f"al{i}": 20 + i for i in range(1, 9)},
            }
            assert repr(sample.values["ch3"]) == "6.9"  # 69 × 0.1, no float noise
            st = p.poller.stats
            assert st.exceptions() == {}
            assert st.requests == 6  # 2 reads a poll: the reserved gap is never read
            assert p.status == [(True, "")]

    run(body)


def test_undeclared_reserved_gap_is_split_with_a_hint(caplog: pytest.LogCaptureFixture) -> None:
    """The same device, its profile without ``reserved`` and with room for one read: the device refuses it (02),
    the read is split, the log says what to declare."""
    loose = GAS_CONTROLLER.model_copy(
        update={
            "modbus": GAS_CONTROLLER.modbus.model_copy(  # type: ignore[union-attr]
                update={"reserved": [], "max_registers_per_request": 125}
            )
        }
    )

    async def body() -> None:
        async with polled(loose, GAS_VALUES, unit_id=247, served_profile=GAS_CONTROLLER) as p:
            caplog.set_level(logging.WARNING, "lifeline.edge.modbus")
            p.device.max_registers = 125  # the device takes long reads; only the gap is refused
            sample = await p.poll()
            assert sample.quality == {}
            assert p.poller.stats.exceptions() == {"02": 1}
            assert "declare them reserved or lower max_gap" in caplog.text
            await p.poll()
            assert p.poller.stats.exceptions() == {"02": 1}  # split for good: refused once

    run(body)


def test_wrong_unit_id_on_a_silent_tcp_device_names_the_unit_id() -> None:
    async def body() -> None:
        async with polled(
            GAS_CONTROLLER, GAS_VALUES, unit_id=1, device_unit=247, wrong_unit="silent", timeout_s=0.3
        ) as p:
            sample = await p.poll()
            reason = "connected, no answer within 0.3 s: check the unit id (configured 1)"
            assert p.status == [(False, reason)]
            assert sample.quality["ch1"].q is Quality.BAD
            assert sample.quality["ch1"].reason == reason
            assert p.poller.stats.last_error == reason

    run(body)


def test_gateway_exception_0b_marks_offline_with_the_wiring_hint_and_does_not_split() -> None:
    async def body() -> None:
        async with polled(GAS_CONTROLLER, GAS_VALUES, unit_id=5, device_unit=247, wrong_unit="gateway") as p:
            planned = list(p.poller.requests)
            for _ in range(3):
                sample = await p.poll()
            assert p.poller.requests == planned  # not split
            st = p.poller.stats
            assert st.requests == 3  # one refused read a poll, not one a point
            assert st.exceptions() == {"0B": 3}
            assert st.retries == 2
            assert len(p.status) == 1
            online, reason = p.status[0]
            assert not online
            assert reason.startswith(GATEWAY_HINT)
            assert all(q.q is Quality.BAD for q in sample.quality.values())
            health = modbus_values({"d1": st})
            assert health["modbus_devices_offline"] == 1
            assert "d1: gateway: target did not answer" in str(health["modbus_problem"])
            assert '"0B":3' in str(health["modbus_health"])
            p.device.unit_id = 5  # the technician sets the right unit id on the device: back online
            sample = await p.poll()
            assert sample.quality == {}
            assert p.status[-1] == (True, "")

    run(body)


def test_slow_drive_behind_a_gateway_answers_within_its_timeout() -> None:
    async def body() -> None:
        async with polled(GAS_CONTROLLER, GAS_VALUES, unit_id=247, timeout_s=2.0) as p:
            p.device.slow(0.4)
            sample = await p.poll()
            assert sample.quality == {}
            assert p.poller.stats.exceptions() == {}
            assert p.status == [(True, "")]
            # on its schedule: 2 reads of 0.4 s a poll, every 1 s, for 3 s: no poll skipped
            p.poller.interval = 1.0
            task = asyncio.ensure_future(p.poller.run())
            await asyncio.sleep(3.2)
            p.poller.request_stop()
            await asyncio.wait_for(task, 3)
            st = p.poller.stats
            assert st.polls >= 4
            assert st.overruns == 0
            assert st.poll_failures == 0

    run(body)


def test_flow_meter_low_word_first_floats_bcd_hours_and_composed_totaliser() -> None:
    profile = load_profiles([EXAMPLES])["em_flow_meter"]

    async def body() -> None:
        async with polled(profile, FLOW_VALUES, unit_id=3) as p:
            sample = await p.poll()
            assert sample.quality == {}
            assert sample.values == {**FLOW_VALUES, "total": 1234.567}
            assert repr(sample.values["flow_rate"]) == "28.7"  # a float32, published as its shortest decimal
            assert p.poller.stats.requests == 2  # 30009-30010 reserved: two reads

    run(body)


def test_per_device_override_changes_scale_and_decimals() -> None:
    """A site file's ``points:`` under one device: here ch1 at 0.01 % LEL with one decimal."""
    from device_profiles.overrides import PointOverride, apply_overrides

    mine = apply_overrides(GAS_CONTROLLER, {"ch1": PointOverride(scale=0.01, decimals=1)})

    async def body() -> None:
        async with polled(mine, {**GAS_VALUES, "ch1": 12.34}, unit_id=247) as p:
            sample = await p.poll()
            assert sample.values["ch1"] == 12.3

    run(body)


def test_plan_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    """``lifeline edge --plan | head``: the reader goes away, the command ends without a traceback."""
    import subprocess
    import sys

    site = tmp_path / "site.yaml"
    devices = "\n".join(
        f"  - {{id: m{i}, profile: em_flow_meter, host: 192.0.2.1, unit_id: {i % 247 + 1}}}" for i in range(400)
    )
    site.write_text(f"site: s1\nprofile_paths: [{EXAMPLES / 'em_flow_meter.yaml'}]\ndevices:\n{devices}\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lifeline", "edge", "--config", str(site), "--plan"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith(b"m0 (em_flow_meter")  # head reads a line, then goes away
    proc.stdout.close()
    _, err = proc.communicate(timeout=60)
    assert b"Traceback" not in err, err.decode()
    assert b"BrokenPipe" not in err
    assert proc.returncode == 0
    text = subprocess.run(
        [sys.executable, "-m", "lifeline", "edge", "--config", str(site), "--plan"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "manual: flow_rate 30001 (wire 0)" in text
