"""Decode and encode point values from and to Modbus registers, in every data type and byte/word order.

Pure functions; the edge agent decodes with them, the simulators and command writers encode with them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from decimal import Decimal
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
_BCD = (DataType.BCD16, DataType.BCD32)
FLOAT32 = struct.Struct(">f")
SCALED_DIGITS = 15  # significant digits kept of a scaled float: a double's 15.95, less the last one's noise

Raw = bool | int | float | str


class EncodeError(ValueError):
    """A value that the point's data type cannot carry."""


class DecodeError(ValueError):
    """Registers that hold no value of the point's type (a BCD nibble above 9); the message is the reason."""


def decimals_of(number: float) -> int:
    """Decimal places of a number as written: 0.1 -> 1, 0.001 -> 3, 2.5 -> 1, 10 -> 0."""
    exponent = Decimal(repr(number)).as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def shortest_float32(value: float) -> float:
    """The shortest decimal that is the same float32 (28.700000762939453 -> 28.7): what the device meant."""
    if not math.isfinite(value):
        return value
    exact = FLOAT32.pack(value)
    for digits in range(6, 10):  # 9 digits always identify a float32 (IEEE 754-2008 §5.12.2)
        candidate = float(f"{value:.{digits}g}")
        if FLOAT32.pack(candidate) == exact:
            return candidate
    return value


def precision(point: ModbusPoint) -> tuple[int | None, int | None]:
    """(decimals, significant digits) a point's published values are rounded to; None: not rounded.

    Declared ``decimals`` win. Otherwise an integer or BCD register with a scale or offset carries exactly the
    decimals of its scale and offset (287 × 0.1 is published 28.7, not 28.700000000000003), and a scaled float
    15 significant digits. (A float32 is first read as the shortest decimal of that float32: ``shortest_float32``.)"""
    if point.decimals is not None:
        return point.decimals, None
    if point.scale == 1.0 and point.offset == 0.0:
        return None, None
    if point.type in _INTEGER or point.type in _BCD:
        return max(decimals_of(point.scale), decimals_of(point.offset)), None
    return None, SCALED_DIGITS


def rounded(value: float, places: int | None, digits: int | None) -> float:
    """``value`` rounded to ``places`` decimals or ``digits`` significant digits (``precision``)."""
    if places is not None:
        return round(value, places)
    if digits is not None and math.isfinite(value):
        return float(f"{value:.{digits}g}")
    return value


def bcd_to_int(data: bytes) -> int:
    """The number of packed BCD bytes (0x12 0x34 -> 1234); DecodeError on a nibble above 9."""
    text = data.hex()
    if not text.isdigit():
        raise DecodeError(f"0x{text} is not BCD (a digit above 9)")
    return int(text)


def int_to_bcd(value: int, size: int) -> bytes:
    """``size`` bytes of packed BCD for a non-negative ``value`` (EncodeError if it has too many digits)."""
    if value < 0 or value >= 10 ** (2 * size):
        raise EncodeError(f"{value} does not fit {2 * size} BCD digits")
    return bytes.fromhex(f"{value:0{2 * size}d}")


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
    if kind in _BCD:
        return bcd_to_int(data)
    value: int | float = struct.unpack(_STRUCT[kind], data)[0]
    return shortest_float32(value) if kind is DataType.FLOAT32 else value


def scale(raw: Raw, factor: float, offset: float) -> Raw:
    """Engineering value: raw × scale + offset for numbers; booleans and text pass through."""
    if isinstance(raw, bool | str):
        return raw
    if factor == 1.0 and offset == 0.0:
        return raw
    return raw * factor + offset


def decode_point(point: ModbusPoint, words: Sequence[int]) -> Raw:
    """The engineering value of a register point, rounded to its precision (``precision``)."""
    value = scale(decode_raw(point, words), point.scale, point.offset)
    if isinstance(value, float):
        places, digits = precision(point)
        return rounded(value, places, digits)
    return value


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
    if kind in _INTEGER + _BCD and isinstance(value, int) and point.scale == 1.0 and point.offset == 0.0:
        raw: int | float = value  # exact: float() would drop the low bits of an int64 beyond 2**53
    else:
        try:
            raw = (float(value) - point.offset) / point.scale
        except OverflowError as exc:
            raise EncodeError(f"point {point.name!r} is {kind.value}: {value!r} is too large") from exc
    if kind in _INTEGER or kind in _BCD:
        if not math.isfinite(raw):
            raise EncodeError(f"point {point.name!r} is {kind.value}: {value!r} is not finite")
        raw = round(raw)
    if kind in _BCD:
        try:
            return bytes_to_words(int_to_bcd(int(raw), point.count * 2), point.order)
        except EncodeError as exc:
            raise EncodeError(f"point {point.name!r}: {value!r} ({exc})") from None
    try:
        data = struct.pack(_STRUCT[kind], raw)
    except (struct.error, OverflowError) as exc:
        raise EncodeError(f"point {point.name!r}: {value!r} does not fit {kind.value} ({exc})") from exc
    return bytes_to_words(data, point.order)


def set_bit(word: int, bit: int, on: bool) -> int:
    """``word`` with one bit set or cleared (for several bit points sharing a register)."""
    return (word | (1 << bit)) if on else (word & ~(1 << bit) & 0xFFFF)
