"""A lean Modbus TCP client for reads (FC 1-4): one asyncio protocol, no framer stack, no timer a request.

``modbus.client: lean`` in the site config. The poller's per-read cost with pymodbus (its transaction manager,
framer and PDU classes; an ``asyncio.wait_for`` a request) is most of an agent's CPU at thousands of devices; this
client answers the same calls (``read_input_registers(start, count=, device_id=)`` and the other three reads) with
the same kind of response (``isError()``, ``registers``/``bits``, ``exception_code``) and raises pymodbus's
``ModbusIOException`` on a time-out and ``ConnectionError`` when the connection goes, so the poller's handling of
exceptions, splits and backoff is the same for both. Writes (the gates) stay with pymodbus (``edge_agent._gate_io``).
"""

from __future__ import annotations

import asyncio
import struct
import weakref
from dataclasses import dataclass, field

from pymodbus.exceptions import ModbusIOException

from edge_agent.config import DeviceConfig

_HEADER = struct.Struct(">HHHBBHH")  # transaction, protocol, length, unit, function, start, count


@dataclass(slots=True)
class ReadResponse:
    function: int
    registers: list[int] = field(default_factory=list)
    bits: list[bool] = field(default_factory=list)
    exception_code: int = 0

    def isError(self) -> bool:  # pymodbus's name: the poller calls it
        return self.exception_code != 0


class _Protocol(asyncio.Protocol):
    def __init__(self, client: LeanModbusClient) -> None:
        self.client = client
        self.buf = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.client._transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while len(buf) >= 8:
            length = (buf[4] << 8) | buf[5]
            end = 6 + length
            if len(buf) < end:
                break
            self.client._answer((buf[0] << 8) | buf[1], buf[7:end])
            buf = buf[end:]
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.client._lost(exc)


SWEEP_S = 0.05  # how often a loop's read deadlines are looked at: a time-out fires up to this much late


class _Deadlines:
    """The read deadlines of one event loop's lean clients, looked at every SWEEP_S by one timer while any is
    pending (measured: a timer a read, made and cancelled, was the largest cost of a worker after decoding)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.pending: dict[LeanModbusClient, float] = {}
        self._handle: asyncio.TimerHandle | None = None

    def add(self, client: LeanModbusClient, deadline: float) -> None:
        self.pending[client] = deadline
        if self._handle is None:
            self._handle = self.loop.call_later(SWEEP_S, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        now = self.loop.time()
        late = [client for client, deadline in self.pending.items() if deadline <= now]
        for client in late:
            del self.pending[client]
            client._timed_out()
        if self.pending:
            self._handle = self.loop.call_later(SWEEP_S, self._sweep)


_deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines] = weakref.WeakKeyDictionary()


def _deadlines_of(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    found = _deadlines.get(loop)
    if found is None:
        found = _deadlines[loop] = _Deadlines(loop)
    return found


class LeanModbusClient:
    """One device's connection; one request at a time (the poller awaits each read)."""

    # every read ends by itself: with the answer, at its deadline, or when the connection goes (so the poller
    # need not put a second timer around it)
    settles_every_read = True

    def __init__(self, host: str, port: int, timeout_s: float) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deadlines: _Deadlines | None = None
        self._tid = 0
        self._pending: tuple[int, int, int, asyncio.Future[ReadResponse]] | None = None  # tid, fc, count, future

    @property
    def connected(self) -> bool:
        return self._transport is not None and not self._transport.is_closing()

    async def connect(self) -> bool:
        loop = asyncio.get_running_loop()
        self._loop, self._deadlines = loop, _deadlines_of(loop)  # once: a read asks for neither again
        await loop.create_connection(lambda: _Protocol(self), self.host, self.port)
        return self.connected

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        self._fail(ConnectionError("connection closed"))

    async def read_coils(self, address: int, *, count: int = 1, device_id: int = 1) -> ReadResponse:
        return await self._read(1, address, count, device_id)

    async def read_discrete_inputs(self, address: int, *, count: int = 1, device_id: int = 1) -> ReadResponse:
        return await self._read(2, address, count, device_id)

    async def read_holding_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> ReadResponse:
        return await self._read(3, address, count, device_id)

    async def read_input_registers(self, address: int, *, count: int = 1, device_id: int = 1) -> ReadResponse:
        return await self._read(4, address, count, device_id)

    async def _read(self, function: int, address: int, count: int, unit: int) -> ReadResponse:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise ConnectionError("not connected")
        loop, deadlines = self._loop, self._deadlines
        assert loop is not None  # set by connect, before there is a transport
        assert deadlines is not None
        self._tid = tid = (self._tid + 1) & 0xFFFF
        future: asyncio.Future[ReadResponse] = loop.create_future()
        self._pending = (tid, function, count, future)
        transport.write(_HEADER.pack(tid, 0, 6, unit, function, address, count))
        deadlines.add(self, loop.time() + self.timeout_s)
        try:
            return await future
        finally:
            deadlines.pending.pop(self, None)
            if self._pending is not None and self._pending[3] is future:
                self._pending = None

    def _timed_out(self) -> None:
        pending = self._pending
        if pending is not None and not pending[3].done():
            pending[3].set_exception(ModbusIOException(f"no answer within {self.timeout_s:g} s"))
            self.close()  # a late answer must not be taken for the next request's

    def _answer(self, tid: int, pdu: bytes) -> None:
        pending = self._pending
        if pending is None or pending[0] != tid or pending[3].done() or not pdu:
            return  # a late or unknown answer
        _, function, count, future = pending
        self._pending = None
        fc = pdu[0]
        if fc == function | 0x80:
            future.set_result(ReadResponse(function, exception_code=pdu[1] if len(pdu) > 1 else 4))
        elif fc != function or len(pdu) < 2 or len(pdu) < 2 + pdu[1]:
            future.set_exception(ModbusIOException(f"malformed answer to function {function}"))
        elif function <= 2:
            data = pdu[2 : 2 + pdu[1]]
            bits = [bool((data[i >> 3] >> (i & 7)) & 1) for i in range(min(count, 8 * len(data)))]
            future.set_result(ReadResponse(function, bits=bits))
        else:
            n = pdu[1] >> 1
            future.set_result(ReadResponse(function, registers=list(struct.unpack_from(f">{n}H", pdu, 2))))

    def _lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._fail(ConnectionError(f"connection lost: {exc}" if exc else "connection lost"))

    def _fail(self, exc: Exception) -> None:
        pending, self._pending = self._pending, None
        if pending is not None and not pending[3].done():
            pending[3].set_exception(exc)


def lean_client_factory(device: DeviceConfig, timeout_s: float) -> LeanModbusClient:
    assert device.host is not None
    return LeanModbusClient(device.host, device.port, timeout_s)
