"""Device profile schema: how a kind of device is read (Modbus register map or MQTT JSON mapping).

A profile is data (YAML in ``catalogue/``); this module validates it before any socket opens.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from device_profiles.addresses import AddressError, resolve
from device_profiles.expression import ExpressionError, parse_expression


def _problem(message: str, *at: int | str) -> PydanticCustomError:
    """A model-level error that points at the field ``at`` below the model, so that a YAML error names its line."""
    return PydanticCustomError("value_error", message, {"at": at})


Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
RESERVED_TAGS = frozenset({"time", "site", "device", "profile"})  # the timestamp, and the tags every reading gets


def _free_tag(key: str) -> str:
    if key in RESERVED_TAGS:
        raise ValueError(f"tag {key!r} is reserved ({', '.join(sorted(RESERVED_TAGS))} are set by Lifeline)")
    return key


def _point_name(name: str) -> str:
    if name == "time":
        raise ValueError("'time' is reserved (the timestamp) and cannot name a point")
    return name


TagKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$"), AfterValidator(_free_tag)]
PointName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$"), AfterValidator(_point_name)]


class Function(StrEnum):
    COIL = "coil"  # FC 01 read, 05/15 write
    DISCRETE_INPUT = "discrete_input"  # FC 02
    INPUT_REGISTER = "input_register"  # FC 04
    HOLDING_REGISTER = "holding_register"  # FC 03 read, 06/16 write

    @property
    def is_bit(self) -> bool:
        return self in (Function.COIL, Function.DISCRETE_INPUT)


class DataType(StrEnum):
    BOOL = "bool"  # a coil or discrete input; on a register: non-zero is true
    BIT = "bit"  # one bit (0 = least significant) of a register
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"  # ``length`` registers of text, two bytes a register
    BCD16 = "bcd16"  # four decimal digits, one a nibble (0x1234 reads 1234)
    BCD32 = "bcd32"  # eight decimal digits in two registers (word order: ``order``, e.g. CDAB low word first)


REGISTERS_OF: dict[DataType, int] = {
    DataType.BOOL: 1,
    DataType.BIT: 1,
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
    DataType.BCD16: 1,
    DataType.BCD32: 2,
}


class Order(StrEnum):
    """Byte and word order, named by where the bytes A (most significant) .. D land on the wire."""

    ABCD = "ABCD"  # big-endian words, most significant word first (the Modbus default)
    CDAB = "CDAB"  # big-endian words, least significant word first ("word swap")
    BADC = "BADC"  # bytes swapped inside each word, most significant word first
    DCBA = "DCBA"  # fully little-endian


class _Point(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PointName
    unit: str = ""
    description: str = ""
    scale: float = 1.0
    offset: float = 0.0
    range: tuple[float, float] | None = Field(
        default=None, description="engineering range [min, max]; a value outside it is 'uncertain'"
    )
    states: dict[int, str] | None = Field(default=None, description="labels of coded values (fault codes)")
    decimals: int | None = Field(
        default=None,
        ge=0,
        le=9,
        description="published values are rounded to this many decimals; default: what the scale and offset carry "
        "(scale 0.1: 1), 7 significant digits for float32, none otherwise",
    )

    @model_validator(mode="after")
    def _range_ordered(self) -> _Point:
        if self.range is not None and not self.range[0] < self.range[1]:
            raise _problem(f"range [{self.range[0]}, {self.range[1]}] must have min < max", "range")
        if self.scale == 0:
            raise _problem("scale must not be 0", "scale")
        return self


def _resolve_address(data: Any, base: int, at: tuple[int | str, ...] = ()) -> Any:
    """``data`` (a point's or a reserved range's raw fields) with its address notation(s) resolved to the wire
    address and function (device_profiles.addresses); untouched once resolved (it has ``written_as``)."""
    if not isinstance(data, dict) or "written_as" in data:
        return data
    out = dict(data)
    given = out.get("function")  # each address is read against the function as written, not as another set it
    written: list[str] = []
    for key in ("address", "from", "to"):
        if key not in out or isinstance(out[key], bool):
            continue
        try:
            r = resolve(out[key], str(given) if given is not None else None, base)
        except AddressError as exc:
            raise _problem(str(exc), *at, key) from None
        if r.function is not None:
            if out.get("function", r.function) != r.function:
                raise _problem(f"{key} is a {r.function}, but the range's other end is a {out['function']}", *at, key)
            out["function"] = r.function
        out[key] = r.address
        written.append(r.written)
    out["written_as"] = "..".join(written) if any(written) else ""
    return out


class ModbusPoint(_Point):
    function: Function = Field(description="set by a Modicon reference (40001) in address, else required")
    address: int = Field(
        ge=0, le=65535, description="wire address (0-based); or as the manual writes it: 40001, 300101, 0x1000, 1000H"
    )
    written_as: str = Field(default="", description="the address as the manual wrote it (set by Lifeline)")
    type: DataType
    bit: int | None = Field(default=None, ge=0, le=15, description="bit number, for type 'bit'")
    length: int | None = Field(default=None, ge=1, le=123, description="registers, for type 'string'")
    order: Order = Order.ABCD
    writable: bool = False
    write_function: Literal[5, 6, 15, 16] | None = Field(
        default=None,
        description="writable points: the Modbus function the device's manual demands (coils 5 or 15, holding "
        "registers 6 or 16); default 5 for a coil, 6 for one register, 16 for more",
    )
    step: float | None = Field(
        default=None, gt=0, description="writable points: a written value must be a multiple of this (from range min)"
    )

    @model_validator(mode="after")
    def _write_function_fits(self) -> ModbusPoint:
        if self.write_function is None and self.step is None:
            return self
        if not self.writable:
            raise _problem("write_function and step are for writable points only", "writable")
        allowed = (5, 15) if self.function is Function.COIL else (6, 16)
        if self.write_function is not None and self.write_function not in allowed:
            why = f"a {self.function.value} is written with function {allowed[0]} or {allowed[1]}"
            raise _problem(f"{why}, not {self.write_function}", "write_function")
        if self.write_function == 6 and self.count != 1:
            raise _problem(f"function 6 writes one register; this point has {self.count}", "write_function")
        return self

    @model_validator(mode="before")
    @classmethod
    def _manual_address(cls, data: Any) -> Any:
        return _resolve_address(data, 0)

    @model_validator(mode="after")
    def _type_fits_function(self) -> ModbusPoint:
        if self.function.is_bit and self.type is not DataType.BOOL:
            raise _problem(
                f"a {self.function.value} holds one bit: type must be 'bool', not {self.type.value!r}", "type"
            )
        if (self.type is DataType.BIT) != (self.bit is not None):
            raise _problem(
                "'bit' is required for type 'bit' and allowed only there", "bit" if self.bit is not None else "type"
            )
        if (self.type is DataType.STRING) != (self.length is not None):
            raise _problem(
                "'length' (in registers) is required for type 'string' and allowed only there",
                "length" if self.length is not None else "type",
            )
        if self.writable and self.function not in (Function.COIL, Function.HOLDING_REGISTER):
            raise _problem(
                f"a {self.function.value} cannot be written: only coils and holding registers can", "writable"
            )
        if self.address + self.count - 1 > 65535:
            raise _problem(f"{self.count} registers from address {self.address} run past 65535", "address")
        return self

    @property
    def count(self) -> int:
        """Registers (or bits) this point occupies."""
        if self.type is DataType.STRING:
            assert self.length is not None
            return self.length
        return REGISTERS_OF[self.type]

    @property
    def numeric(self) -> bool:
        return self.type not in (DataType.BOOL, DataType.BIT, DataType.STRING)


class ReservedRange(BaseModel):
    """Addresses the device has no registers at (its manual says "reserved"): no read may span them."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    function: Function = Field(description="set by a Modicon reference (40017) in from/to, else required")
    start: int = Field(alias="from", ge=0, le=65535, description="first reserved address, in any notation")
    end: int = Field(alias="to", ge=0, le=65535, description="last reserved address (inclusive)")
    written_as: str = Field(default="", description="the range as the manual wrote it (set by Lifeline)")

    @model_validator(mode="before")
    @classmethod
    def _manual_address(cls, data: Any) -> Any:
        return _resolve_address(data, 0)

    @model_validator(mode="after")
    def _ordered(self) -> ReservedRange:
        if self.end < self.start:
            raise _problem(f"reserved range ends ({self.end}) before it starts ({self.start})", "to")
        return self

    def overlaps(self, start: int, end: int) -> bool:
        """Whether addresses ``start`` .. ``end - 1`` touch this range."""
        return start <= self.end and self.start < end


class ModbusSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    address_base: Literal[0, 1] = Field(
        default=0, description="1: the manual's plain addresses count from 1 (register 1 is 0 on the wire)"
    )
    reserved: list[ReservedRange] = Field(
        default_factory=list, description="address ranges the device does not have: coalesced reads never span them"
    )
    max_registers_per_request: int = Field(default=125, ge=1, le=125)  # Modbus: 125 for FC 03/04
    max_bits_per_request: int = Field(default=2000, ge=1, le=2000)  # Modbus: 2000 for FC 01/02
    max_gap: int = Field(
        default=10, ge=0, le=124, description="unused registers (or bits) a request may span to join two points"
    )
    points: list[ModbusPoint] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _manual_addresses(cls, data: Any) -> Any:
        """Resolve notations here, where ``address_base`` is known (a point alone reads plain numbers as 0-based)."""
        if not isinstance(data, dict):
            return data
        base = data.get("address_base", 0)
        base = base if base in (0, 1) else 0  # a wrong base is reported by the field's own check
        out = dict(data)
        for key in ("points", "reserved"):
            if isinstance(out.get(key), list):
                out[key] = [_resolve_address(item, base, (key, i)) for i, item in enumerate(out[key])]
        return out

    @model_validator(mode="after")
    def _no_clash(self) -> ModbusSpec:
        _check_unique(p.name for p in self.points)
        for i, p in enumerate(self.points):
            for r in self.reserved:
                if r.function is p.function and r.overlaps(p.address, p.address + p.count):
                    raise _problem(
                        f"point {p.name!r} ({p.function.value} {p.address}..{p.address + p.count - 1}) lies in a "
                        f"reserved range ({r.start}..{r.end})",
                        "points",
                        i,
                        "address",
                    )
        taken: dict[tuple[Function, int], str] = {}
        for i, p in enumerate(self.points):
            if p.type is DataType.BIT:
                continue  # several bit points share a register
            for addr in range(p.address, p.address + p.count):
                other = taken.setdefault((p.function, addr), p.name)
                if other != p.name:
                    raise _problem(
                        f"points {other!r} and {p.name!r} both use {p.function.value} {addr}", "points", i, "address"
                    )
        return self


