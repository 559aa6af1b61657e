"""Decode and encode point values from and to Modbus registers, in every data type and byte/word order.

Pure functions; the edge agent decodes with them, the simulators and command writers encode with them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from typing import Literal

from device_profiles.schema import DataType, ModbusPoint, Order

_STRUCT: dict[DataType, str] = {
    DataType.INT16: ">h",
    DataType.UINT16: ">H",
    DataType.INT32: ">i",
    DataType.UINT32: ">I",
    DataType.INT64: ">q",
    DataType.FLOAT32: ">f",
    DataType.FLOAT64: ">d",
}
_INTEGER = (DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32, DataType.INT64)

Raw = bool | int | float | str


class EncodeError(ValueError):
    """A value that the point's data type cannot carry."""


def words_to_bytes(words: Sequence[int], order: Order) -> bytes:
    """Bytes in canonical big-endian order (A first) from registers as they came off the wire."""
    if order in (Order.CDAB, Order.DCBA):
        words = list(reversed(words))
    byteorder: Literal["little", "big"] = "little" if order in (Order.BADC, Order.DCBA) else "big"
    return b"".join(w.to_bytes(2, byteorder) for w in words)


def bytes_to_words(data: bytes, order: Order) -> list[int]:
    """Registers to put on the wire from canonical big-endian bytes (the inverse of words_to_bytes)."""
    byteorder: Literal["little", "big"] = "little" if order in (Order.BADC, Order.DCBA) else "big"
    words = [int.from_bytes(data[i : i + 2], byteorder) for i in range(0, len(data), 2)]
    if order in (Order.CDAB, Order.DCBA):
        words.reverse()
    return words


def decode_raw(point: ModbusPoint, words: Sequence[int]) -> Raw:
    """The raw (unscaled) value of a register point from its ``point.count`` registers."""
    if len(words) != point.count:
        raise ValueError(f"point {point.name!r} needs {point.count} registers, got {len(words)}")
    kind = point.type
    if kind is DataType.BIT:
        assert point.bit is not None
        return bool((words[0] >> point.bit) & 1)
    if kind is DataType.BOOL:
        return words[0] != 0
    data = words_to_bytes(words, point.order)
    if kind is DataType.STRING:
        return data.rstrip(b"\x00 ").decode("utf-8", errors="replace")
    value: int | float = struct.unpack(_STRUCT[kind], data)[0]
    return value


def scale(raw: Raw, factor: float, offset: float) -> Raw:
    """Engineering value: raw × scale + offset for numbers; booleans and text pass through."""
    if isinstance(raw, bool | str):
        return raw
    if factor == 1.0 and offset == 0.0:
        return raw
    return raw * factor + offset


def decode_point(point: ModbusPoint, words: Sequence[int]) -> Raw:
    """The engineering value of a register point."""
    return scale(decode_raw(point, words), point.scale, point.offset)


def encode_point(point: ModbusPoint, value: Raw) -> list[int]:
    """Registers that make a device report ``value`` (engineering units) for a register point.

    Raises EncodeError naming the point when the value does not fit the data type.
    """
    kind = point.type
    if kind in (DataType.BOOL, DataType.BIT):
        if not isinstance(value, bool | int):
            raise EncodeError(f"point {point.name!r} is {kind.value}: {value!r} is not a boolean")
        if kind is DataType.BIT:
            assert point.bit is not None
            return [(1 << point.bit) if value else 0]
        return [1 if value else 0]
    if kind is DataType.STRING:
        try:
            text = str(value).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise EncodeError(f"point {point.name!r}: {value!r} is not encodable as UTF-8 ({exc.reason})") from exc
        size = point.count * 2
        if len(text) > size:
            raise EncodeError(f"point {point.name!r}: {value!r} is longer than {size} bytes")
        return bytes_to_words(text.ljust(size, b"\x00"), point.order)
    if isinstance(value, str):
        raise EncodeError(f"point {point.name!r} is {kind.value}: {value!r} is not a number")
    if kind in _INTEGER and isinstance(value, int) and point.scale == 1.0 and point.offset == 0.0:
        raw: int | float = value  # exact: float() would drop the low bits of an int64 beyond 2**53
    else:
        try:
            raw = (float(value) - point.offset) / point.scale
        except OverflowError as exc:
            raise EncodeError(f"point {point.name!r} is {kind.value}: {value!r} is too large") from exc
    if kind in _INTEGER:
        if not math.isfinite(raw):
            raise EncodeError(f"point {point.name!r} is {kind.value}: {value!r} is not finite")
        raw = round(raw)
    try:
        data = struct.pack(_STRUCT[kind], raw)
    except (struct.error, OverflowError) as exc:
        raise EncodeError(f"point {point.name!r}: {value!r} does not fit {kind.value} ({exc})") from exc
    return bytes_to_words(data, point.order)


def set_bit(word: int, bit: int, on: bool) -> int:
    """``word`` with one bit set or cleared (for several bit points sharing a register)."""
    return (word | (1 << bit)) if on else (word & ~(1 << bit) & 0xFFFF)
