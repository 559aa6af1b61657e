"""Clocks are passed in, so that tests and benchmarks control or observe time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Wall-clock seconds since the Unix epoch (sample times)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (schedules)."""
        ...


class SystemClock:
    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
