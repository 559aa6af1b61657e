"""Request planning: read a device's points in as few Modbus requests as its limits allow.

Pure: no I/O. ``plan`` coalesces adjacent points of one function into blocks no longer than the profile's
``max_registers_per_request`` (``max_bits_per_request`` for coils and discrete inputs), joining points across at
most ``max_gap`` unused addresses. ``split`` turns a block the device rejected into one request per address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from device_profiles import Function, ModbusPoint, ModbusSpec

FUNCTION_CODE = {
    Function.COIL: 1,
    Function.DISCRETE_INPUT: 2,
    Function.HOLDING_REGISTER: 3,
    Function.INPUT_REGISTER: 4,
}


class PlanError(ValueError):
    """A point that no request within the device's limits can read."""


@dataclass(frozen=True, slots=True)
class ReadRequest:
    function: Function
    start: int
    count: int
    points: tuple[ModbusPoint, ...]

    @property
    def end(self) -> int:
        return self.start + self.count

    def describe(self) -> str:
        names = ", ".join(p.name for p in self.points)
        return (
            f"FC{FUNCTION_CODE[self.function]:02d} {self.function.value:<16} start={self.start:<5} "
            f"count={self.count:<4} points: {names}"
        )


def plan(spec: ModbusSpec, points: Iterable[ModbusPoint] | None = None) -> list[ReadRequest]:
    """The fewest requests that read ``points`` (default: all of the spec's) within the device's limits."""
    chosen = list(spec.points if points is None else points)
    requests: list[ReadRequest] = []
    for function in Function:
        group = sorted((p for p in chosen if p.function is function), key=lambda p: (p.address, p.count))
        if not group:
            continue
        limit = spec.max_bits_per_request if function.is_bit else spec.max_registers_per_request
        requests.extend(_coalesce(function, group, limit, spec.max_gap))
    return requests


def _coalesce(function: Function, group: list[ModbusPoint], limit: int, max_gap: int) -> list[ReadRequest]:
    out: list[ReadRequest] = []
    block: list[ModbusPoint] = []
    start = end = 0
    for p in group:
        if p.count > limit:
            raise PlanError(f"point {p.name!r} needs {p.count} registers, more than the {limit} a request may read")
        p_end = p.address + p.count
        if block and p.address - end <= max_gap and max(end, p_end) - start <= limit:
            block.append(p)
            end = max(end, p_end)
            continue
        if block:
            out.append(ReadRequest(function, start, end - start, tuple(block)))
        block, start, end = [p], p.address, p_end
    out.append(ReadRequest(function, start, end - start, tuple(block)))
    return out


def split(request: ReadRequest) -> list[ReadRequest]:
    """One request per distinct address range in ``request`` (bit points of one register stay together)."""
    by_range: dict[tuple[int, int], list[ModbusPoint]] = {}
    for p in request.points:
        by_range.setdefault((p.address, p.count), []).append(p)
    return [
        ReadRequest(request.function, start, count, tuple(points))
        for (start, count), points in sorted(by_range.items())
    ]
