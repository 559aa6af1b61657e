"""A controllable device's own Modbus connection for commands: a gate's state points, its target opening and
command coils; any writable point (set points) written with the function its profile names and read back.

Apart from the poller's connection, so that polling goes on during a movement; ``edge_agent.commands``
re-exports ``ModbusGateIO`` and ``GateUnreachable``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from pymodbus.exceptions import ModbusException

from device_profiles import Function, ModbusPoint, Profile, decode_point, encode_point
from edge_agent.config import DeviceConfig, ModbusDefaults
from edge_agent.decode import decode_block
from edge_agent.modbus_poller import EXCEPTION_NAMES, ModbusClient, default_client_factory
from edge_agent.planner import plan
from telemetry import Value
from telemetry.interlocks import STATE_POINTS

_READ_CALLS = {
    Function.COIL: "read_coils",
    Function.DISCRETE_INPUT: "read_discrete_inputs",
    Function.HOLDING_REGISTER: "read_holding_registers",
    Function.INPUT_REGISTER: "read_input_registers",
}


class GateUnreachable(Exception):
    """The gate did not answer a read or write (time-out, connection, Modbus exception)."""


class ModbusGateIO:
    """Reads a gate's state and writes its commands on a Modbus connection of its own (one request at a time)."""

    def __init__(
        self,
        device: DeviceConfig,
        profile: Profile,
        defaults: ModbusDefaults,
        client_factory: Callable[[DeviceConfig, float], ModbusClient] = default_client_factory,
    ) -> None:
        assert profile.modbus is not None
        self.device, self.defaults, self.client_factory = device, defaults, client_factory
        self.timeout = device.timeout_s or defaults.timeout_s
        self.points: dict[str, ModbusPoint] = {p.name: p for p in profile.modbus.points}
        self.requests = [r for r in plan(profile.modbus) if any(p.name in STATE_POINTS for p in r.points)]
        self.client: ModbusClient | None = None
        self._lock = asyncio.Lock()

    async def read(self) -> dict[str, Value]:
        """The state points' values (None where a point could not be decoded); GateUnreachable if no answer."""
        values: dict[str, Value] = {}
        for r in self.requests:
            response = await self._call(_READ_CALLS[r.function], r.start, count=r.count)
            data = response.bits if r.function.is_bit else response.registers
            values.update({name: value for name, (value, _) in decode_block(r, data).items()})
        return values

    async def write_target(self, opening_m: float) -> None:
        point = self.points["target_opening"]
        words = encode_point(point, opening_m)
        if len(words) == 1:
            await self._call("write_register", point.address, words[0])
        else:
            await self._call("write_registers", point.address, words)

    async def read_point(self, point: ModbusPoint) -> Value:
        """One point's value as it is now (engineering units); GateUnreachable if no answer."""
        response = await self._call(_READ_CALLS[point.function], point.address, count=point.count)
        if point.function.is_bit:
            return bool(response.bits[0])
        return decode_point(point, response.registers[: point.count])

    async def write_point(self, point: ModbusPoint, value: float | bool) -> int:
        """Write ``value`` (engineering units) with the point's write function (``write_function``, else 5 for a coil,
        6 for one register, 16 for more); the function used. EncodeError if the value does not fit the type."""
        if point.function is Function.COIL:
            function = point.write_function or 5
            if function == 15:
                await self._call("write_coils", point.address, [bool(value)])
            else:
                await self._call("write_coil", point.address, bool(value))
            return function
        words = encode_point(point, value)
        function = point.write_function or (6 if len(words) == 1 else 16)
        if function == 6:
            await self._call("write_register", point.address, words[0])
        else:
            await self._call("write_registers", point.address, words)
        return function

    async def pulse(self, coil: str) -> None:
        """Set a command coil and release it: the PLC latches the run on the rising edge (sluice.md, practice)."""
        address = self.points[coil].address
        await self._call("write_coil", address, True)
        await self._call("write_coil", address, False)

    async def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        async with self._lock:
            client = await self._client()
            try:
                async with asyncio.timeout(self.timeout + 1.0):
                    response = await getattr(client, method)(*args, device_id=self.device.unit_id, **kwargs)
            except (TimeoutError, ModbusException, OSError) as exc:
                self.close()
                raise GateUnreachable(f"{method}: {str(exc).strip() or type(exc).__name__}"[:200]) from exc
            if response.isError():
                code = int(getattr(response, "exception_code", 0))
                raise GateUnreachable(f"{method}: modbus exception {code} ({EXCEPTION_NAMES.get(code, 'unknown')})")
            return response

    async def _client(self) -> ModbusClient:
        if self.client is not None and self.client.connected:
            return self.client
        self.close()
        client = self.client_factory(self.device, self.timeout)
        try:
            async with asyncio.timeout(self.defaults.connect_timeout_s):
                ok = await client.connect()
        except (TimeoutError, OSError) as exc:
            client.close()
            raise GateUnreachable(f"no connection to {self.device.host}:{self.device.port}") from exc
        if not ok:
            client.close()
            raise GateUnreachable(f"no connection to {self.device.host}:{self.device.port}")
        self.client = client
        return client

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None
