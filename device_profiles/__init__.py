"""Device profiles: the schema (pydantic) and the catalogue of YAML profiles, and register decoding.

``device_profiles.derive`` computes a profile's derived points (O2-corrected values, loads) and maintenance marks
from a sample's values; it is imported from there (it uses the wire contract's quality types).
"""

from device_profiles.catalogue_loader import CATALOGUE, load_catalogue, load_profile, load_profiles
from device_profiles.registers import EncodeError, decode_point, decode_raw, encode_point, scale
from device_profiles.schema import (
    DataType,
    Function,
    InternalPoint,
    InternalSpec,
    JsonType,
    ModbusPoint,
    ModbusSpec,
    MqttPoint,
    MqttSpec,
    Order,
    Profile,
    TimestampFormat,
)
from device_profiles.schema import _problem as field_error

__all__ = [
    "CATALOGUE",
    "DataType",
    "EncodeError",
    "Function",
    "InternalPoint",
    "InternalSpec",
    "JsonType",
    "ModbusPoint",
    "ModbusSpec",
    "MqttPoint",
    "MqttSpec",
    "Order",
    "Profile",
    "TimestampFormat",
    "decode_point",
    "decode_raw",
    "encode_point",
    "field_error",
    "load_catalogue",
    "load_profile",
    "load_profiles",
    "scale",
]
