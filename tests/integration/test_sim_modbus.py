"""Simulated Modbus devices on real TCP sockets, read and written by pymodbus's own client."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException

from device_profiles import Function, decode_point, load_catalogue
from edge_agent.planner import plan
from simulators import ModbusDevice, SluiceGate, make_behaviour

pytestmark = pytest.mark.integration

CATALOGUE = load_catalogue()
MODBUS_PROFILES = sorted(n for n, p in CATALOGUE.items() if p.modbus is not None)


@dataclass
class ManualClock:
    now: float = 1_781_488_800.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def serve(
    profile: str, clock: ManualClock | None = None, client_timeout: float = 1.0, **kw: object
) -> AsyncIterator[tuple[ModbusDevice, AsyncModbusTcpClient]]:
    clock = clock or ManualClock()
    device = ModbusDevice(profile, CATALOGUE[profile], make_behaviour(profile, 1), clock=clock, **kw)  # type: ignore[arg-type]
    await device.start()
    client = AsyncModbusTcpClient("127.0.0.1", port=device.port, timeout=client_timeout, retries=0, reconnect_delay=0)
    assert await client.connect()
    try:
        yield device, client
    finally:
        client.close()
        await device.stop()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), 10))


async def read_point(client: AsyncModbusTcpClient, profile: str, name: str) -> object:
    p = next(p for p in CATALOGUE[profile].modbus.points if p.name == name)  # type: ignore[union-attr]
    if p.function is Function.COIL:
        rr = await client.read_coils(p.address, count=1, device_id=1)
        return rr.bits[0]
    if p.function is Function.DISCRETE_INPUT:
        rr = await client.read_discrete_inputs(p.address, count=1, device_id=1)
        return rr.bits[0]
    read = client.read_holding_registers if p.function is Function.HOLDING_REGISTER else client.read_input_registers
    rr = await read(p.address, count=p.count, device_id=1)
    assert not rr.isError(), rr
    return decode_point(p, rr.registers)


@pytest.mark.parametrize("profile", MODBUS_PROFILES)
def test_client_decodes_the_values_the_device_holds(profile: str) -> None:
    async def test() -> None:
        async with serve(profile) as (device, client):
            want = device.values()
            for name, value in want.items():
                got = await read_point(client, profile, name)
                assert got == (pytest.approx(value, rel=1e-6, abs=0.001) if isinstance(value, float) else value), name

    run(test)


@pytest.mark.parametrize("profile", MODBUS_PROFILES)
def test_every_request_the_edge_planner_makes_is_answered(profile: str) -> None:
    async def test() -> None:
        async with serve(profile) as (_, client):
            spec = CATALOGUE[profile].modbus
            assert spec is not None
            for request in plan(spec):
                read = {
                    Function.COIL: client.read_coils,
                    Function.DISCRETE_INPUT: client.read_discrete_inputs,
                    Function.HOLDING_REGISTER: client.read_holding_registers,
                    Function.INPUT_REGISTER: client.read_input_registers,
                }[request.function]
                rr = await read(request.start, count=request.count, device_id=1)
                assert not rr.isError(), (request, rr)

    run(test)


def test_gate_commands_over_modbus_move_the_gate_at_its_speed() -> None:
    async def test() -> None:
        clock = ManualClock()
        async with serve("sluice_gate_plc", clock) as (_, client):
            assert not (await client.write_register(10, 1200, device_id=1)).isError()  # target 1.2 m
            rr = await client.write_coil(0, True, device_id=1)  # cmd_open pulse
            assert not rr.isError()
            assert rr.bits[0] is True  # the answer echoes the request
            assert await read_point(client, "sluice_gate_plc", "moving_open") is True
            clock.now += 100
            assert await read_point(client, "sluice_gate_plc", "gate_opening") == pytest.approx(0.5)
            assert 15 <= await read_point(client, "sluice_gate_plc", "motor_current") <= 25  # type: ignore[operator]
            assert await read_point(client, "sluice_gate_plc", "cmd_open") is False  # the PLC cleared the pulse
            clock.now += 1000
            assert await read_point(client, "sluice_gate_plc", "gate_opening") == pytest.approx(1.2)
            assert await read_point(client, "sluice_gate_plc", "moving_open") is False

    run(test)


def test_gate_in_local_mode_accepts_the_write_and_does_not_move() -> None:
    async def test() -> None:
        clock = ManualClock()
        async with serve("sluice_gate_plc", clock) as (device, client):
            assert isinstance(device.behaviour, SluiceGate)
            device.behaviour.set_remote(False)
            await client.write_register(10, 1200, device_id=1)
            assert not (await client.write_coil(0, True, device_id=1)).isError()
            clock.now += 100
            assert await read_point(client, "sluice_gate_plc", "gate_opening") == 0.0
            assert await read_point(client, "sluice_gate_plc", "remote_mode") is False

    run(test)


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(lambda c: c.read_holding_registers(0, count=6, device_id=1), None, id="ok"),
        pytest.param(lambda c: c.read_holding_registers(30, count=2, device_id=1), 2, id="outside-map-02"),
        pytest.param(lambda c: c.read_holding_registers(20, count=3, device_id=1), 2, id="runs-past-map-02"),
        pytest.param(lambda c: c.read_input_registers(0, count=1, device_id=1), 2, id="no-input-registers-02"),
        pytest.param(lambda c: c.read_holding_registers(0, count=6, device_id=7), 11, id="other-unit-0B"),
        pytest.param(lambda c: c.write_register(0, 5, device_id=1), 2, id="write-read-only-02"),
        pytest.param(lambda c: c.write_coil(9, True, device_id=1), 2, id="write-unmapped-coil-02"),
    ],
)
def test_addresses_and_units_answer_like_a_device(
    call: Callable[[AsyncModbusTcpClient], Awaitable[object]], expected: int | None
) -> None:
    async def test() -> None:
        async with serve("sluice_gate_plc") as (_, client):
            rr = await call(client)
            assert rr.isError() is (expected is not None)  # type: ignore[attr-defined]
            if expected is not None:
                assert rr.exception_code == expected  # type: ignore[attr-defined]

    run(test)


def test_stop_answering_times_out_and_resume_answers_again() -> None:
    async def test() -> None:
        async with serve("water_quality_station", client_timeout=0.3) as (device, client):
            device.stop_answering()
            started = time.monotonic()
            with pytest.raises(ModbusIOException):
                await client.read_input_registers(0, count=20, device_id=1)
            assert time.monotonic() - started >= 0.29
            device.resume()
            if not client.connected:
                assert await client.connect()
            rr = await client.read_input_registers(0, count=20, device_id=1)
            assert not rr.isError()

    run(test)


@pytest.mark.parametrize("code", [4, 6, 11])
def test_exception_mode_answers_every_request_with_the_code(code: int) -> None:
    async def test() -> None:
        async with serve("air_quality_station") as (device, client):
            device.exception(code)
            for rr in [
                await client.read_holding_registers(0, count=12, device_id=1),
                await client.read_input_registers(100, count=4, device_id=1),
            ]:
                assert rr.isError()
                assert rr.exception_code == code
            device.clear_exception()
            assert not (await client.read_holding_registers(0, count=12, device_id=1)).isError()

    run(test)


def test_slow_device_answers_after_the_delay() -> None:
    async def test() -> None:
        async with serve("water_quality_station") as (device, client):
            device.slow(0.3)
            started = time.monotonic()
            rr = await client.read_input_registers(0, count=20, device_id=1)
            assert not rr.isError()
            assert time.monotonic() - started >= 0.3

    run(test)


def test_max_registers_answers_03_on_a_larger_read() -> None:
    async def test() -> None:
        async with serve("water_quality_station") as (device, client):
            assert device.max_registers == 125
            device.max_registers = 10
            rr = await client.read_input_registers(0, count=12, device_id=1)
            assert rr.isError()
            assert rr.exception_code == 3
            assert not (await client.read_input_registers(0, count=10, device_id=1)).isError()

    run(test)


def test_cems_profile_limit_is_the_default() -> None:
    async def test() -> None:
        async with serve("flue_gas_cems") as (device, _):
            assert device.max_registers == 64

    run(test)


def test_read_past_the_modbus_limit_answers_03_not_01() -> None:
    """pymodbus's own decoder would answer 01; a real device answers 03 (raw frame: the client cannot send it)."""

    async def test() -> None:
        async with serve("water_quality_station") as (device, _):
            reader, writer = await asyncio.open_connection("127.0.0.1", device.port)
            writer.write(struct.pack(">HHHBBHH", 1, 0, 6, 1, 4, 0, 200))
            header = await reader.readexactly(7)
            body = await reader.readexactly(struct.unpack(">H", header[4:6])[0] - 1)
            writer.close()
            assert body == bytes([0x84, 0x03])

    run(test)


