"""Simulated field devices for Lifeline: Modbus TCP devices, MQTT sensors, and whole districts from scenarios.

What it offers:

- ``make_behaviour(profile, seed, params)`` and the behaviour classes (``SluiceGate``, ``WaterQualityStation``,
  ``AirQualityStation``, ``FlueGasCems``, ``GasDetector``, ``FireDetector``, ``NoiseMeter``): pure, seeded models
  giving engineering values for every point of a catalogue profile at a time ``now``.
- ``ModbusDevice``: a behaviour served over Modbus TCP with pymodbus, with faults on demand (``stuck``, ``spike``,
  ``set_value``, ``stop_answering``/``resume``, ``exception``/``clear_exception``, ``slow``, ``max_registers``).
- ``Sensor`` and ``SensorFleet``: MQTT sensors publishing their vendor's JSON (QoS 1, reconnecting), with events on
  demand (``leak``, ``trip``, ``fault``, ``clear``, ``silence``/``resume``).
- ``load_scenario``, ``Scenario``, ``plan``: a district in YAML (``simulators/scenarios/``: ``baoshan``, ``mini``).
- ``District`` and ``run_district``: every device of a scenario in this process, and each site's edge config.
- ``vendor_messages``: the vendor JSON of an MQTT profile for given values.

``python -m simulators.farm --profile P --count N`` runs N Modbus devices of one profile (for benchmarks).
"""

from simulators.behaviours import (
    BEHAVIOURS,
    AirQualityStation,
    Behaviour,
    FireDetector,
    FlueGasCems,
    GasDetector,
    NoiseMeter,
    SluiceGate,
    UnknownProfile,
    Value,
    WaterQualityStation,
    make_behaviour,
)
from simulators.district import District, run_district
from simulators.modbus import ModbusDevice, RegisterMap
from simulators.mqtt_sensors import Sensor, SensorFleet
from simulators.scenario import SCENARIOS, PlannedDevice, Scenario, load_scenario, plan
from simulators.vendor_json import vendor_messages

__all__ = [
    "BEHAVIOURS",
    "SCENARIOS",
    "AirQualityStation",
    "Behaviour",
    "District",
    "FireDetector",
    "FlueGasCems",
    "GasDetector",
    "ModbusDevice",
    "NoiseMeter",
    "PlannedDevice",
    "RegisterMap",
    "Scenario",
    "Sensor",
    "SensorFleet",
    "SluiceGate",
    "UnknownProfile",
    "Value",
    "WaterQualityStation",
    "load_scenario",
    "make_behaviour",
    "plan",
    "run_district",
    "vendor_messages",
]
