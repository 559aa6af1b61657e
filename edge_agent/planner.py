"""Request planning: read a device's points in as few Modbus requests as its limits allow.

Pure: no I/O. ``plan`` coalesces adjacent points of one function into blocks no longer than the profile's
``max_registers_per_request`` (``max_bits_per_request`` for coils and discrete inputs), joining points across at
most ``max_gap`` unused addresses and never across a ``reserved`` range (addresses the device does not have: a
read that spans them is refused with exception 02). ``split`` turns a block the device rejected into one request
per address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from device_profiles import Function, ModbusPoint, ModbusSpec
from device_profiles.addresses import modicon
from device_profiles.schema import ReservedRange

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
        """Two lines: the request on the wire, then each point's address as the manual writes it (and the wire's)."""
        names = ", ".join(p.name for p in self.points)
        manual = ", ".join(f"{p.name} {manual_address(p)} (wire {p.address})" for p in self.points)
        return (
            f"FC{FUNCTION_CODE[self.function]:02d} {self.function.value:<16} start={self.start:<5} "
            f"count={self.count:<4} points: {names}\n      manual: {manual}"
        )

    def span(self) -> str:
        """The request's addresses as Modicon references, e.g. 40001..40016."""
        first, last = modicon(self.function, self.start), modicon(self.function, self.end - 1)
        return first if self.count == 1 else f"{first}..{last}"


def manual_address(point: ModbusPoint) -> str:
    """A point's address as its profile wrote it (40001, 1000H, 12 with address_base 1), else its Modicon reference."""
    return point.written_as or modicon(point.function, point.address)


def plan(spec: ModbusSpec, points: Iterable[ModbusPoint] | None = None) -> list[ReadRequest]:
    """The fewest requests that read ``points`` (default: all of the spec's) within the device's limits."""
    chosen = list(spec.points if points is None else points)
    requests: list[ReadRequest] = []
    for function in Function:
        group = sorted((p for p in chosen if p.function is function), key=lambda p: (p.address, p.count))
        if not group:
            continue
        limit = spec.max_bits_per_request if function.is_bit else spec.max_registers_per_request
        reserved = [r for r in spec.reserved if r.function is function]
        requests.extend(_coalesce(function, group, limit, spec.max_gap, reserved))
    return requests


def _coalesce(
    function: Function, group: list[ModbusPoint], limit: int, max_gap: int, reserved: list[ReservedRange]
) -> list[ReadRequest]:
    out: list[ReadRequest] = []
    block: list[ModbusPoint] = []
    start = end = 0
    for p in group:
        if p.count > limit:
            raise PlanError(f"point {p.name!r} needs {p.count} registers, more than the {limit} a request may read")
        p_end = p.address + p.count
        joins = bool(block) and p.address - end <= max_gap and max(end, p_end) - start <= limit
        if joins and not any(r.overlaps(end, p.address) for r in reserved):
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


def explain_exception(code: int, request: ReadRequest, name: str) -> str:
    """A read's exception, and for 01/02/03 where and what to change (the point's bad reason, and the log's hint on
    a refused block), e.g. "modbus exception 2 (illegal data address) reading FC03 40017..40032 (wire 16, 16
    registers): the read spans addresses the device does not have: declare them in modbus.reserved or lower
    max_gap"."""
    head = f"modbus exception {code} ({name})"
    if code not in (1, 2, 3):
        return head
    fc = FUNCTION_CODE[request.function]
    what = "bits" if request.function.is_bit else "registers"
    head += f" reading FC{fc:02d} {request.span()} (wire {request.start}, {request.count} {what})"
    block = len({(p.address, p.count) for p in request.points}) > 1
    limit = "max_bits_per_request" if request.function.is_bit else "max_registers_per_request"
    if code == 1:
        if block:
            return f"{head}: the device may refuse reads this long: set {limit} below {request.count}"
        return f"{head}: the device does not serve this function here: check the point's function (input or holding)"
    if code == 2:
        if block:
            return f"{head}: the read spans addresses the device does not have: declare them reserved or lower max_gap"
        return (
            f"{head}: the device has no such address: check it against the manual (address_base: 1 if it counts from 1)"
        )
    if block:
        return f"{head}: the device refuses reading {request.count} at once: set {limit} below {request.count}"
    return f"{head}: check the point's type and length ({request.count} {what})"
