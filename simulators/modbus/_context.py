"""The pymodbus side of a simulated device: a server context that hands every request to the device.

pymodbus 3.16 deprecates its datastore classes; ``ModbusBaseServer`` still serves any ``ModbusServerContext`` that
says ``old_simulator = True`` by awaiting its ``async_getValues``/``async_setValues`` (server/base.py,
pdu/register_message.py, pdu/bit_message.py). So this context does not call the base ``__init__`` (which would log
the deprecation notice and want device objects) and sets the three attributes the server looks at
(docs/decisions/003-pymodbus-simulator-context.md). The simulator tests check this on every pymodbus upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.pdu.bit_message import ReadCoilsRequest, ReadDiscreteInputsRequest
from pymodbus.pdu.register_message import ReadHoldingRegistersRequest, ReadInputRegistersRequest


class RequestHandler(Protocol):
    async def read(self, unit: int, func_code: int, address: int, count: int) -> list[int] | list[bool] | ExcCodes:
        """Values of a read (or the read part of a write), or the exception to answer."""

    async def write(
        self, unit: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        """None when the write is accepted, else the exception to answer."""


class DeviceContext(ModbusServerContext):
    """Forwards every request of one server to one simulated device."""

    def __init__(self, handler: RequestHandler) -> None:  # no super().__init__(): see the module docstring
        self.old_simulator = True
        self.simdevices = []
        self._devices = {}
        self.handler = handler

    async def async_getValues(  # pymodbus's name
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        return await self.handler.read(device_id, func_code, address, count)

    async def async_setValues(  # pymodbus's name
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        return await self.handler.write(device_id, func_code, address, values)

    def device_ids(self) -> list[int]:
        return []


# pymodbus refuses reads of more than 125 registers (2000 bits) while decoding them, with exception 01; a real
# device answers 03 (Modbus Application Protocol v1.1b3 §6.3: quantity out of range -> exception 03). These
# request classes lift the decoder's limit so that the device's own limit, and its exception, apply.
class _ReadHolding(ReadHoldingRegistersRequest):
    MAX_COUNT = 0xFFFF


class _ReadInput(ReadInputRegistersRequest):
    MAX_COUNT = 0xFFFF


class _ReadCoils(ReadCoilsRequest):
    MAX_COUNT = 0xFFFF


class _ReadDiscrete(ReadDiscreteInputsRequest):
    MAX_COUNT = 0xFFFF


UNCAPPED_READS = [_ReadHolding, _ReadInput, _ReadCoils, _ReadDiscrete]
