"""Simulated Modbus TCP devices: a profile's register map served from a behaviour, with faults on demand."""

from simulators.modbus._image import Block, RegisterMap, WriteRefused
from simulators.modbus.device import ModbusDevice

__all__ = ["Block", "ModbusDevice", "RegisterMap", "WriteRefused"]
