"""One simulated Modbus TCP device: a behaviour behind a profile's register map, with faults on demand.

Faults and forced values are set from Python at run time (tests, ``lifeline up``), on the event loop that runs
the device. Choices, made to look like field devices:

- a read that leaves every mapped block answers 02; a read larger than the device's limit answers 03;
- a write to an address without a writable point answers 02; a command the device ignores (a gate in local mode)
  is still accepted on the wire, as PLCs do: the state bits show what happened;
- a request for another unit id answers 0x0B (gateway target failed to respond), which a client tells apart from
  a dead link at once; or, with ``wrong_unit="silent"``, is not answered at all, as many Modbus TCP devices do;
- ``stop_answering()`` keeps connections open and never answers, so that clients time out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusTcpServer

from device_profiles import Profile, encode_point
from infra.clock import WallClock
from simulators.behaviours import Behaviour, Value
from simulators.modbus._context import UNCAPPED_READS, DeviceContext
from simulators.modbus._image import READ_FUNCTIONS, WRITE_FUNCTIONS, Image, RegisterMap, WriteRefused
from simulators.modbus._overrides import Overrides, Spike

log = logging.getLogger("lifeline.sim.modbus")


class ModbusDevice:
    """A behaviour served over Modbus TCP on ``host:port`` (port 0: a free port, known after ``start``)."""

    def __init__(
        self,
        device_id: str,
        profile: Profile,
        behaviour: Behaviour,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        unit_id: int = 1,
        max_registers: int | None = None,
        step_interval_s: float = 0.2,
        block_gap: int | None = None,
        clock: WallClock = time.time,
        wrong_unit: Literal["gateway", "silent"] = "gateway",
    ) -> None:
        if profile.modbus is None:
            raise ValueError(f"profile {profile.name!r} is not a Modbus profile")
        self.device_id = device_id
        self.profile = profile
        self.behaviour = behaviour
        self.host = host
        self.port = port
        self.unit_id = unit_id
        self.wrong_unit = wrong_unit
        self.map = RegisterMap(profile.modbus, block_gap)
        self.max_registers = max_registers or profile.modbus.max_registers_per_request
        self.max_bits = profile.modbus.max_bits_per_request
        self.step_interval_s = step_interval_s
        self.clock = clock
        self.overrides = Overrides()
        self.answering = True
        self.exception_code: ExcCodes | None = None
        self.delay_s = 0.0
        self.requests = 0  # answered or not
        self.writes = 0
        self._raw: dict[str, Value] = {}  # the behaviour's values at the last step
        self._values: dict[str, Value] = {}  # with overrides: what clients read
        self._echo: list[int] = []
        self._image: Image | None = None
        self._stepped_at = float("-inf")
        self._server: ModbusTcpServer | None = None

    # -- life cycle -------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on ``host:port``; with port 0 the port picked is in ``self.port`` afterwards."""
        self._server = ModbusTcpServer(
            DeviceContext(self),
            address=(self.host, self.port),
            ignore_missing_devices=True,  # how stop_answering() leaves a request unanswered
            custom_pdu=list(UNCAPPED_READS),
        )
        await self._server.serve_forever(background=True)
        sockets = getattr(self._server.transport, "sockets", None) or []
        if sockets:
            self.port = int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening and drop every connection."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]  # pymodbus leaves it unannotated

    # -- faults and values on demand ----------------------------------------------------------------------------
    def stuck(self, point: str) -> None:
        """``point`` keeps its present value until cleared."""
        self._check(point)
        self.overrides.stuck[point] = self.values()[point]
        self._image = None

    def spike(self, point: str, value: Value, reads: int = 1) -> None:
        """The next ``reads`` reads that touch ``point`` see ``value``."""
        self._check(point, value)
        self.overrides.spikes[point] = Spike(value, reads)
        self._image = None

    def set_value(self, point: str, value: Value) -> None:
        """Force ``point`` to ``value`` (over the behaviour) until cleared."""
        self._check(point, value)
        self.overrides.forced[point] = value
        self._image = None

    def clear(self, point: str | None = None) -> None:
        """Clear forced, stuck and spiked values of one point, or of all."""
        self.overrides.clear(point)
        self._image = None

    def act(self, event: Callable[[Behaviour], object]) -> None:
        """A field event on the behaviour now (a gate's selector to local, a motor trip); the next read shows it."""
        self.behaviour.step(self.clock())
        event(self.behaviour)
        self._stepped_at = float("-inf")
        self._image = None

    def stop_answering(self) -> None:
        """Accept connections and requests, answer none (clients time out)."""
        self.answering = False

    def resume(self) -> None:
        self.answering = True

    def exception(self, code: int) -> None:
        """Answer every request with Modbus exception ``code`` (e.g. 4 device failure, 6 busy)."""
        self.exception_code = ExcCodes(code)

    def clear_exception(self) -> None:
        self.exception_code = None

    def slow(self, delay_s: float) -> None:
        """Answer every request ``delay_s`` late (0: on time)."""
        self.delay_s = max(0.0, delay_s)

    def clear_faults(self) -> None:
        """Answer again, on time, without exceptions, with the behaviour's own values."""
        self.resume()
        self.clear_exception()
        self.slow(0.0)
        self.clear()

    def values(self) -> dict[str, Value]:
        """The engineering values a client reads now (overrides included)."""
        self._refresh(self.clock())
        return dict(self._values)

    def _check(self, point: str, value: Value | None = None) -> None:
        p = self.map.points.get(point)
        if p is None:
            raise KeyError(f"device {self.device_id!r} has no point {point!r}")
        if value is not None:
            encode_point(p, value)  # raises EncodeError now rather than on the next read

    # -- requests (called by the server context) --------------------------------------------------------------
    def _refresh(self, now: float) -> Image:
        if self._image is None or now - self._stepped_at >= self.step_interval_s:
            self._stepped_at = now
            self._raw = self.behaviour.step(now)
            self._image = None
        if self._image is None:
            self._values = self.overrides.apply(self._raw) if self.overrides else self._raw
            self._image = self.map.encode(self._values)
        return self._image

    async def _gate(self, unit: int) -> ExcCodes | None:
        """What every request goes through first: silence, delay, forced exception, unit id."""
        self.requests += 1
        if not self.answering:
            raise NoSuchIdException("not answering")  # the server, told to ignore missing devices, stays silent
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
            if not self.answering:
                raise NoSuchIdException("not answering")
        if self.exception_code is not None:
            return self.exception_code
        if unit != self.unit_id:
            if self.wrong_unit == "silent":
                raise NoSuchIdException(f"unit {unit}")  # not this device's: no answer
            return ExcCodes.GATEWAY_NO_RESPONSE
        return None

    async def read(self, unit: int, func_code: int, address: int, count: int) -> list[int] | list[bool] | ExcCodes:
        if func_code in (5, 6):  # the answer to a single write echoes the request (Modbus §6.5, §6.6)
            return [bool(v) for v in self._echo] if func_code == 5 else list(self._echo)
        # a write's read-back (FC 22, 23) is not delayed a second time
        if func_code in READ_FUNCTIONS and (refused := await self._gate(unit)) is not None:
            return refused
        function = READ_FUNCTIONS.get(func_code) or WRITE_FUNCTIONS.get(func_code)
        if function is None:
            return ExcCodes.ILLEGAL_FUNCTION
        limit = self.max_bits if function.is_bit else self.max_registers
        if not 1 <= count <= limit:
            return ExcCodes.ILLEGAL_VALUE
        image = self._refresh(self.clock())
        words = self.map.read(image, function, address, count)
        if words is None:
            return ExcCodes.ILLEGAL_ADDRESS
        if self.overrides.spikes and self.overrides.count_reads(
            p.name for p in self.map.points_in(function, address, count)
        ):
            self._image = None
        if function.is_bit:
            return [bool(w) for w in words]
        return words

    async def write(
        self, unit: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        if (refused := await self._gate(unit)) is not None:
            return refused
        function = WRITE_FUNCTIONS.get(func_code)
        if function is None:
            return ExcCodes.ILLEGAL_FUNCTION
        now = self.clock()
        image = self._refresh(now)
        try:
            updates = self.map.decode_write(image, function, address, values)
        except WriteRefused as exc:
            log.info("device=%s write refused: %s", self.device_id, exc)
            return ExcCodes.ILLEGAL_ADDRESS
        self.writes += 1
        self._echo = [int(v) for v in values]
        for point, value in updates:
            accepted = self.behaviour.write(point.name, value, now)
            log.info("device=%s write %s=%r %s", self.device_id, point.name, value, "done" if accepted else "ignored")
        self._image = None
        self._stepped_at = float("-inf")  # the next read shows the command's effect
        return None