class JsonType(StrEnum):
    NUMBER = "number"
    INTEGER = "integer"
    BOOL = "bool"
    STRING = "string"


class MqttPoint(_Point):
    path: str = Field(
        min_length=1, description="where the value sits in the payload: dotted keys and [index], e.g. data.ch[0].v"
    )
    type: JsonType = JsonType.NUMBER
    map: dict[str, float | int | bool] | None = Field(
        default=None, description="translate a vendor's text value (e.g. 'ALARM') to a value"
    )
    topic: str | None = Field(default=None, description="this point's own topic, if not the profile's")


class TimestampFormat(StrEnum):
    EPOCH_MS = "epoch_ms"
    EPOCH_S = "epoch_s"
    ISO8601 = "iso8601"


class TimestampSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1)
    format: TimestampFormat = TimestampFormat.EPOCH_MS
    naive_utc_offset_h: float = Field(
        default=8.0, ge=-14, le=14, description="offset of ISO 8601 times written without one (China: +8)"
    )


class SequenceSpec(BaseModel):
    """Where a sensor's own message counter sits: each message's is one more than the one before (wrapping to 0
    after ``modulo - 1``). A jump is messages the edge never heard, counted (``lifeline_edge_readings_missed``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="where the counter sits in the payload, e.g. seq or meta.count")
    modulo: int | None = Field(default=None, ge=2, description="the counter wraps after modulo - 1 (e.g. 65536)")


class MqttSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(description="vendor topic with {device} where the device's id goes")
    timestamp: TimestampSpec | None = Field(
        default=None, description="where the device's own time sits; absent: the time of receipt"
    )
    sequence: SequenceSpec | None = Field(
        default=None, description="where the device's own message counter sits, if it has one: gaps are counted"
    )
    stale_after_s: float = Field(default=300, gt=0, description="no message for this long marks the device offline")
    points: list[MqttPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _topics(self) -> MqttSpec:
        _check_unique(p.name for p in self.points)
        topics = [(self.topic, ("topic",)), *((p.topic, ("points", i, "topic")) for i, p in enumerate(self.points))]
        for topic, at in topics:
            if topic is None:
                continue
            if "{device}" not in topic:
                raise _problem(f"topic {topic!r} must contain {{device}} so that each device has its own topic", *at)
            if "#" in topic or "+" in topic:
                raise _problem(f"topic {topic!r} must not contain MQTT wildcards", *at)
        return self

    def topic_of(self, point: MqttPoint, vendor_id: str) -> str:
        """The vendor topic ``point`` of the device ``vendor_id`` comes on."""
        return (point.topic or self.topic).replace("{device}", vendor_id)

    def topics_for(self, vendor_id: str) -> list[str]:
        """Every vendor topic of the device ``vendor_id`` (what it publishes, what the edge subscribes to)."""
        return sorted({self.topic_of(p, vendor_id) for p in self.points})


class O2Correction(BaseModel):
    """``C_ref = C × (21 − O2_ref) / (21 − O2)`` (shared standards/emissions.md "Reference oxygen and correction").

    ``reference_tag`` names the device tag that holds the source's reference O2 (%): it is a per-source setting
    (6 coal-fired power, 3 oil/gas boilers, 15 gas turbines, 16 sinter, ...), set in the site file.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    of: PointName = Field(description="the measured concentration (dry, standard state)")
    o2: PointName = Field(description="the measured flue-gas O2, % by volume, on the same (dry) basis")
    reference_tag: TagKey = Field(default="o2_ref", description="device tag with the source's reference O2 (%)")
    max_o2: float = Field(
        default=20.0,
        gt=0,
        lt=21,
        description="at or above this O2 the unit is off or the probe reads air: not corrected, the point is bad",
    )