def test_set_value_stuck_and_spike() -> None:
    async def test() -> None:
        clock = ManualClock()
        async with serve("water_quality_station", clock) as (device, client):
            device.set_value("ph", 5.5)
            assert await read_point(client, "water_quality_station", "ph") == pytest.approx(5.5)
            device.clear("ph")
            assert await read_point(client, "water_quality_station", "ph") != pytest.approx(5.5)

            device.spike("cod", 480.0, reads=2)
            assert await read_point(client, "water_quality_station", "cod") == pytest.approx(480.0)
            assert await read_point(client, "water_quality_station", "cod") == pytest.approx(480.0)
            assert await read_point(client, "water_quality_station", "cod") < 100  # type: ignore[operator]

            device.stuck("do")
            frozen = await read_point(client, "water_quality_station", "do")
            clock.now += 6 * 3600  # the afternoon's photosynthesis does not reach a stuck sensor
            assert await read_point(client, "water_quality_station", "do") == frozen
            assert device.values()["do"] == pytest.approx(frozen)
            with pytest.raises(KeyError):
                device.set_value("nope", 1)
            with pytest.raises(ValueError, match="ph"):
                device.set_value("ph", "acid")

    run(test)


def test_many_devices_in_one_process_on_their_own_ports() -> None:
    async def test() -> None:
        profile = CATALOGUE["water_quality_station"]
        devices = [ModbusDevice(f"wq-{i}", profile, make_behaviour(profile.name, i)) for i in range(20)]
        for d in devices:
            await d.start()
        try:
            assert len({d.port for d in devices}) == 20
            for d in devices:
                with socket.create_connection(("127.0.0.1", d.port), timeout=1) as conn:
                    assert conn.getpeername()[1] == d.port  # each device listens on its own port
        finally:
            for d in devices:
                await d.stop()

    run(test)
