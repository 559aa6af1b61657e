"""The set points of a device that commands may write (``control.points``) and its own Modbus connection for them.

The checks are ``device_profiles.setpoints``, the API's too; ``edge_agent.commands`` runs the write and read-back.
"""

from __future__ import annotations

from dataclasses import dataclass

from device_profiles import Profile
from device_profiles.setpoints import WritablePoint
from edge_agent._gate_io import ModbusGateIO
from edge_agent.config import DeviceConfig, ModbusDefaults

__all__ = ["PointControl", "WritablePoint", "make_point_control"]


@dataclass(slots=True)
class PointControl:
    """The set points of one device and its own Modbus connection for writing them."""

    device: DeviceConfig
    points: dict[str, WritablePoint]
    io: ModbusGateIO
    timeout_s: float


def make_point_control(device: DeviceConfig, profile: Profile, defaults: ModbusDefaults) -> PointControl | None:
    """The set points of a device with a (validated) ``control`` section naming points; None if it names none."""
    c = device.control
    if c is None or not c.points or profile.modbus is None:
        return None
    by_name = {p.name: p for p in profile.modbus.points}
    points = {name: WritablePoint.of(by_name[name], w.min, w.max, w.tolerance) for name, w in c.points.items()}
    return PointControl(device, points, ModbusGateIO(device, profile, defaults), c.timeout_s)
