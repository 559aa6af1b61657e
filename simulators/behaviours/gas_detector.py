"""A combustible-gas point detector in an enterprise (profile ``gas_detector``, MQTT).

Reads a little above 0 %LEL with sensor noise. A leak (on demand, or at random with ``leaks_per_day``) rises to
its peak within a minute, holds for a while, and disperses. The detector's own alarm follows GB/T 50493-2019
set points: low at 25 %LEL, high at 50 %LEL; a faulty detector reports ``fault`` and 0 %LEL. The battery drains
slowly.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from simulators.behaviours._base import DAY_S, Behaviour, BehaviourParams, Pulse, Value, chance, clamp

ALARM_NORMAL, ALARM_LOW, ALARM_HIGH, ALARM_FAULT = 0, 1, 2, 3
LOW_LEL, HIGH_LEL = 25.0, 50.0


class GasParams(BehaviourParams):
    leaks_per_day: float = Field(default=0.0, ge=0, description="random leaks")
    battery_start: float | None = Field(default=None, ge=0, le=100, description="default: 60–100 % at random")
    drain_per_day: float = Field(default=0.4, ge=0, description="battery %, per day")


class GasDetector(Behaviour):
    profile = "gas_detector"

    def __init__(self, seed: int, params: GasParams | None = None) -> None:
        super().__init__(seed)
        self.p = params or GasParams()
        start = self.p.battery_start
        self.battery = start if start is not None else self.rng.uniform(60.0, 100.0)
        self.leaks: list[Pulse] = []
        self.faulty = False

    def leak(
        self, now: float, peak: float = 60.0, rise_s: float = 60.0, hold_s: float = 120.0, decay_s: float = 300.0
    ) -> None:
        """A leak from ``now`` reaching ``peak`` %LEL after ``rise_s``, holding, then dispersing."""
        self.leaks.append(Pulse(start=now, peak=peak, rise_s=max(rise_s, 1e-3), decay_s=decay_s, hold_s=hold_s))

    def set_fault(self, faulty: bool) -> None:
        self.faulty = faulty

    def clear(self) -> None:
        """End leaks and faults at once."""
        self.leaks.clear()
        self.faulty = False

    def step(self, now: float) -> dict[str, Value]:
        dt = self._advance(now)
        if chance(self.rng, self.p.leaks_per_day, dt):
            self.leak(now, peak=self.rng.uniform(30.0, 70.0))
        self.battery = max(0.0, self.battery - self.p.drain_per_day * dt / DAY_S)
        self.leaks = [x for x in self.leaks if not x.over(now)]
        if self.faulty:
            return {"lel": 0.0, "alarm_level": ALARM_FAULT, "battery": round(self.battery, 1)}
        lel = clamp(abs(self.rng.gauss(0.3, 0.4)) + sum(x.at(now) for x in self.leaks), 0.0, 100.0)
        alarm = ALARM_HIGH if lel >= HIGH_LEL else ALARM_LOW if lel >= LOW_LEL else ALARM_NORMAL
        return {"lel": round(lel, 1), "alarm_level": alarm, "battery": round(self.battery, 1)}


def create(seed: int, params: Mapping[str, object]) -> GasDetector:
    return GasDetector(seed, GasParams.model_validate(params))
