"""A smoke/fire detector behind a fire alarm panel gateway (profile ``fire_detector``, MQTT).

Mostly NORMAL with a trace of smoke and room temperature. A fire (on demand, or at random with
``fires_per_day``) raises the smoke obscuration over a minute and the temperature with it; the detector reports
FIRE once the smoke passes its threshold and stays latched until reset, as panels do. FAULT on demand.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from simulators.behaviours._base import Behaviour, BehaviourParams, Pulse, Value, chance, clamp, daily

NORMAL, FIRE, FAULT = "NORMAL", "FIRE", "FAULT"


class FireParams(BehaviourParams):
    fires_per_day: float = Field(default=0.0, ge=0, description="random fires")
    smoke_threshold: float = Field(default=0.12, gt=0, le=2, description="dB/m at which the detector trips")
    room_temp: float = Field(default=24.0)


class FireDetector(Behaviour):
    profile = "fire_detector"

    def __init__(self, seed: int, params: FireParams | None = None) -> None:
        super().__init__(seed)
        self.p = params or FireParams()
        self.fire: Pulse | None = None
        self.latched = False
        self.faulty = False

    def trip(self, now: float, peak_smoke: float = 0.8) -> None:
        """A fire from ``now``: smoke reaches ``peak_smoke`` dB/m within a minute and stays."""
        self.fire = Pulse(start=now, peak=peak_smoke, rise_s=60.0, decay_s=1800.0, hold_s=600.0)
        self.latched = True  # a tripped panel input reports FIRE at once

    def set_fault(self, faulty: bool) -> None:
        self.faulty = faulty

    def reset(self) -> None:
        """Reset at the panel: fire out, alarm cleared, fault cleared."""
        self.fire, self.latched, self.faulty = None, False, False

    def state(self) -> str:
        return FAULT if self.faulty else FIRE if self.latched else NORMAL

    def step(self, now: float) -> dict[str, Value]:
        dt = self._advance(now)
        if self.fire is None and chance(self.rng, self.p.fires_per_day, dt):
            self.trip(now, peak_smoke=self.rng.uniform(0.4, 1.5))
        fire = 0.0 if self.fire is None else self.fire.at(now)
        smoke = clamp(abs(self.rng.gauss(0.005, 0.004)) + fire, 0.0, 2.0)
        if smoke >= self.p.smoke_threshold:
            self.latched = True
        temp = self.p.room_temp + 1.5 * daily(now, 15.0) + 60.0 * fire + self.rng.gauss(0, 0.1)
        state = self.state()
        return {
            "fire_alarm": state == FIRE,
            "detector_fault": state == FAULT,
            "smoke_density": round(smoke, 3),
            "temperature": round(clamp(temp, -20.0, 120.0), 1),
        }


def create(seed: int, params: Mapping[str, object]) -> FireDetector:
    return FireDetector(seed, FireParams.model_validate(params))