class MassLoad(BaseModel):
    """Emission rate in kg/h: concentration (mg/m³, standard state, dry) × standard-dry flow (m³/h) × 1e-6.

    With ``temperature`` / ``pressure`` / ``humidity`` the measured (actual, wet) flow is brought to the standard
    state, dry gas (273.15 K, 101.325 kPa; emissions.md "Standard state"); without them ``flow`` is taken as
    standard-dry already.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    of: PointName = Field(description="the measured concentration (not O2-corrected: the mass actually emitted)")
    flow: PointName = Field(description="flue-gas flow, m³/s")
    temperature: PointName | None = Field(default=None, description="flue-gas temperature, °C")
    pressure: PointName | None = Field(default=None, description="static pressure relative to ambient, kPa")
    humidity: PointName | None = Field(default=None, description="water vapour in the flue gas, % by volume")
    ambient_kpa: float = Field(default=101.325, gt=50, lt=120, description="barometric pressure at the stack")


class DerivedPoint(BaseModel):
    """A point computed at the edge from a sample's own values (``device_profiles.derive``): exactly one formula."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: PointName
    unit: str = ""
    description: str = ""
    o2_corrected: O2Correction | None = None
    load: MassLoad | None = None
    expr: str | None = Field(
        default=None,
        max_length=500,
        description="arithmetic over measured points, e.g. total_whole + total_fraction / 1000 "
        "(numbers, point names, + - * / // % **, parentheses, min, max, abs, round)",
    )
    decimals: int | None = Field(default=None, ge=0, le=9, description="the value is rounded to this many decimals")

    @model_validator(mode="after")
    def _one_formula(self) -> DerivedPoint:
        if sum(f is not None for f in (self.o2_corrected, self.load, self.expr)) != 1:
            raise _problem("give exactly one of o2_corrected, load, expr", "name")
        if self.expr is not None:
            try:
                parse_expression(self.expr)
            except ExpressionError as exc:
                raise _problem(f"expr: {exc}", "expr") from None
        return self

    @property
    def inputs(self) -> list[str]:
        if self.expr is not None:
            return list(parse_expression(self.expr).names)
        if self.o2_corrected is not None:
            return [self.o2_corrected.of, self.o2_corrected.o2]
        assert self.load is not None
        spec = self.load
        return [n for n in (spec.of, spec.flow, spec.temperature, spec.pressure, spec.humidity) if n is not None]


