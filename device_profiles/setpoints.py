"""Set points: what may be written to a writable point, checked alike by the API (early, with a reason) and the
edge agent (again, right before it writes).

The bounds are the profile's ``range``, narrowed by the device's own (the edge's ``control.points``); a value must be
a multiple of the profile's ``step`` counted from the lower bound; a coil or boolean takes only true or false; a text
point is not written by command. After a write the edge reads the point back: :meth:`WritablePoint.matches` says
whether the device took the value, within the tolerance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from device_profiles.schema import DataType, Function, ModbusPoint

__all__ = ["WritablePoint"]

_INTEGERS = frozenset(t for t in DataType if t.value.startswith(("int", "uint", "bcd")))  # whole raw numbers
STEP_SLACK = 1e-9  # a value within this many steps of a multiple is that multiple (decimal input, binary floats)


@dataclass(frozen=True, slots=True)
class WritablePoint:
    """A point commands may write, with its resolved bounds."""

    point: ModbusPoint
    low: float | None
    high: float | None
    step: float | None
    tolerance: float | None  # None: the default for the value written (:meth:`tolerance_for`)

    @classmethod
    def of(
        cls, point: ModbusPoint, low: float | None = None, high: float | None = None, tolerance: float | None = None
    ) -> WritablePoint:
        """The point's bounds: its profile's range, narrowed by ``low`` and ``high`` (a device's own)."""
        lo = point.range[0] if point.range else None
        hi = point.range[1] if point.range else None
        if low is not None:
            lo = low if lo is None else max(lo, low)
        if high is not None:
            hi = high if hi is None else min(hi, high)
        return cls(point, lo, hi, point.step, tolerance)

    def tolerance_for(self, value: float) -> float:
        if self.tolerance is not None:
            return self.tolerance
        if self.step is not None:
            return self.step / 2
        if self.point.type in _INTEGERS:
            return abs(self.point.scale) / 2
        return 1e-5 * max(1.0, abs(value))

    def refusal(self, value: float | bool) -> str | None:
        """Why ``value`` may not be written to this point (None: it may)."""
        name = self.point.name
        if self.point.function is Function.COIL or self.point.type in (DataType.BOOL, DataType.BIT):
            return None if isinstance(value, bool) else f"point {name!r} takes true or false, not {value!r}"
        if self.point.type is DataType.STRING:
            return f"point {name!r} is text: only numbers and booleans are written by command"
        if isinstance(value, bool):
            return f"point {name!r} takes a number, not {value!r}"
        if self.low is not None and value < self.low:
            return f"{value:g} is below the lowest value {self.low:g} allowed for {name!r}"
        if self.high is not None and value > self.high:
            return f"{value:g} is above the highest value {self.high:g} allowed for {name!r}"
        if self.step is not None:
            steps = (value - (self.low or 0.0)) / self.step
            if abs(steps - round(steps)) > STEP_SLACK * max(1.0, abs(steps)):
                base = self.low or 0.0
                return f"{value:g} is not a multiple of the step {self.step:g} from {base:g} for {name!r}"
        return None

    def matches(self, written: float | bool, read: object) -> bool:
        """Whether the read-back value shows the written one."""
        if isinstance(written, bool):
            return read is written or read == int(written)
        if isinstance(read, bool) or not isinstance(read, int | float) or not math.isfinite(read):
            return False
        return abs(float(read) - written) <= self.tolerance_for(written)
