"""An environmental noise meter by a road (profile ``noise_meter``, MQTT).

LAeq about 55–65 dB(A) in the day (06:00–22:00, the GB 3096-2008 day period) and 45–50 at night, with a smooth
change at dawn and dusk; LMax a few to 20 dB above LAeq (passing lorries, horns).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import Field

from simulators.behaviours._base import Behaviour, BehaviourParams, Value, clamp, local_hour


class NoiseParams(BehaviourParams):
    day_laeq: float = Field(default=60.0, ge=20, le=120)
    night_laeq: float = Field(default=47.5, ge=20, le=120)


def _daytime(hour: float) -> float:
    """0 at night, 1 in the day, a one-hour logistic change around 06:00 and 22:00."""
    rise = 1 / (1 + math.exp(-(hour - 6.0) * 4))
    fall = 1 / (1 + math.exp((hour - 22.0) * 4))
    return rise * fall


class NoiseMeter(Behaviour):
    profile = "noise_meter"

    def __init__(self, seed: int, params: NoiseParams | None = None) -> None:
        super().__init__(seed)
        self.p = params or NoiseParams()

    def step(self, now: float) -> dict[str, Value]:
        self._advance(now)
        day = _daytime(local_hour(now))
        laeq = self.p.night_laeq + (self.p.day_laeq - self.p.night_laeq) * day + self.rng.gauss(0, 2.0)
        lmax = laeq + 4.0 + self.rng.expovariate(1 / 6.0)
        return {"noise_laeq": round(clamp(laeq, 20, 130), 1), "noise_lmax": round(clamp(lmax, 20, 140), 1)}


def create(seed: int, params: Mapping[str, object]) -> NoiseMeter:
    return NoiseMeter(seed, NoiseParams.model_validate(params))
