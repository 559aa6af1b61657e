"""Register decoding and encoding: every data type in every byte/word order, scaling, bits, strings, limits.

The golden register words below were worked out by hand from the big-endian bytes A B C D (E F G H) of each
value; they are data, not output of the code under test. ABCD: words as they are; CDAB: word order reversed;
BADC: bytes swapped inside each word; DCBA: both.
"""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from device_profiles import DataType, EncodeError, ModbusPoint, Order, decode_point, encode_point

FAST = settings(max_examples=60, deadline=None)

ORDERS = list(Order)
INT_RANGE: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
}


def point(type_: DataType | str, order: Order | str = Order.ABCD, **kw: object) -> ModbusPoint:
    """A holding-register point named 'p' of the given type."""
    fields: dict[str, object] = {
        "name": "p",
        "function": "holding_register",
        "address": 0,
        "type": type_,
        "order": order,
        **kw,
    }
    if DataType(type_) is DataType.BIT:
        fields.setdefault("bit", 0)
    if DataType(type_) is DataType.STRING:
        fields.setdefault("length", 2)
    return ModbusPoint.model_validate(fields)


# type, value, {order: words on the wire}
GOLDEN: list[tuple[DataType, int | float | str, dict[Order, list[int]]]] = [
    # int16 -12345 = 0xCFC7
    (DataType.INT16, -12345, {Order.ABCD: [0xCFC7], Order.CDAB: [0xCFC7], Order.BADC: [0xC7CF], Order.DCBA: [0xC7CF]}),
    # uint16 43981 = 0xABCD
    (DataType.UINT16, 43981, {Order.ABCD: [0xABCD], Order.CDAB: [0xABCD], Order.BADC: [0xCDAB], Order.DCBA: [0xCDAB]}),
    # bcd16 1234 = 0x1234 (a digit a nibble)
    (DataType.BCD16, 1234, {Order.ABCD: [0x1234], Order.CDAB: [0x1234], Order.BADC: [0x3412], Order.DCBA: [0x3412]}),
    # bcd32 12345678 = 0x1234_5678 (an hour counter; CDAB: low word first)
    (
        DataType.BCD32,
        12345678,
        {
            Order.ABCD: [0x1234, 0x5678],
            Order.CDAB: [0x5678, 0x1234],
            Order.BADC: [0x3412, 0x7856],
            Order.DCBA: [0x7856, 0x3412],
        },
    ),
    # int32 -123456789 = 0xF8A4_32EB
    (
        DataType.INT32,
        -123456789,
        {
            Order.ABCD: [0xF8A4, 0x32EB],
            Order.CDAB: [0x32EB, 0xF8A4],
            Order.BADC: [0xA4F8, 0xEB32],
            Order.DCBA: [0xEB32, 0xA4F8],
        },
    ),
    # uint32 305419896 = 0x1234_5678
    (
        DataType.UINT32,
        305419896,
        {
            Order.ABCD: [0x1234, 0x5678],
            Order.CDAB: [0x5678, 0x1234],
            Order.BADC: [0x3412, 0x7856],
            Order.DCBA: [0x7856, 0x3412],
        },
    ),
    # int64 0x0102_0304_0506_0708: CDAB on four registers means least significant word first
    (
        DataType.INT64,
        0x0102030405060708,
        {
            Order.ABCD: [0x0102, 0x0304, 0x0506, 0x0708],
            Order.CDAB: [0x0708, 0x0506, 0x0304, 0x0102],
            Order.BADC: [0x0201, 0x0403, 0x0605, 0x0807],
            Order.DCBA: [0x0807, 0x0605, 0x0403, 0x0201],
        },
    ),
    # int64 -1234567890123456789 = 0xEEDD_EF0B_8216_7EEB
    (
        DataType.INT64,
        -1234567890123456789,
        {
            Order.ABCD: [0xEEDD, 0xEF0B, 0x8216, 0x7EEB],
            Order.CDAB: [0x7EEB, 0x8216, 0xEF0B, 0xEEDD],
            Order.BADC: [0xDDEE, 0x0BEF, 0x1682, 0xEB7E],
            Order.DCBA: [0xEB7E, 0x1682, 0x0BEF, 0xDDEE],
        },
    ),
    # float32 123.456 = 0x42F6_E979
    (
        DataType.FLOAT32,
        123.456,
        {
            Order.ABCD: [0x42F6, 0xE979],
            Order.CDAB: [0xE979, 0x42F6],
            Order.BADC: [0xF642, 0x79E9],
            Order.DCBA: [0x79E9, 0xF642],
        },
    ),
    # float32 -0.5 = 0xBF00_0000
    (
        DataType.FLOAT32,
        -0.5,
        {
            Order.ABCD: [0xBF00, 0x0000],
            Order.CDAB: [0x0000, 0xBF00],
            Order.BADC: [0x00BF, 0x0000],
            Order.DCBA: [0x0000, 0x00BF],
        },
    ),
    # float64 -1234.5678 = 0xC093_4A45_6D5C_FAAD
    (
        DataType.FLOAT64,
        -1234.5678,
        {
            Order.ABCD: [0xC093, 0x4A45, 0x6D5C, 0xFAAD],
            Order.CDAB: [0xFAAD, 0x6D5C, 0x4A45, 0xC093],
            Order.BADC: [0x93C0, 0x454A, 0x5C6D, 0xADFA],
            Order.DCBA: [0xADFA, 0x5C6D, 0x454A, 0x93C0],
        },
    ),
    # string "LIFE" = 4C 49 46 45 on two registers
    (
        DataType.STRING,
        "LIFE",
        {
            Order.ABCD: [0x4C49, 0x4645],
            Order.CDAB: [0x4645, 0x4C49],
            Order.BADC: [0x494C, 0x4546],
            Order.DCBA: [0x4546, 0x494C],
        },
    ),
]

