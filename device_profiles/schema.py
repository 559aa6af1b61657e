"""Device profile schema: how a kind of device is read (Modbus register map or MQTT JSON mapping).

A profile is data (YAML in ``catalogue/``); this module validates it before any socket opens.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError


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

    @model_validator(mode="after")
    def _range_ordered(self) -> _Point:
        if self.range is not None and not self.range[0] < self.range[1]:
            raise _problem(f"range [{self.range[0]}, {self.range[1]}] must have min < max", "range")
        if self.scale == 0:
            raise _problem("scale must not be 0", "scale")
        return self


class ModbusPoint(_Point):
    function: Function
    address: int = Field(ge=0, le=65535)
    type: DataType
    bit: int | None = Field(default=None, ge=0, le=15, description="bit number, for type 'bit'")
    length: int | None = Field(default=None, ge=1, le=123, description="registers, for type 'string'")
    order: Order = Order.ABCD
    writable: bool = False

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


class ModbusSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_registers_per_request: int = Field(default=125, ge=1, le=125)  # Modbus: 125 for FC 03/04
    max_bits_per_request: int = Field(default=2000, ge=1, le=2000)  # Modbus: 2000 for FC 01/02
    max_gap: int = Field(
        default=10, ge=0, le=124, description="unused registers (or bits) a request may span to join two points"
    )
    points: list[ModbusPoint] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_clash(self) -> ModbusSpec:
        _check_unique(p.name for p in self.points)
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


class MqttSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(description="vendor topic with {device} where the device's id goes")
    timestamp: TimestampSpec | None = Field(
        default=None, description="where the device's own time sits; absent: the time of receipt"
    )
    stale_after_s: float = Field(
        default=300, gt=0, description="no message for this long marks the device offline"
    )
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


class Profile(BaseModel):
    """One kind of device: what to read, how to decode it, and where it is stored."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Name
    title: str = ""
    kind: Name = Field(description="device kind, which rules bind to (e.g. sluice_gate, cems)")
    protocol: Literal["modbus", "mqtt", "internal"]
    measurement: Name = Field(description="InfluxDB measurement the readings are stored in")
    tags: dict[TagKey, str] = Field(default_factory=dict, description="static tags on every reading")
    poll_interval_s: float = Field(default=1.0, gt=0, le=86400)
    modbus: ModbusSpec | None = None
    mqtt: MqttSpec | None = None
    internal: InternalSpec | None = None

    @model_validator(mode="after")
    def _one_protocol(self) -> Profile:
        sections = {"modbus": self.modbus, "mqtt": self.mqtt, "internal": self.internal}
        others = [name for name, spec in sections.items() if name != self.protocol and spec is not None]
        if sections[self.protocol] is None or others:
            at = "protocol" if sections[self.protocol] is None else others[0]
            article = "a" if self.protocol == "modbus" else "an"
            extra = f" and no {others[0]!r} section" if others else ""
            raise _problem(f"protocol {self.protocol!r} needs {article} {self.protocol!r} section{extra}", at)
        return self

    @property
    def points(self) -> list[ModbusPoint] | list[MqttPoint] | list[InternalPoint]:
        spec = self.modbus or self.mqtt or self.internal
        assert spec is not None  # _one_protocol
        return spec.points

    @property
    def units(self) -> dict[str, str]:
        return {p.name: p.unit for p in self.points if p.unit}

    def point_names(self) -> list[str]:
        return [p.name for p in self.points]


def _check_unique(names: Iterable[str]) -> None:
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            raise _problem(f"point name {name!r} is used twice", "points", i, "name")
        seen.add(name)
