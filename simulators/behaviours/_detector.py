"""What the toxic-gas and oxygen detectors share: a detector's own faults (on demand, or at random, each repaired
after a while) and its battery."""

from __future__ import annotations

import random

from pydantic import Field

from simulators.behaviours._base import DAY_S, BehaviourParams, chance

ALARM_NORMAL, ALARM_LOW, ALARM_HIGH, ALARM_FAULT = 0, 1, 2, 3


class DetectorParams(BehaviourParams):
    faults_per_day: float = Field(default=0.0, ge=0, description="random detector faults (sensor end of life, wiring)")
    fault_hours: float = Field(default=2.0, gt=0, le=720, description="mean time until a random fault is repaired")
    battery_start: float | None = Field(default=None, ge=0, le=100, description="default: 60–100 % at random")
    drain_per_day: float = Field(default=0.4, ge=0, description="battery %, per day")


class Faults:
    """A detector's fault state: set on demand (held until cleared) or at random (cleared after an exponential
    time with mean ``fault_hours``)."""

    def __init__(self, rng: random.Random, params: DetectorParams) -> None:
        self.rng = rng
        self.p = params
        self.on_demand = False
        self.until: float | None = None  # a random fault's repair time

    def set(self, faulty: bool) -> None:
        self.on_demand = faulty
        if not faulty:
            self.until = None

    def step(self, now: float, dt: float) -> bool:
        """Whether the detector is faulty at ``now`` (draws the random faults of the last ``dt`` seconds)."""
        if self.until is not None and now >= self.until:
            self.until = None
        if self.until is None and chance(self.rng, self.p.faults_per_day, dt):
            self.until = now + self.rng.expovariate(1.0 / (self.p.fault_hours * 3600.0))
        return self.on_demand or self.until is not None


class Battery:
    def __init__(self, rng: random.Random, params: DetectorParams) -> None:
        start = params.battery_start
        self.level = start if start is not None else rng.uniform(60.0, 100.0)
        self.drain_per_day = params.drain_per_day

    def step(self, dt: float) -> float:
        self.level = max(0.0, self.level - self.drain_per_day * dt / DAY_S)
        return round(self.level, 1)