GOLDEN_ROWS = [
    pytest.param(type_, order, value, words, id=f"{type_.value}-{value}-{order.value}")
    for type_, value, by_order in GOLDEN
    for order, words in by_order.items()
]


def test_golden_table_covers_every_type_and_order() -> None:
    covered = {(type_, order) for type_, _, by_order in GOLDEN for order in by_order}
    multi_byte = set(DataType) - {DataType.BOOL, DataType.BIT}
    assert covered == {(t, o) for t in multi_byte for o in Order}


@pytest.mark.parametrize(("type_", "order", "value", "words"), GOLDEN_ROWS)
def test_decode_golden_words(type_: DataType, order: Order, value: int | float | str, words: list[int]) -> None:
    decoded = decode_point(point(type_, order), words)
    if type_ is DataType.FLOAT32:
        assert decoded == pytest.approx(value, rel=2**-23)
    else:
        assert decoded == value
        assert type(decoded) is type(value)


@pytest.mark.parametrize(("type_", "order", "value", "words"), GOLDEN_ROWS)
def test_encode_golden_words(type_: DataType, order: Order, value: int | float | str, words: list[int]) -> None:
    assert encode_point(point(type_, order), value) == words


@pytest.mark.parametrize(
    ("type_", "words", "expected"),
    [
        pytest.param("int16", [0xFFFF], -1, id="int16-minus-one"),
        pytest.param("int16", [0x8000], -32768, id="int16-min"),
        pytest.param("int16", [0x7FFF], 32767, id="int16-max"),
        pytest.param("uint16", [0xFFFF], 65535, id="uint16-all-ones-is-not-negative"),
        pytest.param("int32", [0xFFFF, 0xFFFF], -1, id="int32-minus-one"),
        pytest.param("int32", [0x8000, 0x0000], -(2**31), id="int32-min"),
        pytest.param("uint32", [0xFFFF, 0xFFFF], 2**32 - 1, id="uint32-all-ones-is-not-negative"),
        pytest.param("int64", [0x8000, 0, 0, 0], -(2**63), id="int64-min"),
        pytest.param("int64", [0x7FFF, 0xFFFF, 0xFFFF, 0xFFFF], 2**63 - 1, id="int64-max-exact"),
        pytest.param("float32", [0xC2F6, 0xE979], pytest.approx(-123.456, rel=2**-23), id="float32-negative"),
        pytest.param("float64", [0xBFF0, 0, 0, 0], -1.0, id="float64-minus-one"),
    ],
)
def test_decode_negative_and_extreme_numbers(type_: str, words: list[int], expected: object) -> None:
    assert decode_point(point(type_), words) == expected


@pytest.mark.parametrize(
    ("type_", "scaling", "words", "expected"),
    [
        pytest.param("int16", {"scale": 0.1}, [0xFF9C], -10.0, id="int16-scale-0.1-negative-becomes-float"),
        pytest.param("uint16", {"scale": 0.001}, [0x0DAC], 3.5, id="uint16-millimetres-to-metres"),
        pytest.param("uint16", {"scale": 0.1, "offset": -40}, [0x0190], 0.0, id="scale-then-offset"),
        pytest.param("int32", {"scale": 10}, [0x0000, 0x0007], 70.0, id="scale-above-one-still-float"),
        pytest.param("float32", {"offset": 273.15}, [0x0000, 0x0000], 273.15, id="float-with-offset"),
        pytest.param("bool", {"scale": 10}, [1], True, id="bool-is-never-scaled"),
        pytest.param("string", {"scale": 0.1, "length": 1}, [0x4142], "AB", id="string-is-never-scaled"),
    ],
)
def test_decode_scales_and_offsets(type_: str, scaling: dict[str, float], words: list[int], expected: object) -> None:
    decoded = decode_point(point(type_, Order.ABCD, **scaling), words)
    assert decoded == (pytest.approx(expected) if isinstance(expected, float) else expected)
    assert type(decoded) is type(expected)


