"""Toxic gas and oxygen alarm set points (GB/T 50493-2019) and the occupational exposure limits they rest on (GBZ 2.1).

Facts from shared/standards/gas-safety.md (its numbers are marked check there; they were not read from the official
texts):

- GB/T 50493-2019 §5.5 (sub-clause: check): a toxic-gas detector's first-level alarm at most 100 %OEL, its
  second-level alarm at most 200 %OEL; oxygen: enrichment (过氧) 23.5 %VOL, deficiency (欠氧) 19.5 %VOL ("should be",
  宜). Rising alarms trigger at value ≥ set point, the deficiency alarm at value ≤ set point. The values are upper
  bounds: an enterprise may set lower ones (its own rule pack).
- OEL per gas: GBZ 2.1-2019 (工作场所有害因素职业接触限值 第1部分: 化学有害因素), as transcribed in gas-safety.md from a
  detector vendor's table that reproduces GB/T 50493-2019 practice, not from GBZ 2.1 itself: OEL = MAC where GBZ 2.1
  gives one, else PC-TWA; mg/m³. Check each number against GBZ 2.1-2019 Table 1 before release; which of MAC,
  PC-STEL or PC-TWA GB/T 50493 means by "OEL" is also marked check there (it decides the numbers).
- ppm ↔ mg/m³: mg/m³ = ppm × M / Vm; Vm = 24.0 L/mol at 20 °C is common Chinese practice (check the reference
  conditions of GBZ 2.1). The molar masses below are the usual ones (g/mol), not from either standard.

``TOXIC_GASES`` is the one table; ``rules/packs/toxic_gas.yaml`` holds a rule per gas at ``set_points(gas)`` (a unit
test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

FIRST_LEVEL_PCT_OEL = 100.0  # GB/T 50493-2019 §5.5: first-level alarm ≤ 100 %OEL
SECOND_LEVEL_PCT_OEL = 200.0  # second-level alarm ≤ 200 %OEL
OXYGEN_DEFICIENCY_PCT_VOL = 19.5  # 欠氧: alarm at ≤ 19.5 %VOL
OXYGEN_ENRICHMENT_PCT_VOL = 23.5  # 过氧: alarm at ≥ 23.5 %VOL
MOLAR_VOLUME_L = 24.0  # L/mol at 20 °C, 101.325 kPa (practice, check GBZ 2.1's reference conditions)


@dataclass(frozen=True, slots=True)
class ExposureLimit:
    """One gas's GBZ 2.1 limits (mg/m³; None: not given) and the OEL GB/T 50493 alarms are set from."""

    name: str
    formula: str
    molar_mass: float  # g/mol
    mac: float | None  # maximum allowable concentration
    pc_twa: float | None  # permissible concentration, time-weighted average (8 h)
    pc_stel: float | None  # permissible concentration, short-term exposure limit (15 min)
    idlh: float | None  # immediately dangerous to life or health

    @property
    def oel(self) -> float:
        """MAC where GBZ 2.1 gives one, else PC-TWA (gas-safety.md: the vendor table's reading, check)."""
        limit = self.mac if self.mac is not None else self.pc_twa
        assert limit is not None, self.name
        return limit


# GBZ 2.1-2019 as transcribed in shared standards/gas-safety.md (check every number against the standard's Table 1)
TOXIC_GASES: Mapping[str, ExposureLimit] = MappingProxyType(
    {
        "h2s": ExposureLimit("hydrogen sulfide", "H2S", 34.08, 10, None, None, 430),
        "co": ExposureLimit("carbon monoxide", "CO", 28.01, None, 20, 30, 1700),
        "no2": ExposureLimit("nitrogen dioxide", "NO2", 46.01, None, 5, 10, 96),
        "so2": ExposureLimit("sulfur dioxide", "SO2", 64.07, None, 5, 10, 270),
        "nh3": ExposureLimit("ammonia", "NH3", 17.03, None, 20, 30, 360),
        "cl2": ExposureLimit("chlorine", "Cl2", 70.90, 1, None, None, 88),
        "hcn": ExposureLimit("hydrogen cyanide", "HCN", 27.03, 1, None, None, 56),
        "hcl": ExposureLimit("hydrogen chloride", "HCl", 36.46, 7.5, None, None, 150),
        "hf": ExposureLimit("hydrogen fluoride", "HF", 20.01, 2, None, None, 500),
        "cocl2": ExposureLimit("phosgene", "COCl2", 98.92, 0.5, None, None, 8),
        "o3": ExposureLimit("ozone", "O3", 48.00, 0.3, None, None, 20),
        "co2": ExposureLimit("carbon dioxide", "CO2", 44.01, None, 9000, 18000, 92000),
        "benzene": ExposureLimit("benzene", "C6H6", 78.11, None, 6, 10, 9800),
        "toluene": ExposureLimit("toluene", "C7H8", 92.14, None, 50, 100, 7700),
        "xylene": ExposureLimit("xylene", "C8H10", 106.17, None, 50, 100, 4400),
        "methanol": ExposureLimit("methanol", "CH3OH", 32.04, None, 25, 50, 33000),
        "acrylonitrile": ExposureLimit("acrylonitrile", "C3H3N", 53.06, None, 1, 2, 1100),
        "vinyl_chloride": ExposureLimit("vinyl chloride", "C2H3Cl", 62.50, None, 10, 25, None),
    }
)


def exposure_limit(gas: str) -> ExposureLimit:
    """The table's row for ``gas`` (a device's ``gas`` tag); KeyError naming the known gases."""
    try:
        return TOXIC_GASES[gas]
    except KeyError:
        raise KeyError(f"gas {gas!r} has no OEL in the table (known: {', '.join(sorted(TOXIC_GASES))})") from None


def set_points(gas: str) -> tuple[float, float]:
    """(first-level, second-level) alarm set points in mg/m³: 100 % and 200 % of the gas's OEL."""
    oel = exposure_limit(gas).oel
    return round(oel * FIRST_LEVEL_PCT_OEL / 100, 6), round(oel * SECOND_LEVEL_PCT_OEL / 100, 6)


def oel_percent(gas: str, mg_m3: float) -> float:
    """A concentration (mg/m³) as %OEL of ``gas``."""
    return mg_m3 / exposure_limit(gas).oel * 100


def mg_m3_from_ppm(gas: str, ppm: float, molar_volume_l: float = MOLAR_VOLUME_L) -> float:
    """ppm (by volume) to mg/m³: ppm × M / Vm (a detector that reports ppm: its profile's ``scale``)."""
    if molar_volume_l <= 0:
        raise ValueError(f"molar volume {molar_volume_l} L/mol must be positive")
    return ppm * exposure_limit(gas).molar_mass / molar_volume_l
