"""A flue-gas CEMS at a coal-fired unit under ultra-low emission limits (profile ``flue_gas_cems``), or with other
parameters at another source (a sinter strand runs at about 16 % O2).

The unit follows a load curve: high in the day (08:00–22:00), low at night, ramping in between. Emissions,
flue-gas flow, temperature and velocity rise with the load; O2 falls with it (more excess air at low load): from
``o2_no_load`` towards ``o2_full_load`` (defaults 11.5 and 6: a coal unit at 60 % night load runs at 8.2 % O2).
``flow_total`` integrates the flow. The analyser goes into its daily zero/span check at ``calibration_hour``
for ``calibration_min`` minutes (HJ 75-2017 daily calibration), and into maintenance on demand.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from simulators.behaviours._base import Behaviour, BehaviourParams, Value, clamp, local_hour


class CemsParams(BehaviourParams):
    day_load: float = Field(default=92.0, ge=0, le=120, description="% of rated load in the day")
    night_load: float = Field(default=60.0, ge=0, le=120)
    rated_flow_m3_s: float = Field(default=280.0, gt=0, le=1000, description="flue-gas flow at 100 % load")
    duct_area_m2: float = Field(default=22.0, gt=0, description="cross-section at the measuring point")
    so2: float = Field(default=22.0, ge=0, description="SO2 at full load, mg/m³")
    nox: float = Field(default=35.0, ge=0)
    dust: float = Field(default=4.0, ge=0)
    o2_no_load: float = Field(default=11.5, ge=0, lt=21, description="O2 % the line falls from (load 0)")
    o2_full_load: float = Field(default=6.0, ge=0, lt=21, description="O2 % at 100 % load (coal unit: 6)")
    calibration_hour: float = Field(default=3.0, ge=0, lt=24)
    calibration_min: float = Field(default=15.0, ge=0, le=120)
    flow_total_start: int = Field(default=0, ge=0)


class FlueGasCems(Behaviour):
    profile = "flue_gas_cems"

    def __init__(self, seed: int, params: CemsParams | None = None) -> None:
        super().__init__(seed)
        self.p = params or CemsParams()
        self.flow_total = float(self.p.flow_total_start)
        self.maintenance_forced = False

    def set_maintenance(self, on: bool) -> None:
        self.maintenance_forced = on

    def load(self, now: float) -> float:
        """Load (%) by the hour: ramps 06–08 and 22–24, flat otherwise."""
        h = local_hour(now)
        day, night = self.p.day_load, self.p.night_load
        if 6.0 <= h < 8.0:
            return night + (day - night) * (h - 6.0) / 2.0
        if 8.0 <= h < 22.0:
            return day
        if h >= 22.0:
            return day - (day - night) * (h - 22.0) / 2.0
        return night

    def step(self, now: float) -> dict[str, Value]:
        dt = self._advance(now)
        g = self.rng.gauss
        load = clamp(self.load(now) + g(0, 0.4), 0.0, 120.0)
        x = load / 100.0
        flow = clamp(self.p.rated_flow_m3_s * (0.25 + 0.75 * x) + g(0, 1.5), 0.0, 1000.0)
        self.flow_total += flow * dt
        h = local_hour(now)
        calibrating = 0 <= (h - self.p.calibration_hour) * 60 < self.p.calibration_min
        return {
            "so2": round(clamp(self.p.so2 * (0.5 + 0.5 * x) + g(0, 1.0), 0, 2000), 2),
            "nox": round(clamp(self.p.nox * (0.6 + 0.4 * x) + g(0, 1.5), 0, 2000), 2),
            "dust": round(clamp(self.p.dust * (0.5 + 0.5 * x) + g(0, 0.2), 0, 500), 2),
            "o2": round(clamp(self.p.o2_no_load - (self.p.o2_no_load - self.p.o2_full_load) * x + g(0, 0.1), 0, 25), 2),
            "flue_flow": round(flow, 1),
            "flue_temp": round(clamp(85 + 45 * x + g(0, 0.5), 0, 300), 1),
            "flue_humidity": round(clamp(9.5 + 2.0 * x + g(0, 0.2), 0, 40), 2),
            "flue_pressure": round(clamp(-0.3 - 0.6 * x + g(0, 0.03), -10, 10), 3),
            "flue_velocity": round(clamp(flow / self.p.duct_area_m2, 0, 40), 2),
            "flow_total": int(self.flow_total),
            "unit_load": round(load, 2),
            "maintenance": self.maintenance_forced or calibrating,
        }


def create(seed: int, params: Mapping[str, object]) -> FlueGasCems:
    return FlueGasCems(seed, CemsParams.model_validate(params))
