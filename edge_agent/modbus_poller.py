"""Poll one Modbus TCP device on its schedule: coalesced reads, decoding, bad quality and backoff on failure.

Each device runs in its own task with its own connection, so a slow or dead device never delays another.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException, ModbusIOException

from device_profiles import Function, Profile
from edge_agent.config import DeviceConfig, ModbusDefaults
from edge_agent.decode import Reading, bad, decode_block, with_derived
from edge_agent.planner import ReadRequest, explain_exception, plan, split
from edge_agent.stats import DeviceStats
from infra.clock import Clock
from telemetry import PointQuality, Sample

log = logging.getLogger("lifeline.edge.modbus")

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    10: "gateway path unavailable",
    11: "gateway target failed to respond",
}

GATEWAY_CODES = frozenset({10, 11})  # the gateway answered, the device behind it did not (or cannot be reached)
GATEWAY_HINT = "gateway: target did not answer (check unit id, RS-485 wiring, baud rate)"

SampleSink = Callable[[Sample], None]
StatusSink = Callable[[bool, str], None]


class ModbusClient(Protocol):
    """The part of pymodbus's AsyncModbusTcpClient the poller uses."""

    @property
    def connected(self) -> bool: ...

    async def connect(self) -> bool: ...

    def close(self) -> None: ...


class DeviceUnreachable(Exception):
    """No answer from the device (connection refused or lost, time-out); its points turn bad."""


class TargetSilent(DeviceUnreachable):
    """A gateway answered exception 0A or 0B: the device behind it did not answer. The link to the gateway is fine
    (kept open), and the read is not split: no smaller read would be answered either."""


@dataclass(slots=True)
class PollOutcome:
    readings: dict[str, Reading]
    reached: bool  # the device answered at least one request
    reason: str = ""


def default_client_factory(device: DeviceConfig, timeout_s: float) -> ModbusClient:
    assert device.host is not None
    client: ModbusClient = AsyncModbusTcpClient(
        device.host, port=device.port, timeout=timeout_s, retries=0, reconnect_delay=0, name=device.id
    )
    return client