class MaintenanceFlag(BaseModel):
    """A boolean point that, when true, marks the listed points (and every derived point computed from them)
    ``uncertain`` with reason ``maintenance``: the values are kept but stay out of alarms and means
    (HJ 212 data flags M / C; shared standards/hj212.md "Data flags")."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    point: PointName
    marks: list[PointName] = Field(min_length=1)


class Derived(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    maintenance: MaintenanceFlag | None = None
    points: list[DerivedPoint] = Field(default_factory=list)


# HJ 212 stations (pollution-source data loggers pushing over TCP) ------------------------------------------------
# Pollutant codes: HJ 212-2017 Appendix B (the HJ 524/525 naming, e.g. w01018); HJ/T 212-2005 codes (011, B01, 02)
# still come from old loggers. Both are opaque keys here: a profile maps each one explicitly.
Hj212Code = Annotated[str, Field(pattern=r"^[A-Za-z0-9]{1,16}$")]

# Which command's data lands in which point (decision 012). Real-time data (CN 2011) keeps the plain point name, so
# rules, console and storage treat it like any polled reading; the period statistics of minute (2051), hourly
# (2061) and daily (2031) data get their own points, because their DataTime is the period start (HJ 212-2017
# §6.6, check) and would otherwise overwrite the real-time sample of the same second.
HJ212_PERIODS: dict[str, str] = {"2051": "minute", "2061": "hour", "2031": "day"}
HJ212_STATS = ("avg", "min", "max", "total")  # -Avg, -Min, -Max, -Cou (cumulative over the period)


def hj212_point_name(base: str, *, zs: bool = False, period: str | None = None, stat: str | None = None) -> str:
    """The point a HJ 212 value goes to: ``so2`` (-Rtd), ``so2_zs`` (-ZsRtd), ``flue_flow_total`` (-Cou of real-time
    data, CN 2011), ``so2_hour_avg`` (-Avg of CN 2061), ``so2_zs_hour_avg`` (-ZsAvg), ``flue_flow_day_total`` (-Cou
    of CN 2031)."""
    name = f"{base}_zs" if zs else base
    if period is None:
        return f"{name}_total" if stat == "total" else name
    if period not in HJ212_PERIODS.values() or stat not in HJ212_STATS:
        raise ValueError(f"unknown HJ 212 period {period!r} or statistic {stat!r}")
    return f"{name}_{period}_{stat}"


class Hj212Point(_Point):
    name: Annotated[PointName, Field(max_length=40)]  # room for the longest derived name (_zs_minute_total)
    code: Hj212Code = Field(description="HJ 212-2017 pollutant code (Appendix B), e.g. w01018")
    legacy_code: Hj212Code | None = Field(
        default=None, description="HJ/T 212-2005 code of the same quantity, for old data loggers, e.g. 011"
    )
    total_unit: str | None = Field(
        default=None, description="the station sends -Cou (cumulative amount over the period) in this unit"
    )
    zs: bool = Field(default=False, description="the station sends converted (折算, O2-corrected) -Zs values")

    def derived(self) -> dict[str, str]:
        """Every point name this code's values go to, with its unit."""
        out: dict[str, str] = {}
        for zs in (False, True) if self.zs else (False,):
            out[hj212_point_name(self.name, zs=zs)] = self.unit
            for period in HJ212_PERIODS.values():
                for stat in HJ212_STATS[:3]:
                    out[hj212_point_name(self.name, zs=zs, period=period, stat=stat)] = self.unit
        if self.total_unit is not None:
            out[hj212_point_name(self.name, stat="total")] = self.total_unit  # -Cou of real-time data (CN 2011)
            for period in HJ212_PERIODS.values():
                out[hj212_point_name(self.name, period=period, stat="total")] = self.total_unit
        return out


