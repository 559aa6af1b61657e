"""Surface-water class by GB 3838-2002 Table 1 (basic items): per parameter and overall (the worst decides).

Facts from shared/standards/water.md:

- GB 3838-2002 Table 1: class I-V limits; a value equal to a limit meets that class (≤ for most parameters, ≥ for
  dissolved oxygen); the best class whose limit the value meets is the parameter's class; one that meets no class
  (pH outside 6-9, DO below 2, ...) is 劣V, worse than class V.
- Total phosphorus has separate limits for lakes and reservoirs; total nitrogen is limited for lakes and
  reservoirs only. The water body is a station attribute.
- The station's class is the worst parameter class; the parameters at that class decide it. Which parameters take
  part comes from the surface-water assessment rules (2011, check), which leave TN out of the routine class (rivers)
  and assess it separately (lakes, reservoirs): by default TN is classified but does not take part; a station may
  list its own parameters.
- Water temperature, conductivity and turbidity have no class (no single-reading GB 3838 limit).

Units: the point names and units of device_profiles' ``water_quality_station`` (mg/L, pH dimensionless) are those
of GB 3838 Table 1, so no conversion is needed; ``PARAMETERS`` declares each unit and a test pins it to the profile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rules.standards._numbers import Number, as_decimal, round_gbt8170


class WaterBody(StrEnum):
    RIVER = "river"
    LAKE = "lake"  # lakes and reservoirs (湖、库)


class WaterClass(IntEnum):
    """Classes as stored: 1-5, and 6 for 劣V (water.md, proposal)."""

    I = 1  # noqa: E741 -- the class is named I
    II = 2
    III = 3
    IV = 4
    V = 5
    WORSE_THAN_V = 6

    @property
    def label(self) -> str:
        return "劣V" if self is WaterClass.WORSE_THAN_V else self.name

    @property
    def quality_zh(self) -> str:
        # water.md: public-reporting names under the assessment rules (check)
        return _QUALITY[self][0]

    @property
    def quality_en(self) -> str:
        return _QUALITY[self][1]


_QUALITY: Mapping[WaterClass, tuple[str, str]] = MappingProxyType(
    {
        WaterClass.I: ("优", "excellent"),
        WaterClass.II: ("优", "excellent"),
        WaterClass.III: ("良", "good"),
        WaterClass.IV: ("轻度污染", "lightly polluted"),
        WaterClass.V: ("中度污染", "moderately polluted"),
        WaterClass.WORSE_THAN_V: ("重度污染", "heavily polluted"),
    }
)

_CLASSES = (WaterClass.I, WaterClass.II, WaterClass.III, WaterClass.IV, WaterClass.V)


@dataclass(frozen=True, slots=True)
class Parameter:
    point: str
    name: str
    unit: str
    sense: Literal["max", "min", "range"]  # value ≤ limit, value ≥ limit, or inside [low, high]
    limits: Mapping[WaterBody, tuple[Decimal, ...]]  # five limits (I..V), or (low, high) for a range
    clause: str


def _d(*values: str) -> tuple[Decimal, ...]:
    return tuple(Decimal(v) for v in values)


def _both(limits: tuple[Decimal, ...]) -> Mapping[WaterBody, tuple[Decimal, ...]]:
    return MappingProxyType({WaterBody.RIVER: limits, WaterBody.LAKE: limits})


_T1 = "GB 3838-2002 Table 1"

# GB 3838-2002 Table 1, basic items (water.md). Point names: shared/standards README "Water"; bod5 has no
# canonical point yet (a lab value; named here for completeness).
PARAMETERS: Mapping[str, Parameter] = MappingProxyType(
    {
        p.point: p
        for p in (
            Parameter("ph", "pH", "pH", "range", _both(_d("6", "9")), f"{_T1}: pH 6-9, all classes"),
            # DO class I is 7.5 mg/L "or saturation ≥ 90 %"; stations here report mg/L only, so 7.5 is used
            Parameter(
                "do", "dissolved oxygen", "mg/L", "min", _both(_d("7.5", "6", "5", "3", "2")), f"{_T1}: DO ≥ limit"
            ),
            Parameter("codmn", "permanganate index", "mg/L", "max", _both(_d("2", "4", "6", "10", "15")), _T1),
            Parameter("cod", "COD", "mg/L", "max", _both(_d("15", "15", "20", "30", "40")), _T1),
            Parameter("bod5", "BOD5", "mg/L", "max", _both(_d("3", "3", "4", "6", "10")), _T1),
            Parameter(
                "nh3_n", "ammonia nitrogen (as N)", "mg/L", "max", _both(_d("0.15", "0.5", "1.0", "1.5", "2.0")), _T1
            ),
            Parameter(
                "tp",
                "total phosphorus (as P)",
                "mg/L",
                "max",
                MappingProxyType(
                    {
                        WaterBody.RIVER: _d("0.02", "0.1", "0.2", "0.3", "0.4"),
                        WaterBody.LAKE: _d("0.01", "0.025", "0.05", "0.1", "0.2"),  # 湖、库
                    }
                ),
                f"{_T1}: rivers, lakes and reservoirs apart",
            ),
            # TN for lakes and reservoirs only
            Parameter(
                "tn",
                "total nitrogen (as N)",
                "mg/L",
                "max",
                MappingProxyType({WaterBody.LAKE: _d("0.2", "0.5", "1.0", "1.5", "2.0")}),
                f"{_T1}: lakes and reservoirs only",
            ),
        )
    }
)

# Points a water station reports that GB 3838 gives no class (water.md): shown, never classified.
UNCLASSIFIED_POINTS = frozenset({"water_temp", "conductivity", "turbidity"})

# The routine class leaves TN out (assessment rules of 2011, check): classified and reported, not deciding.
DEFAULT_PARAMETERS = frozenset(PARAMETERS) - {"tn"}


class WaterStation(BaseModel):
    """A station's attributes for classing: water body, target class and, optionally, the taking-part parameters
    and the decimals values are rounded to before comparison (practice: the method's reporting precision)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    water_body: WaterBody
    target_class: WaterClass | None = None
    parameters: frozenset[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]] = DEFAULT_PARAMETERS
    decimals: dict[str, Annotated[int, Field(ge=0, le=6)]] = Field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ParameterClass:
    point: str
    value: Decimal  # as compared (rounded when the station says so)
    water_class: WaterClass
    limit: tuple[Decimal, ...]  # the limit met (one value, or the range); empty for 劣V
    clause: str