class ModbusPoller:
    """Polls one device for the life of the agent; reports samples and online/offline changes."""

    def __init__(
        self,
        device: DeviceConfig,
        profile: Profile,
        defaults: ModbusDefaults,
        on_sample: SampleSink,
        on_status: StatusSink,
        clock: Clock,
        stats: DeviceStats,
        *,
        site: str = "",
        phase_s: float = 0.0,
        keep_lateness: int = 0,
        client_factory: Callable[[DeviceConfig, float], ModbusClient] = default_client_factory,
    ) -> None:
        assert profile.modbus is not None
        self.device = device
        self.profile = profile
        self.defaults = defaults
        self.interval = device.poll_interval_s or profile.poll_interval_s
        self.timeout = device.timeout_s or defaults.timeout_s
        self.requests: list[ReadRequest] = plan(profile.modbus)
        self.on_sample = on_sample
        self.on_status = on_status
        self.clock = clock
        self.stats = stats
        self.site = site
        self.phase_s = phase_s
        self.keep_lateness = keep_lateness
        if client_factory is default_client_factory and defaults.client == "lean":
            from edge_agent.modbus_client import lean_client_factory

            client_factory = lean_client_factory
        self.client_factory = client_factory
        self._tags = {**profile.tags, **device.tags}  # what derived points read their settings from (o2_ref)
        self.client: ModbusClient | None = None
        self.online: bool | None = None
        self.failures = 0
        self._answered = False  # whether the device answered anything on the present connection
        self._stopping = False

    # -- schedule -------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Poll until cancelled: on a fixed grid of ``interval``; after a failure, at the backoff's pace."""
        next_tick = self.clock.monotonic() + self.phase_s
        backoff = self.defaults.backoff_initial_s
        try:
            while not self._stopping:
                delay = next_tick - self.clock.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                started = self.clock.monotonic()
                self.stats.record_lateness(started - next_tick, self.keep_lateness)
                ok = await self.poll_once()
                now = self.clock.monotonic()
                if ok:
                    backoff = self.defaults.backoff_initial_s
                    next_tick += self.interval
                else:
                    next_tick = max(next_tick + self.interval, now + backoff)
                    backoff = min(backoff * 2, self.defaults.backoff_max_s)
                if next_tick < now:  # the poll took longer than the interval: skip the missed ticks
                    missed = int((now - next_tick) // self.interval) + 1
                    self.stats.overruns += missed
                    next_tick += missed * self.interval
        finally:
            self.close()

    def request_stop(self) -> None:
        """End ``run`` after the poll under way (a cancellation that pymodbus swallows cannot keep it alive)."""
        self._stopping = True

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    # -- one poll -------------------------------------------------------------------------------------------
    async def poll_once(self) -> bool:
        """Read every point once, publish a sample; True if the device answered."""
        ts_ms = int(self.clock.time() * 1000)
        self.stats.polls += 1
        if self.failures:
            self.stats.retries += 1
        try:
            client = await self._connected_client()
            outcome = await self._read_all(client)
        except DeviceUnreachable as exc:
            if not isinstance(exc, TargetSilent):
                self.close()
            outcome = PollOutcome({}, reached=False, reason=str(exc))
        if not outcome.reached:
            self.stats.poll_failures += 1
            self.stats.last_error = outcome.reason
            self.failures += 1
            readings = {name: bad(outcome.reason) for name in self.profile.point_names()}
        else:
            self.failures = 0
            readings = outcome.readings
        self._publish(ts_ms, readings)
        self._set_online(outcome.reached, outcome.reason)
        return outcome.reached

    async def _connected_client(self) -> ModbusClient:
        if self.client is not None and self.client.connected:
            return self.client
        self.close()
        client = self.client_factory(self.device, self.timeout)
        where = f"{self.device.host}:{self.device.port}"
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation (the agent's stop)
            async with asyncio.timeout(self.defaults.connect_timeout_s):
                ok = await client.connect()
        except TimeoutError as exc:
            client.close()
            raise DeviceUnreachable(f"no connection to {where} within {self.defaults.connect_timeout_s:g} s") from exc
        except OSError as exc:
            client.close()
            raise DeviceUnreachable(f"cannot connect to {where}: {exc.strerror or exc}") from exc
        if not ok:
            client.close()
            raise DeviceUnreachable(f"cannot connect to {where}")
        self.client = client
        self._answered = False
        return client

    async def _read_all(self, client: ModbusClient) -> PollOutcome:
        readings: dict[str, Reading] = {}
        queue = list(self.requests)
        reached = False
        while queue:
            request = queue.pop(0)
            self.stats.requests += 1
            response = await self._read(client, request)
            self.stats.answers += 1
            self._answered = True
            if not response.isError():
                reached = True
                data = response.bits if request.function.is_bit else response.registers
                readings.update(decode_block(request, data))
                continue
            self.stats.request_errors += 1
            code = int(getattr(response, "exception_code", 0))
            self.stats.exception(code)
            if code in GATEWAY_CODES:  # the device behind the gateway is silent: offline, and no split
                raise TargetSilent(f"{GATEWAY_HINT}; exception {code:02X} ({EXCEPTION_NAMES[code]})")
            reached = True
            parts = split(request)
            if len(parts) > 1:
                self._use_split(request, parts, code)
                self.stats.retries += len(parts)
                queue[:0] = parts
                continue
            reason = explain_exception(code, request, EXCEPTION_NAMES.get(code, "unknown"))
            self.stats.last_error = reason
            readings.update({p.name: bad(reason) for p in request.points})
        return PollOutcome(readings, reached)

    async def _read(self, client: ModbusClient, request: ReadRequest) -> Any:
        call = {
            Function.COIL: "read_coils",
            Function.DISCRETE_INPUT: "read_discrete_inputs",
            Function.HOLDING_REGISTER: "read_holding_registers",
            Function.INPUT_REGISTER: "read_input_registers",
        }[request.function]
        method = getattr(client, call)
        try:
            if getattr(client, "settles_every_read", False):  # the lean client: its answer, its timer or a lost link
                return await method(request.start, count=request.count, device_id=self.device.unit_id)
            # pymodbus times out by itself; the outer bound guards against a request that never settles
            async with asyncio.timeout(self.timeout + 1.0):
                return await method(request.start, count=request.count, device_id=self.device.unit_id)
        except (TimeoutError, ModbusIOException) as exc:  # ModbusIOException: pymodbus's time-out (retries=0)
            self.stats.request_errors += 1
            raise DeviceUnreachable(self._silence()) from exc
        except ModbusException as exc:
            self.stats.request_errors += 1
            raise DeviceUnreachable(f"no answer: {_short(exc)}") from exc
        except OSError as exc:
            self.stats.request_errors += 1
            raise DeviceUnreachable(f"connection lost: {exc.strerror or exc}") from exc

    def _silence(self) -> str:
        """Why a read got no answer: on a connection that never answered, most often a wrong unit id (a Modbus TCP
        device, or a gateway without exception 0B, stays silent for another unit id)."""
        if self._answered:
            return f"no answer within {self.timeout:g} s"
        return f"connected, no answer within {self.timeout:g} s: check the unit id (configured {self.device.unit_id})"

    def _use_split(self, request: ReadRequest, parts: list[ReadRequest], code: int) -> None:
        """The device refused a coalesced read: from now on read that block one address range at a time."""
        index = self.requests.index(request) if request in self.requests else -1
        if index >= 0:
            self.requests[index : index + 1] = parts
        log.warning(
            "device rejected a coalesced read site=%s device=%s request=%r exception=%d action=split into %d hint=%r",
            self.site,
            self.device.id,
            request.describe().splitlines()[0],
            code,
            len(parts),
            explain_exception(code, request, EXCEPTION_NAMES.get(code, "unknown")),
        )

    # -- reporting ------------------------------------------------------------------------------------------
    def _publish(self, ts_ms: int, readings: dict[str, Reading]) -> None:
        readings = with_derived(self.profile, self._tags, readings)  # O2-corrected values, loads, maintenance
        values = {name: value for name, (value, _) in readings.items()}
        quality: dict[str, PointQuality] = {name: q for name, (_, q) in readings.items() if q is not None}
        self.stats.readings += len(values)
        self.on_sample(Sample.model_construct(ts=ts_ms, values=values, quality=quality))

    def _set_online(self, reached: bool, reason: str) -> None:
        if not reached and self.failures < self.defaults.failures_before_offline:
            return
        self.stats.offline_reason = "" if reached else reason
        if self.online is reached:
            return
        self.online = reached
        if reached:
            log.info("device online site=%s device=%s", self.site, self.device.id)
        else:
            log.warning("device offline site=%s device=%s reason=%r", self.site, self.device.id, reason)
        self.on_status(reached, "" if reached else reason)


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.replace("Modbus Error: ", "")[:200]
