"""An automatic surface-water quality station on a Shanghai urban river (profile ``water_quality_station``).

Baselines sit around GB 3838-2002 class III–IV (shared standards/water.md): DO about 5–6 mg/L, NH3-N about
0.8 mg/L, TP about 0.18 mg/L. Photosynthesis drives DO and pH up in the afternoon and down before dawn; water
temperature follows the season with a small daily swing, warmest late afternoon. Pollution events (a storm-sewer
overflow, an illegal discharge) raise COD, CODMn, NH3-N, TP, TN and turbidity and lower DO, then decay over hours;
they come at random (``events_per_day``) or on demand (``pollute``).
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from simulators.behaviours._base import Behaviour, BehaviourParams, Pulse, Value, chance, clamp, daily, seasonal


class WaterQualityParams(BehaviourParams):
    ph: float = Field(default=7.4, ge=6, le=9)
    do: float = Field(default=5.6, gt=0, le=12, description="daily mean dissolved oxygen, mg/L")
    codmn: float = Field(default=5.2, gt=0)
    cod: float = Field(default=19.0, gt=0)
    nh3_n: float = Field(default=0.85, gt=0)
    tp: float = Field(default=0.17, gt=0)
    tn: float = Field(default=2.4, gt=0)
    turbidity: float = Field(default=22.0, gt=0)
    conductivity: float = Field(default=620.0, gt=0)
    water_temp: float = Field(default=18.5, description="yearly mean, °C")
    events_per_day: float = Field(default=0.1, ge=0, description="random pollution events")
    noise: float = Field(default=1.0, ge=0, description="measurement noise, as a multiple of the default")


# How much one unit of event severity adds to each parameter (a severity-1 event: COD about +40 mg/L).
EVENT_GAIN: dict[str, float] = {
    "cod": 40.0,
    "codmn": 8.0,
    "nh3_n": 3.0,
    "tp": 0.6,
    "tn": 4.0,
    "turbidity": 60.0,
    "conductivity": 250.0,
    "do": -2.5,
}


class WaterQualityStation(Behaviour):
    profile = "water_quality_station"

    def __init__(self, seed: int, params: WaterQualityParams | None = None) -> None:
        super().__init__(seed)
        self.p = params or WaterQualityParams()
        self.events: list[Pulse] = []

    def pollute(self, now: float, severity: float = 1.0, hours: float = 4.0) -> None:
        """A pollution event from ``now``: rises over 30 min, decays with a time constant of ``hours``/3."""
        self.events.append(Pulse(start=now, peak=severity, rise_s=1800.0, decay_s=hours * 3600 / 3))

    def step(self, now: float) -> dict[str, Value]:
        dt = self._advance(now)
        if chance(self.rng, self.p.events_per_day, dt):
            self.pollute(now, severity=0.5 + self.rng.random(), hours=2 + 6 * self.rng.random())
        self.events = [e for e in self.events if not e.over(now)]
        load = sum(e.at(now) for e in self.events)
        sun = daily(now, peak_hour=15.0)  # photosynthesis: highest mid-afternoon
        p, n = self.p, self.p.noise
        g = self.rng.gauss
        base: dict[str, float] = {
            "ph": p.ph + 0.25 * sun + g(0, 0.02 * n),
            "do": p.do + 1.3 * sun + g(0, 0.08 * n),
            "codmn": p.codmn + g(0, 0.15 * n),
            "cod": p.cod + g(0, 0.6 * n),
            "nh3_n": p.nh3_n - 0.1 * sun + g(0, 0.03 * n),
            "tp": p.tp + g(0, 0.005 * n),
            "tn": p.tn + g(0, 0.06 * n),
            "turbidity": p.turbidity + g(0, 1.5 * n),
            "conductivity": p.conductivity + g(0, 5.0 * n),
            "water_temp": p.water_temp + 9.5 * seasonal(now) + 0.8 * daily(now, peak_hour=16.5) + g(0, 0.03 * n),
        }
        for name, gain in EVENT_GAIN.items():
            base[name] += gain * load
        base["ph"] -= 0.3 * min(load, 1.0)
        return {
            "ph": round(clamp(base["ph"], 0.0, 14.0), 2),
            "do": round(clamp(base["do"], 0.1, 20.0), 2),
            "codmn": round(clamp(base["codmn"], 0.5, 50.0), 2),
            "cod": round(clamp(base["cod"], 2.0, 500.0), 1),
            "nh3_n": round(clamp(base["nh3_n"], 0.02, 50.0), 3),
            "tp": round(clamp(base["tp"], 0.01, 10.0), 3),
            "tn": round(clamp(base["tn"], 0.1, 50.0), 2),
            "turbidity": round(clamp(base["turbidity"], 0.5, 1000.0), 1),
            "conductivity": round(clamp(base["conductivity"], 50.0, 5000.0), 0),
            "water_temp": round(clamp(base["water_temp"], 0.5, 40.0), 2),
        }


def create(seed: int, params: Mapping[str, object]) -> WaterQualityStation:
    return WaterQualityStation(seed, WaterQualityParams.model_validate(params))