@pytest.mark.parametrize("type_", ["int16", "uint16", "int32", "uint32", "int64"])
def test_unit_scale_and_zero_offset_keep_an_int(type_: str) -> None:
    decoded = decode_point(point(type_, scale=1, offset=0), [0] * (point(type_).count - 1) + [42])
    assert decoded == 42
    assert type(decoded) is int


@pytest.mark.parametrize(
    ("bit", "word", "expected"),
    [
        pytest.param(0, 0x0001, True, id="bit0-set"),
        pytest.param(0, 0xFFFE, False, id="bit0-clear-all-others-set"),
        pytest.param(15, 0x8000, True, id="bit15-set"),
        pytest.param(15, 0x7FFF, False, id="bit15-clear-all-others-set"),
        pytest.param(7, 0x0080, True, id="bit7-set"),
        pytest.param(8, 0x0080, False, id="bit8-is-not-bit7"),
    ],
)
@pytest.mark.parametrize("order", ORDERS)
def test_decode_bit_of_a_register(bit: int, word: int, expected: bool, order: Order) -> None:
    # Bits are numbered in the register's value as read, so the byte order does not move them.
    assert decode_point(point("bit", order, bit=bit), [word]) is expected


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        pytest.param(0x0000, False, id="zero-is-false"),
        pytest.param(0x0001, True, id="one-is-true"),
        pytest.param(0x0100, True, id="high-byte-only-is-true"),
        pytest.param(0xFFFF, True, id="all-ones-is-true"),
    ],
)
@pytest.mark.parametrize("order", ORDERS)
def test_decode_bool_on_a_register(word: int, expected: bool, order: Order) -> None:
    assert decode_point(point("bool", order), [word]) is expected


def test_decode_bool_coil() -> None:
    coil = ModbusPoint(name="c", function="coil", address=0, type="bool")
    assert decode_point(coil, [1]) is True
    assert decode_point(coil, [0]) is False


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        pytest.param([0x4142, 0x0000], "AB", id="trailing-nuls-stripped"),
        pytest.param([0x4142, 0x2020], "AB", id="trailing-spaces-stripped"),
        pytest.param([0x4142, 0x2000], "AB", id="trailing-space-then-nul-stripped"),
        pytest.param([0x4120, 0x4200], "A B", id="inner-space-kept"),
        pytest.param([0x2041, 0x4200], " AB", id="leading-space-kept"),
        pytest.param([0x0000, 0x0000], "", id="all-nuls-empty"),
        pytest.param([0xC2B0, 0x4300], "°C", id="utf8-text"),
    ],
)
def test_decode_string(words: list[int], expected: str) -> None:
    assert decode_point(point("string", length=2), words) == expected


@pytest.mark.parametrize(
    ("type_", "words"),
    [
        pytest.param("float32", [0x42F6], id="float32-one-register-short"),
        pytest.param("int16", [1, 2], id="int16-one-register-too-many"),
        pytest.param("int64", [1, 2, 3], id="int64-three-of-four"),
        pytest.param("string", [0x4142], id="string-shorter-than-length"),
        pytest.param("bool", [], id="bool-no-register"),
    ],
)
def test_wrong_register_count_is_refused(type_: str, words: list[int]) -> None:
    with pytest.raises(ValueError, match=r"point 'p' needs \d+ registers, got \d+"):
        decode_point(point(type_), words)


# Round trips -----------------------------------------------------------------------------------------------------

orders = st.sampled_from(ORDERS)


@FAST
@given(data=st.data(), type_=st.sampled_from(list(INT_RANGE)), order=orders)
def test_round_trip_integers(data: st.DataObject, type_: DataType, order: Order) -> None:
    lo, hi = INT_RANGE[type_]
    value = data.draw(st.integers(lo, hi))
    p = point(type_, order)
    words = encode_point(p, value)
    assert len(words) == p.count
    assert all(0 <= w <= 0xFFFF for w in words)
    assert decode_point(p, words) == value


@FAST
@given(value=st.floats(width=32, allow_nan=False), order=orders)
def test_round_trip_float32_exact_for_float32_values(value: float, order: Order) -> None:
    """The decoded value is the same float32 (written as its shortest decimal: 28.7, not 28.700000762939453)."""
    decoded = decode_point(point("float32", order), encode_point(point("float32", order), value))
    assert isinstance(decoded, float)
    assert struct.pack(">f", decoded) == struct.pack(">f", value)
    assert len(repr(decoded)) <= len(repr(value))


