"""An oxygen detector (profile ``oxygen_detector``, MQTT), in %VOL.

In open plant it reads the air's 20.9 %VOL with sensor noise and a small daily drift (temperature, pressure). In a
confined space (``confined``: a tank, a pit, a valve chamber, an inerted vessel's manway) it reads a little lower and
less steadily, and its oxygen may dip (on demand, or at random with ``dips_per_day``): nitrogen purge or a
fermentation/rusting atmosphere takes it below the deficiency set point (19.5 %VOL, GB/T 50493-2019) over a
couple of minutes, it holds, and ventilation brings it back. Enrichment (a leaking oxygen line) is rarer still
(``enrichments_per_day``, default none). The detector's own alarm follows the set points (low: deficiency, high:
enrichment). A faulty detector (on demand, or at random with ``faults_per_day``) reports ``fault`` and holds its
last reading, as many transmitters freeze their output (0 %VOL would read as a deficiency). The battery drains.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from rules.standards.gas import OXYGEN_DEFICIENCY_PCT_VOL, OXYGEN_ENRICHMENT_PCT_VOL
from simulators.behaviours._base import Behaviour, Pulse, Value, chance, clamp, daily
from simulators.behaviours._detector import (
    ALARM_FAULT,
    ALARM_HIGH,
    ALARM_LOW,
    ALARM_NORMAL,
    Battery,
    DetectorParams,
    Faults,
)

AIR_O2 = 20.9  # %VOL
O2_MAX = 25.0  # the profile's range


class OxygenParams(DetectorParams):
    confined: bool = Field(default=False, description="in a confined space: lower, less steady, can dip")
    dips_per_day: float = Field(default=0.0, ge=0, description="random dips below the deficiency set point")
    enrichments_per_day: float = Field(default=0.0, ge=0, description="random rises past the enrichment set point")


class OxygenDetector(Behaviour):
    profile = "oxygen_detector"

    def __init__(self, seed: int, params: OxygenParams | None = None) -> None:
        super().__init__(seed)
        self.p = params or OxygenParams()
        self.base = AIR_O2 - (0.2 if self.p.confined else 0.0)
        self.sd = 0.08 if self.p.confined else 0.04
        self.faults = Faults(self.rng, self.p)
        self.battery = Battery(self.rng, self.p)
        self.events: list[tuple[float, Pulse]] = []  # (sign, pulse): -1 a dip, +1 an enrichment
        self.last = AIR_O2

    def dip(self, now: float, to: float = 18.0, fall_s: float = 120.0, hold_s: float = 300.0) -> None:
        """Oxygen falls from its usual level to ``to`` %VOL over ``fall_s``, holds, then is ventilated back."""
        self.events.append((-1.0, Pulse(now, max(0.0, self.base - to), max(fall_s, 1e-3), 600.0, hold_s)))

    def enrich(self, now: float, to: float = 24.0, rise_s: float = 120.0, hold_s: float = 300.0) -> None:
        """Oxygen rises to ``to`` %VOL over ``rise_s``, holds, then disperses."""
        self.events.append((1.0, Pulse(now, max(0.0, to - self.base), max(rise_s, 1e-3), 600.0, hold_s)))

    def set_fault(self, faulty: bool) -> None:
        self.faults.set(faulty)

    def clear(self) -> None:
        """End dips, enrichments and faults at once."""
        self.events.clear()
        self.faults.set(False)

    def step(self, now: float) -> dict[str, Value]:
        dt = self._advance(now)
        if chance(self.rng, self.p.dips_per_day, dt):
            self.dip(now, to=self.rng.uniform(16.5, 19.1), fall_s=self.rng.uniform(60.0, 300.0))
        if chance(self.rng, self.p.enrichments_per_day, dt):
            self.enrich(now, to=self.rng.uniform(23.8, 24.8))
        faulty = self.faults.step(now, dt)
        battery = self.battery.step(dt)
        self.events = [(s, x) for s, x in self.events if not x.over(now)]
        if faulty:
            return {"o2": self.last, "alarm_level": ALARM_FAULT, "battery": battery}
        o2 = (
            self.base
            + 0.05 * daily(now, 5.0)
            + self.rng.gauss(0.0, self.sd)
            + sum(s * x.at(now) for s, x in self.events)
        )
        o2 = round(clamp(o2, 0.0, O2_MAX), 2)
        self.last = o2
        if o2 <= OXYGEN_DEFICIENCY_PCT_VOL:
            alarm = ALARM_LOW
        elif o2 >= OXYGEN_ENRICHMENT_PCT_VOL:
            alarm = ALARM_HIGH
        else:
            alarm = ALARM_NORMAL
        return {"o2": o2, "alarm_level": alarm, "battery": battery}


def create(seed: int, params: Mapping[str, object]) -> OxygenDetector:
    return OxygenDetector(seed, OxygenParams.model_validate(params))