@dataclass(frozen=True, slots=True)
class WaterResult:
    water_class: WaterClass | None  # None when no taking-part parameter had a value
    deciding: tuple[str, ...]  # the parameters at the station's class
    used: tuple[str, ...]  # the parameters that took part (an automatic-station class must say them)
    parameters: tuple[ParameterClass, ...]  # every classified parameter, taking part or not
    unclassified: tuple[str, ...]  # points given that have no GB 3838 class


def parameter_class(point: str, value: Number, water_body: WaterBody, *, decimals: int | None = None) -> ParameterClass:
    """The class of one parameter's value (GB 3838-2002 Table 1): the best class whose limit it meets."""
    param = PARAMETERS.get(point)
    if param is None:
        raise ValueError(f"{point!r} has no GB 3838-2002 class; classified points: {', '.join(PARAMETERS)}")
    limits = param.limits.get(water_body)
    if limits is None:
        raise ValueError(f"{point}: GB 3838-2002 gives no limit for a {water_body.value} ({param.clause})")
    dec = as_decimal(value, point)
    if decimals is not None:
        dec = round_gbt8170(dec, decimals)
    if param.sense == "range":
        low, high = limits
        if low <= dec <= high:  # the edges are inside
            return ParameterClass(point, dec, WaterClass.I, limits, param.clause)
        return ParameterClass(point, dec, WaterClass.WORSE_THAN_V, (), param.clause)
    for cls, limit in zip(_CLASSES, limits, strict=True):
        meets = dec >= limit if param.sense == "min" else dec <= limit  # equal to the limit meets the class
        if meets:
            return ParameterClass(point, dec, cls, (limit,), param.clause)
    return ParameterClass(point, dec, WaterClass.WORSE_THAN_V, (), param.clause)


def water_class(values: Mapping[str, Number | None], station: WaterStation) -> WaterResult:
    """Every parameter's class and the station's: the worst of the taking-part parameters (GB 3838-2002 §4 with
    the assessment rules' worst-factor method, water.md). None values are missing; unknown points raise."""
    classified: list[ParameterClass] = []
    unclassified: list[str] = []
    for point, value in values.items():
        if value is None:
            continue
        if point in UNCLASSIFIED_POINTS or (point in PARAMETERS and station.water_body not in PARAMETERS[point].limits):
            unclassified.append(point)  # e.g. TN at a river: GB 3838 gives it no limit
            continue
        classified.append(parameter_class(point, value, station.water_body, decimals=station.decimals.get(point)))
    used = [c for c in classified if c.point in station.parameters]
    worst = max((c.water_class for c in used), default=None)
    deciding = tuple(c.point for c in used if c.water_class == worst)
    return WaterResult(worst, deciding, tuple(c.point for c in used), tuple(classified), tuple(unclassified))


def misses_target(result: WaterResult, target: WaterClass | None) -> bool | None:
    """Whether the station's class is worse than its target; None when there is no class or no target."""
    if result.water_class is None or target is None:
        return None
    return result.water_class > target