class Hj212Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    st: str | None = Field(
        default=None,
        pattern=r"^[0-9]{2}$",
        description="system code (ST) the station sends, e.g. 31 flue gas, 32 wastewater (HJ 212-2017 Appendix B); "
        "packets with another ST are refused; absent: any",
    )
    points: list[Hj212Point] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Hj212Spec:
        _check_unique(p.name for p in self.points)
        codes: dict[str, str] = {}
        for i, p in enumerate(self.points):
            for field, code in (("code", p.code), ("legacy_code", p.legacy_code)):
                if code is None:
                    continue
                other = codes.setdefault(code, p.name)
                if other != p.name or (field == "legacy_code" and code == p.code):
                    raise _problem(f"code {code!r} is mapped twice ({other!r} and {p.name!r})", "points", i, field)
        return self

    def by_code(self) -> dict[str, Hj212Point]:
        """The point of every code, 2017 and 2005 alike."""
        out = {p.code: p for p in self.points}
        out.update({p.legacy_code: p for p in self.points if p.legacy_code is not None})
        return out

    def units(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for p in self.points:
            out.update(p.derived())
        return out


class InternalPoint(_Point):
    type: JsonType = JsonType.NUMBER


class InternalSpec(BaseModel):
    """Points a Lifeline component reports about itself (the edge agent's health): nothing to read or decode."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    points: list[InternalPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> InternalSpec:
        _check_unique(p.name for p in self.points)
        return self


class DeviceTag(BaseModel):
    """A tag each device of the profile sets in its site file, checked when the site file loads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    required: bool = True
    values: list[str] | None = Field(default=None, min_length=1, description="the values allowed; none: any")
    description: str = ""


class Profile(BaseModel):
    """One kind of device: what to read, how to decode it, and where it is stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    title: str = ""
    kind: Name = Field(description="device kind, which rules bind to (e.g. sluice_gate, cems)")
    protocol: Literal["modbus", "mqtt", "hj212", "internal"]
    measurement: Name = Field(description="InfluxDB measurement the readings are stored in")
    tags: dict[TagKey, str] = Field(default_factory=dict, description="static tags on every reading")
    device_tags: dict[TagKey, DeviceTag] = Field(
        default_factory=dict, description="tags each device sets in its site file (e.g. a toxic-gas detector's gas)"
    )
    poll_interval_s: float = Field(default=1.0, gt=0, le=86400)
    modbus: ModbusSpec | None = None
    mqtt: MqttSpec | None = None
    derived: Derived | None = Field(default=None, description="points computed at the edge, and maintenance flags")
    hj212: Hj212Spec | None = None
    internal: InternalSpec | None = None

    @model_validator(mode="after")
    def _one_protocol(self) -> Profile:
        sections = {"modbus": self.modbus, "mqtt": self.mqtt, "hj212": self.hj212, "internal": self.internal}
        others = [name for name, spec in sections.items() if spec is not None and name != self.protocol]
        if sections[self.protocol] is None or others:
            article = "a" if self.protocol in ("modbus", "hj212") else "an"
            rest = f" and no {' or '.join(repr(n) for n in others)} section" if others else ""
            raise _problem(
                f"protocol {self.protocol!r} needs {article} {self.protocol!r} section{rest}",
                "protocol" if sections[self.protocol] is None else others[0],
            )
        if self.derived is not None:
            self._check_derived(self.derived)
        return self

    def _check_derived(self, derived: Derived) -> None:
        measured = self.measured_names()
        known = set(measured)
        for i, d in enumerate(derived.points):
            # an HJ 212 station may send a converted value itself (-ZsRtd, -ZsAvg): the derived point of that name
            # fills in only where the station sent none (device_profiles.derive)
            sent_zs = self.hj212 is not None and d.o2_corrected is not None and d.name in measured
            if d.name in known and not sent_zs:
                raise _problem(f"derived point name {d.name!r} is already used", "derived", "points", i, "name")
            for name in d.inputs:
                if name not in measured:  # a derived point reads measured points only: no chains, no cycles
                    raise _problem(f"{name!r} is not a measured point of this profile", "derived", "points", i, "name")
            known.add(d.name)
        if derived.maintenance is not None:
            m = derived.maintenance
            if m.point not in measured:
                raise _problem(f"{m.point!r} is not a point of this profile", "derived", "maintenance", "point")
            for j, name in enumerate(m.marks):
                if name not in measured:
                    raise _problem(f"{name!r} is not a measured point", "derived", "maintenance", "marks", j)

    def measured_names(self) -> list[str]:
        """The points the device itself sends (its register map or MQTT mapping)."""
        if self.modbus:
            return [p.name for p in self.modbus.points]
        if self.hj212:
            return list(self.hj212.units())
        return [p.name for p in self.points]

    @property
    def points(self) -> list[ModbusPoint] | list[MqttPoint] | list[InternalPoint]:
        """The points of a Modbus, MQTT or internal profile (an HJ 212 profile's are in ``hj212``: codes)."""
        spec = self.modbus or self.mqtt or self.internal
        return spec.points if spec is not None else []

    @property
    def units(self) -> dict[str, str]:
        if self.hj212:
            derived_units = {d.name: d.unit for d in self.derived.points} if self.derived else {}
            return {name: unit for name, unit in {**self.hj212.units(), **derived_units}.items() if unit}
        points = self.points
        derived = self.derived.points if self.derived else []
        return {p.name: p.unit for p in [*points, *derived] if p.unit}

    def point_names(self) -> list[str]:
        """Every point a sample of this profile may carry: the measured ones, then the derived ones."""
        return list(dict.fromkeys(self.measured_names() + self.derived_names()))  # HJ 212 -Zs: measured or derived

    def derived_names(self) -> list[str]:
        return [d.name for d in self.derived.points] if self.derived else []


def _check_unique(names: Iterable[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise _problem(f"point name {name!r} is used twice", "points", i, "name")
        seen.add(name)
