"""An ambient air-quality station in Shanghai (profile ``air_quality_station``).

Particles and NO2 peak with the morning (08:00) and evening (19:00) traffic, ozone builds to a mid-afternoon
peak, SO2 stays low (coal is gone from the city's boilers), CO follows traffic weakly. Weather: temperature
warmest mid-afternoon and by season, humidity the other way round, a few m/s of wind wandering in direction,
pressure higher in winter. ``uptime`` counts seconds since the analyser started; ``station_code`` is the
station's short code.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import Field

from simulators.behaviours._base import Behaviour, BehaviourParams, Value, bump, clamp, daily, seasonal


class AirQualityParams(BehaviourParams):
    station_code: str = Field(default="3101A", max_length=8, description="up to 8 ASCII characters")
    pm25: float = Field(default=30.0, gt=0, description="background PM2.5, µg/m³")
    no2: float = Field(default=28.0, gt=0)
    o3: float = Field(default=45.0, gt=0, description="night-time ozone, µg/m³")
    so2: float = Field(default=6.0, gt=0)
    started_at: float | None = Field(default=None, description="epoch s the analyser started; default first step")


class AirQualityStation(Behaviour):
    profile = "air_quality_station"

    def __init__(self, seed: int, params: AirQualityParams | None = None) -> None:
        super().__init__(seed)
        self.p = params or AirQualityParams()
        self.started_at = self.p.started_at
        self.wind_dir = self.rng.uniform(0, 360)
        self.weather = 0.0  # slow AR(1) term: stagnant (+) or clean (-) air

    def step(self, now: float) -> dict[str, Value]:
        dt = self._advance(now)
        if self.started_at is None:
            self.started_at = now
        g = self.rng.gauss
        keep = 0.9999**dt
        self.weather = keep * self.weather + (1 - keep) ** 0.5 * g(0, 0.4)
        self.wind_dir = (self.wind_dir + g(0, 2.0) * min(dt, 60.0) ** 0.5) % 360
        traffic = bump(now, 8.0, 1.5) + 0.9 * bump(now, 19.0, 1.8)
        sun = bump(now, 14.5, 2.5)
        season = seasonal(now)
        stagnant = 1.0 + self.weather
        pm25 = (self.p.pm25 * (1 - 0.3 * season) + 18 * traffic) * stagnant + g(0, 1.5)
        temperature = 17.0 + 10.5 * season + 3.5 * daily(now, 14.5) + g(0, 0.1)
        return {
            "pm25": round(clamp(pm25, 2, 1000)),
            "pm10": round(clamp(1.55 * pm25 + 12 + g(0, 3), 5, 2000)),
            "so2": round(clamp(self.p.so2 + 3 * traffic + g(0, 0.8), 1, 3000)),
            "no2": round(clamp((self.p.no2 + 30 * traffic - 8 * sun) * stagnant + g(0, 2), 2, 2000)),
            "o3": round(clamp(self.p.o3 * (1 + 0.4 * season) + 110 * sun - 15 * traffic + g(0, 3), 2, 1500)),
            "co": round(clamp(0.55 + 0.35 * traffic + g(0, 0.03), 0.1, 100), 2),
            "temperature": round(clamp(temperature, -20, 50), 1),
            "humidity": round(clamp(72 - 14 * daily(now, 14.5) + 6 * season + g(0, 1), 5, 100), 1),
            "wind_speed": round(clamp(2.6 + 1.2 * sun + abs(g(0, 0.6)) - 1.5 * self.weather, 0, 60), 1),
            "wind_dir": round(self.wind_dir) % 360,
            "pressure": round(clamp(1013.5 - 9.0 * season + g(0, 0.2), 850, 1100), 2),
            "uptime": int(now - self.started_at),
            "station_code": self.p.station_code,
        }


def create(seed: int, params: Mapping[str, object]) -> AirQualityStation:
    return AirQualityStation(seed, AirQualityParams.model_validate(params))
