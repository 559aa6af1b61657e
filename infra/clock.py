"""Time is passed in, so that tests and benchmarks control or observe it. One module, three views of one clock:

- ``Clock``: an object with wall time (``time``, epoch seconds) and a monotonic clock (``monotonic``); the edge's
  schedules need both. ``SystemClock`` is the real one.
- ``WallClock``: a function giving epoch seconds (``time.time``), for components that only stamp events.
- ``MillisClock``: a function giving epoch milliseconds (``wall_ms``), the unit of stored times.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

WallClock = Callable[[], float]  # epoch seconds
MillisClock = Callable[[], int]  # epoch ms


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


def wall_ms() -> int:
    return time.time_ns() // 1_000_000
