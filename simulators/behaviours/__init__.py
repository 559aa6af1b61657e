"""Device behaviours: pure, seeded models giving engineering values for every point of a profile at a time ``now``.

One module per profile. ``make_behaviour(profile, seed, params)`` builds one; ``BEHAVIOURS`` lists them with the
pydantic model of their parameters (scenario files are validated against it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from simulators.behaviours import (
    air_quality_station,
    fire_detector,
    flue_gas_cems,
    gas_detector,
    noise_meter,
    oxygen_detector,
    sluice_gate_plc,
    toxic_gas_detector,
    water_quality_station,
)
from simulators.behaviours._base import Behaviour, BehaviourParams, Value, local_hour
from simulators.behaviours.air_quality_station import AirQualityStation
from simulators.behaviours.fire_detector import FireDetector
from simulators.behaviours.flue_gas_cems import FlueGasCems
from simulators.behaviours.gas_detector import GasDetector
from simulators.behaviours.noise_meter import NoiseMeter
from simulators.behaviours.oxygen_detector import OxygenDetector
from simulators.behaviours.sluice_gate_plc import SluiceGate
from simulators.behaviours.toxic_gas_detector import ToxicGasDetector
from simulators.behaviours.water_quality_station import WaterQualityStation


@dataclass(frozen=True, slots=True)
class BehaviourKind:
    params: type[BehaviourParams]
    make: Callable[[int, Mapping[str, object]], Behaviour]


BEHAVIOURS: dict[str, BehaviourKind] = {
    "sluice_gate_plc": BehaviourKind(sluice_gate_plc.GateParams, sluice_gate_plc.create),
    "water_quality_station": BehaviourKind(water_quality_station.WaterQualityParams, water_quality_station.create),
    "air_quality_station": BehaviourKind(air_quality_station.AirQualityParams, air_quality_station.create),
    "flue_gas_cems": BehaviourKind(flue_gas_cems.CemsParams, flue_gas_cems.create),
    "gas_detector": BehaviourKind(gas_detector.GasParams, gas_detector.create),
    "fire_detector": BehaviourKind(fire_detector.FireParams, fire_detector.create),
    "noise_meter": BehaviourKind(noise_meter.NoiseParams, noise_meter.create),
    "toxic_gas_detector": BehaviourKind(toxic_gas_detector.ToxicParams, toxic_gas_detector.create),
    "oxygen_detector": BehaviourKind(oxygen_detector.OxygenParams, oxygen_detector.create),
}


class UnknownProfile(KeyError):
    """No behaviour simulates this profile."""


def make_behaviour(profile: str, seed: int, params: Mapping[str, object] | None = None) -> Behaviour:
    """A behaviour for ``profile``; ``params`` are validated (pydantic ValidationError names a bad key)."""
    kind = BEHAVIOURS.get(profile)
    if kind is None:
        raise UnknownProfile(f"no behaviour for profile {profile!r} (known: {', '.join(sorted(BEHAVIOURS))})")
    return kind.make(seed, params or {})


__all__ = [
    "BEHAVIOURS",
    "AirQualityStation",
    "Behaviour",
    "BehaviourKind",
    "BehaviourParams",
    "FireDetector",
    "FlueGasCems",
    "GasDetector",
    "NoiseMeter",
    "OxygenDetector",
    "SluiceGate",
    "ToxicGasDetector",
    "UnknownProfile",
    "Value",
    "WaterQualityStation",
    "local_hour",
    "make_behaviour",
]
