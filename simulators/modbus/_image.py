"""A profile's register map as a device presents it: mapped blocks, the encoded register image, decoded writes.

Pure: no sockets, no clock. The server context reads slices of an image; building the image once per model step
keeps a read down to a dictionary look-up and a list slice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from device_profiles import Function, ModbusPoint, ModbusSpec, decode_point, encode_point
from device_profiles.registers import set_bit
from device_profiles.schema import DataType
from simulators.behaviours import Value

READ_FUNCTIONS: dict[int, Function] = {
    1: Function.COIL,
    2: Function.DISCRETE_INPUT,
    3: Function.HOLDING_REGISTER,
    4: Function.INPUT_REGISTER,
}
WRITE_FUNCTIONS: dict[int, Function] = {
    5: Function.COIL,
    15: Function.COIL,
    6: Function.HOLDING_REGISTER,
    16: Function.HOLDING_REGISTER,
    22: Function.HOLDING_REGISTER,
    23: Function.HOLDING_REGISTER,
}


@dataclass(frozen=True, slots=True)
class Block:
    """A run of addresses the device answers for (unmapped ones inside it read 0)."""

    function: Function
    start: int
    end: int  # inclusive

    def holds(self, address: int, count: int) -> bool:
        return self.start <= address and address + count - 1 <= self.end


# Per function: block start -> words (registers) or bits of that block.
Image = dict[Function, dict[int, list[int]]]


class WriteRefused(ValueError):
    """A write to an address that holds no writable point (the device answers exception 02)."""


class RegisterMap:
    """Blocks and point positions of one profile's Modbus map.

    Points of a function closer than ``block_gap`` addresses share a block, like the memory areas of a real
    device; the default is the profile's ``max_gap``, so every request the edge planner makes stays in a block. A
    ``reserved`` range of the profile always ends a block (the device has no registers there: a read across it
    answers 02).
    """

    def __init__(self, spec: ModbusSpec, block_gap: int | None = None) -> None:
        self.spec = spec
        gap = spec.max_gap if block_gap is None else block_gap
        self.points = {p.name: p for p in spec.points}
        self.blocks: dict[Function, list[Block]] = {}
        for function in Function:
            spans = sorted((p.address, p.address + p.count - 1) for p in spec.points if p.function is function)
            merged: list[list[int]] = []
            reserved = [r for r in spec.reserved if r.function is function]
            for start, end in spans:
                across = merged and any(r.overlaps(merged[-1][1] + 1, start) for r in reserved)
                if merged and start <= merged[-1][1] + gap + 1 and not across:
                    merged[-1][1] = max(merged[-1][1], end)
                else:
                    merged.append([start, end])
            self.blocks[function] = [Block(function, s, e) for s, e in merged]
        # where each point sits: (start of its block, offset in it), so that encoding does no searching
        self._slot: dict[str, tuple[int, int]] = {}
        for p in spec.points:
            block = self.block_of(p.function, p.address, p.count)
            assert block is not None
            self._slot[p.name] = (block.start, p.address - block.start)
        self._at: dict[tuple[Function, int], list[ModbusPoint]] = {}
        for p in spec.points:
            for addr in range(p.address, p.address + p.count):
                self._at.setdefault((p.function, addr), []).append(p)

    def block_of(self, function: Function, address: int, count: int) -> Block | None:
        """The block that holds the whole request, or None (exception 02)."""
        for block in self.blocks[function]:
            if block.holds(address, count):
                return block
        return None

    def points_in(self, function: Function, address: int, count: int) -> list[ModbusPoint]:
        found: dict[str, ModbusPoint] = {}
        for addr in range(address, address + count):
            for p in self._at.get((function, addr), ()):
                found[p.name] = p
        return list(found.values())

    def encode(self, values: Mapping[str, Value]) -> Image:
        """The register image for ``values`` (engineering units); bit points sharing a register are combined.

        Raises device_profiles.EncodeError if a value does not fit its point's type.
        """
        image: Image = {}
        for function, blocks in self.blocks.items():
            image[function] = {b.start: [0] * (b.end - b.start + 1) for b in blocks}
        for p in self.spec.points:
            value = values.get(p.name)
            if value is None:
                continue
            start, offset = self._slot[p.name]
            words = image[p.function][start]
            if p.type is DataType.BIT:
                assert p.bit is not None
                words[offset] = set_bit(words[offset], p.bit, bool(value))
                continue
            words[offset : offset + p.count] = encode_point(p, value)
        return image

    def read(self, image: Image, function: Function, address: int, count: int) -> list[int] | None:
        """Registers (or bits as 0/1) of a read request, or None when it leaves every block."""
        block = self.block_of(function, address, count)
        if block is None:
            return None
        offset = address - block.start
        return image[function][block.start][offset : offset + count]

    def decode_write(
        self, image: Image, function: Function, address: int, values: Sequence[int | bool]
    ) -> list[tuple[ModbusPoint, Value]]:
        """The point values a write sets, reading untouched words of multi-register points from ``image``.

        Raises WriteRefused if an address written holds no writable point.
        """
        count = len(values)
        block = self.block_of(function, address, count)
        if block is None:
            raise WriteRefused(f"{function.value} {address}..{address + count - 1} is outside the device's map")
        for addr in range(address, address + count):
            if not any(p.writable for p in self._at.get((function, addr), ())):
                raise WriteRefused(f"{function.value} {addr} holds no writable point")
        words = list(image[function][block.start])
        offset = address - block.start
        words[offset : offset + count] = [int(v) for v in values]
        out: list[tuple[ModbusPoint, Value]] = []
        for p in self.points_in(function, address, count):
            start = p.address - block.start
            out.append((p, decode_point(p, words[start : start + p.count])))
        return out