@FAST
@given(value=st.floats(min_value=-3.4e38, max_value=3.4e38), order=orders)
def test_round_trip_float32_within_float32_precision(value: float, order: Order) -> None:
    p = point("float32", order)
    # half an ulp to the float32, and up to half an ulp more to its shortest decimal (the value published)
    assert decode_point(p, encode_point(p, value)) == pytest.approx(value, rel=2**-23, abs=1.5e-45)


@FAST
@given(value=st.floats(allow_nan=False), order=orders)
def test_round_trip_float64_exact(value: float, order: Order) -> None:
    p = point("float64", order)
    assert decode_point(p, encode_point(p, value)) == value


@FAST
@given(
    data=st.data(),
    type_=st.sampled_from([DataType.INT16, DataType.UINT16, DataType.INT32, DataType.UINT32]),
    order=orders,
    factor=st.sampled_from([0.1, 0.01, 0.001, 0.5, 10.0]),
    offset=st.sampled_from([0.0, -40.0, 273.15]),
)
def test_round_trip_scaled_integers_within_half_a_step(
    data: st.DataObject, type_: DataType, order: Order, factor: float, offset: float
) -> None:
    lo, hi = INT_RANGE[type_]
    value = data.draw(st.floats(min_value=lo * factor + offset, max_value=hi * factor + offset))
    p = point(type_, order, scale=factor, offset=offset)
    decoded = decode_point(p, encode_point(p, value))
    assert isinstance(decoded, float)
    assert abs(decoded - value) <= factor / 2 * (1 + 1e-9) + 1e-12 * abs(value)


@FAST
@given(on=st.booleans(), bit=st.integers(0, 15), order=orders)
def test_round_trip_bits(on: bool, bit: int, order: Order) -> None:
    p = point("bit", order, bit=bit)
    words = encode_point(p, on)
    assert words == [(1 << bit) if on else 0]
    assert decode_point(p, words) is on


@FAST
@given(on=st.booleans(), order=orders)
def test_round_trip_bool(on: bool, order: Order) -> None:
    p = point("bool", order)
    assert decode_point(p, encode_point(p, on)) is on


# Text without trailing NULs or spaces (those are padding on the wire) and that fits in the registers.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=8).filter(
    lambda s: not s.endswith((" ", "\x00")) and len(s.encode("utf-8")) <= 8
)


@FAST
@given(text=texts, order=orders)
def test_round_trip_strings(text: str, order: Order) -> None:
    p = point("string", order, length=4)
    words = encode_point(p, text)
    assert len(words) == 4
    assert decode_point(p, words) == text


# Values the type cannot carry ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "kw", "value"),
    [
        pytest.param("int16", {}, 32768, id="int16-above-max"),
        pytest.param("int16", {}, -32769, id="int16-below-min"),
        pytest.param("uint16", {}, -1, id="uint16-negative"),
        pytest.param("uint16", {}, 65536, id="uint16-above-max"),
        pytest.param("int32", {}, 2**31, id="int32-above-max"),
        pytest.param("uint32", {}, -1, id="uint32-negative"),
        pytest.param("uint32", {}, 2**32, id="uint32-above-max"),
        pytest.param("int64", {}, 2**63, id="int64-above-max"),
        pytest.param("int64", {}, -(2**63) - 1, id="int64-below-min"),
        pytest.param("float32", {}, 1e39, id="float32-above-max"),
        pytest.param("float32", {}, -1e39, id="float32-below-min"),
        pytest.param("uint16", {"scale": 0.1}, 6553.6, id="scaled-uint16-above-max"),
        pytest.param("int16", {"scale": 0.1}, 10**400, id="huge-int-on-scaled-point"),
        pytest.param("int16", {}, math.nan, id="nan-on-integer"),
        pytest.param("int32", {}, math.inf, id="inf-on-integer"),
        pytest.param("int16", {}, "12", id="text-on-number"),
        pytest.param("bool", {}, "on", id="text-on-bool"),
        pytest.param("bit", {"bit": 3}, 1.5, id="float-on-bit"),
        pytest.param("string", {"length": 1}, "ABC", id="string-longer-than-registers"),
        pytest.param("string", {"length": 2}, "\ud800", id="string-not-encodable-as-utf8"),
    ],
)
def test_encode_refuses_values_the_type_cannot_carry(type_: str, kw: dict[str, object], value: object) -> None:
    with pytest.raises(EncodeError, match="'p'"):
        encode_point(point(type_, **kw), value)  # type: ignore[arg-type]


@FAST
@given(data=st.data(), type_=st.sampled_from(list(INT_RANGE)), order=orders)
def test_encode_refuses_any_integer_out_of_range(data: st.DataObject, type_: DataType, order: Order) -> None:
    lo, hi = INT_RANGE[type_]
    value = data.draw(st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1)))
    with pytest.raises(EncodeError, match=f"point 'p'.*{type_.value}"):
        encode_point(point(type_, order), value)
