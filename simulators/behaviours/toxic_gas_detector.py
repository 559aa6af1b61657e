"""A toxic-gas point detector in an enterprise (profile ``toxic_gas_detector``, MQTT): one gas, in mg/m³.

Reads a background a few %OEL of its gas (``rules.standards.gas.TOXIC_GASES``; CO2 its ambient level), a little
higher in the working day, with sensor noise. An excursion (a release at a valve, a pump seal, a sampling point:
on demand, or at random with ``excursions_per_day``) rises over a minute or two past the first-level set point
(100 %OEL, GB/T 50493-2019), sometimes past the second (200 %OEL), holds, and is ventilated away. The detector's
own alarm follows those set points; a faulty detector (on demand, or at random with ``faults_per_day``, repaired
after ``fault_hours`` on average) reports ``fault`` and 0 mg/m³. The battery drains slowly.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field, field_validator

from rules.standards.gas import TOXIC_GASES, exposure_limit, set_points
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

CONC_MAX = 27000.0  # the profile's range (mg/m³)
CO2_AMBIENT_MG_M3 = 770.0  # about 420 ppm at 24.0 L/mol


class ToxicParams(DetectorParams):
    gas: str = Field(default="h2s", description="the gas measured (a key of rules.standards.gas.TOXIC_GASES)")
    baseline_pct_oel: float | None = Field(
        default=None, ge=0, le=50, description="the background, %OEL; default: 3 (CO2: its ambient level)"
    )
    excursions_per_day: float = Field(default=0.0, ge=0, description="random releases past the first level")

    @field_validator("gas")
    @classmethod
    def _known_gas(cls, gas: str) -> str:
        if gas not in TOXIC_GASES:
            raise ValueError(f"gas {gas!r} has no OEL in the table (known: {', '.join(sorted(TOXIC_GASES))})")
        return gas


class ToxicGasDetector(Behaviour):
    profile = "toxic_gas_detector"

    def __init__(self, seed: int, params: ToxicParams | None = None) -> None:
        super().__init__(seed)
        self.p = params or ToxicParams()
        self.oel = exposure_limit(self.p.gas).oel
        self.first, self.second = set_points(self.p.gas)
        pct = self.p.baseline_pct_oel
        if pct is None:
            self.baseline = CO2_AMBIENT_MG_M3 if self.p.gas == "co2" else 0.03 * self.oel
        else:
            self.baseline = pct / 100.0 * self.oel
        self.faults = Faults(self.rng, self.p)
        self.battery = Battery(self.rng, self.p)
        self.excursions: list[Pulse] = []

    def excursion(
        self,
        now: float,
        peak_pct_oel: float = 150.0,
        rise_s: float = 60.0,
        hold_s: float = 180.0,
        decay_s: float = 300.0,
    ) -> None:
        """A release from ``now``: ``peak_pct_oel`` of the gas's OEL above the background after ``rise_s``, held,
        then ventilated away (time constant ``decay_s``)."""
        peak = peak_pct_oel / 100.0 * self.oel
        self.excursions.append(Pulse(start=now, peak=peak, rise_s=max(rise_s, 1e-3), decay_s=decay_s, hold_s=hold_s))

    def set_fault(self, faulty: bool) -> None:
        self.faults.set(faulty)

    def clear(self) -> None:
        """End excursions and faults at once."""
        self.excursions.clear()
        self.faults.set(False)

    def step(self, now: float) -> dict[str, Value]:
        dt = self._advance(now)
        if chance(self.rng, self.p.excursions_per_day, dt):
            self.excursion(
                now,
                peak_pct_oel=self.rng.uniform(110.0, 250.0),
                rise_s=self.rng.uniform(30.0, 120.0),
                hold_s=self.rng.uniform(60.0, 600.0),
            )
        faulty = self.faults.step(now, dt)
        battery = self.battery.step(dt)
        self.excursions = [x for x in self.excursions if not x.over(now)]
        if faulty:
            return {"conc": 0.0, "alarm_level": ALARM_FAULT, "battery": battery}
        background = self.baseline * (1.0 + 0.3 * daily(now, 14.0))  # more handling in the working day
        noise = self.rng.gauss(0.0, 0.01 * self.oel)
        conc = clamp(background + noise + sum(x.at(now) for x in self.excursions), 0.0, CONC_MAX)
        conc = round(conc, 3)
        alarm = ALARM_HIGH if conc >= self.second else ALARM_LOW if conc >= self.first else ALARM_NORMAL
        return {"conc": conc, "alarm_level": alarm, "battery": battery}


def create(seed: int, params: Mapping[str, object]) -> ToxicGasDetector:
    return ToxicGasDetector(seed, ToxicParams.model_validate(params))
