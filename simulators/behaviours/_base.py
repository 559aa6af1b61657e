"""What every device behaviour offers, and the small pieces of physics they share (daily cycles, events, noise).

Behaviours are pure: they never read the clock (``now`` is an argument, epoch seconds) and draw every random
number from their own ``random.Random(seed)``, so the same seed and the same sequence of ``now`` give the same
values.
"""

from __future__ import annotations

import math
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

Value = bool | int | float | str

SHANGHAI_UTC_OFFSET_S = 8 * 3600
DAY_S = 86400.0
YEAR_S = 365.2425 * DAY_S


class BehaviourParams(BaseModel):
    """A behaviour's tunable parameters (scenario YAML ``params``); unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Behaviour(ABC):
    """A simulated device: engineering values for every point of its profile at a given time."""

    profile: ClassVar[str]

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self._last: float | None = None

    @abstractmethod
    def step(self, now: float) -> dict[str, Value]:
        """Advance the model to ``now`` and return a value for every point name of the profile."""

    def write(self, point: str, value: Value, now: float) -> bool:
        """A command or set point written by a client; False if the device ignores it (read-only by default)."""
        return False

    def _advance(self, now: float) -> float:
        """Seconds since the previous step (0 on the first step; time going backwards counts as 0)."""
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now if self._last is None else max(self._last, now)
        return dt


def local_hour(now: float) -> float:
    """Hour of the day in Shanghai (UTC+8), 0 ≤ h < 24."""
    return ((now + SHANGHAI_UTC_OFFSET_S) % DAY_S) / 3600.0


def daily(now: float, peak_hour: float) -> float:
    """A daily cosine in [-1, 1] that peaks at ``peak_hour`` (Shanghai time)."""
    return math.cos(2 * math.pi * (local_hour(now) - peak_hour) / 24.0)


def bump(now: float, centre_hour: float, width_h: float) -> float:
    """A daily Gaussian bump in [0, 1] centred on ``centre_hour`` (rush hours, afternoon ozone)."""
    d = (local_hour(now) - centre_hour + 12.0) % 24.0 - 12.0
    return math.exp(-0.5 * (d / width_h) ** 2)


def seasonal(now: float, peak_day: float = 213.0) -> float:
    """A yearly cosine in [-1, 1] peaking on day-of-year ``peak_day`` (early August by default)."""
    day = ((now + SHANGHAI_UTC_OFFSET_S) % YEAR_S) / DAY_S
    return math.cos(2 * math.pi * (day - peak_day) / 365.2425)


def clamp(value: float, low: float, high: float) -> float:
    return low if value < low else high if value > high else value


@dataclass(slots=True)
class Pulse:
    """An event that rises linearly over ``rise_s``, then decays exponentially with time constant ``decay_s``."""

    start: float
    peak: float
    rise_s: float
    decay_s: float
    hold_s: float = 0.0

    def at(self, now: float) -> float:
        t = now - self.start
        if t < 0:
            return 0.0
        if t < self.rise_s:
            return self.peak * t / self.rise_s
        t -= self.rise_s
        if t < self.hold_s:
            return self.peak
        return self.peak * math.exp(-(t - self.hold_s) / self.decay_s)

    def over(self, now: float) -> bool:
        """True once the event has decayed below 1 % of its peak."""
        return now - self.start > self.rise_s + self.hold_s + 4.6 * self.decay_s


def chance(rng: random.Random, rate_per_day: float, dt: float) -> bool:
    """True with the probability that a Poisson event of ``rate_per_day`` happens within ``dt`` seconds."""
    if rate_per_day <= 0 or dt <= 0:
        return False
    return rng.random() < 1.0 - math.exp(-rate_per_day * dt / DAY_S)
