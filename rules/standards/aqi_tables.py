"""HJ 633 AQI editions as dated data: breakpoints, report indicator sets, input rounding and levels.

Sources (shared/standards/air.md, all marked verified there):

- HJ 633-2026 Table 3 (IAQI breakpoints and its notes a-c), §4.2.2/§4.2.3 (indicators of the daily and real-time
  reports), §4.2.2 (concentrations rounded before the IAQI), Table 1 and Appendix A (levels, categories, colours).
  In force for data from 2026-03-01.
- HJ 633-2012 Table 1 (breakpoints and notes), §5 (daily report: 7 indicators; real-time report: 9 indicators),
  its level table and Appendix A (levels and colours), §6.2 (rounding up). Data before 2026-03-01.

A new edition, or a dated change of breakpoints, is one more ``Edition`` in ``EDITIONS``; the calculator in
``rules.standards.aqi`` has no edition-specific branch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from types import MappingProxyType
from typing import TypeVar

_K = TypeVar("_K")
_V = TypeVar("_V")


class Pollutant(StrEnum):
    SO2 = "so2"
    NO2 = "no2"
    CO = "co"
    O3 = "o3"
    PM10 = "pm10"
    PM25 = "pm25"


class Indicator(StrEnum):
    """A pollutant and its averaging period; the value names what the caller computed (e.g. ``o3_8h``: for a
    daily report the day's maximum 8-h mean, for the 2012 real-time report the 8-h moving mean)."""

    SO2_1H = "so2_1h"
    SO2_24H = "so2_24h"
    NO2_1H = "no2_1h"
    NO2_24H = "no2_24h"
    CO_1H = "co_1h"
    CO_24H = "co_24h"
    O3_1H = "o3_1h"
    O3_8H = "o3_8h"
    PM10_1H = "pm10_1h"
    PM10_24H = "pm10_24h"
    PM25_1H = "pm25_1h"
    PM25_24H = "pm25_24h"

    @property
    def pollutant(self) -> Pollutant:
        return Pollutant(self.value.rsplit("_", 1)[0])

    @property
    def unit(self) -> str:
        # HJ 633-2026 Table 3 / HJ 633-2012 Table 1: CO in mg/m³, the others in µg/m³
        return "mg/m³" if self.pollutant is Pollutant.CO else "µg/m³"


# HJ 633-2026 Table 3 / HJ 633-2012 Table 1: the IAQI at each breakpoint (the first column of the table).
IAQI_STEPS: tuple[int, ...] = (0, 50, 100, 150, 200, 300, 400, 500)


@dataclass(frozen=True, slots=True)
class AboveTop:
    """What a table note says for a concentration above a column's top breakpoint: a fixed IAQI, or the IAQI of
    another indicator instead."""

    clause: str
    iaqi: int | None = None
    use: Indicator | None = None


@dataclass(frozen=True, slots=True)
class Column:
    """One breakpoint column: the concentration at ``IAQI_STEPS[i]`` for each i (a column may stop early)."""

    breakpoints: tuple[Decimal, ...]
    above_top: AboveTop | None = None  # None: the table says nothing; capped at the top IAQI and flagged


@dataclass(frozen=True, slots=True)
class Level:
    """An AQI level (HJ 633-2026 Table 1 and Appendix A; the 2012 edition's level table and Appendix A)."""

    number: int  # 1..6
    roman: str  # I..VI
    name_zh: str  # 一级..六级
    category_zh: str
    category_en: str
    colour_zh: str
    colour_en: str
    rgb: tuple[int, int, int]
    cmyk: tuple[int, int, int, int]
    low: int  # the lowest AQI of the level
    high: int | None  # the highest AQI of the level; None for level VI (no upper bound)


@dataclass(frozen=True, slots=True)
class Edition:
    name: str
    effective_from: date  # the first (Asia/Shanghai) date whose data this edition indexes
    columns: Mapping[Indicator, Column]
    reports: Mapping[str, tuple[Indicator, ...]]  # report name -> the indicators whose IAQIs make the AQI
    decimals: Mapping[Pollutant, int]  # concentrations rounded to this many places before the IAQI
    levels: tuple[Level, ...]
    breakpoint_clause: str
    rounding_clause: str
    primary_clause: str
    missing_clause: str


def _col(*values: str, above_top: AboveTop | None = None) -> Column:
    return Column(tuple(Decimal(v) for v in values), above_top)


def _freeze(d: dict[_K, _V]) -> Mapping[_K, _V]:
    return MappingProxyType(d)


def _levels(level_i_low: int) -> tuple[Level, ...]:
    # HJ 633-2026 Table 1 + Appendix A (RGB, CMYK); HJ 633-2012's level table + Appendix A: the same except that level
    # I is 0-50 in 2012 and 1-50 in 2026 (an AQI of 0, all six concentrations 0, is shown as level I either way).
    rows = (
        (1, "I", "一级", "优", "excellent", "绿色", "green", (0, 228, 0), (40, 0, 100, 0), level_i_low, 50),
        (2, "II", "二级", "良", "good", "黄色", "yellow", (255, 255, 0), (0, 0, 100, 0), 51, 100),
        (3, "III", "三级", "轻度污染", "lightly polluted", "橙色", "orange", (255, 126, 0), (0, 52, 100, 0), 101, 150),
        (4, "IV", "四级", "中度污染", "moderately polluted", "红色", "red", (255, 0, 0), (0, 100, 100, 0), 151, 200),
        (5, "V", "五级", "重度污染", "heavily polluted", "紫色", "purple", (153, 0, 76), (10, 100, 40, 30), 201, 300),
        (
            6,
            "VI",
            "六级",
            "严重污染",
            "severely polluted",
            "褐红色",
            "maroon",
            (126, 0, 35),
            (30, 100, 100, 30),
            301,
            None,
        ),
    )
    return tuple(Level(*row) for row in rows)


# Columns both editions share (HJ 633-2026 Table 3 = HJ 633-2012 Table 1 for these; air.md "All other breakpoints
# are identical in both editions").
_SO2_24H = _col("0", "50", "150", "475", "800", "1600", "2100", "2620")
_NO2_24H = _col("0", "40", "80", "180", "280", "565", "750", "940")
_NO2_1H = _col("0", "100", "200", "700", "1200", "2340", "3090", "3840")
_CO_24H = _col("0", "2", "4", "14", "24", "36", "48", "60")
_CO_1H = _col("0", "5", "10", "35", "60", "90", "120", "150")
_O3_1H = _col("0", "160", "200", "300", "400", "800", "1000", "1200")
_SO2_1H_BP = ("0", "150", "500", "650", "800")  # stops at IAQI 200 in both editions
_O3_8H_BP = ("0", "100", "160", "215", "265", "800")  # stops at IAQI 300 in both editions

# HJ 633-2026 §4.2.2 (and, for 2012 data, the same rounding; HJ 633-2012 does not state it, HJ 663-2013 rounds
# the same way, check): SO2, NO2, O3, PM10, PM2.5 to integer µg/m³, CO to one decimal mg/m³.
_DECIMALS = _freeze(
    {Pollutant.SO2: 0, Pollutant.NO2: 0, Pollutant.O3: 0, Pollutant.PM10: 0, Pollutant.PM25: 0, Pollutant.CO: 1}
)

_SIX_1H = (Indicator.SO2_1H, Indicator.NO2_1H, Indicator.CO_1H, Indicator.O3_1H, Indicator.PM10_1H, Indicator.PM25_1H)

# --- HJ 633-2026 (from 2026-03-01) -------------------------------------------------------------------------------
_PM10_24H_2026 = _col("0", "50", "120", "250", "350", "420", "500", "600")  # Table 3: IAQI 100 at 120 (was 150)
_PM25_24H_2026 = _col("0", "35", "60", "115", "150", "250", "350", "500")  # Table 3: IAQI 100 at 60 (was 75)

HJ633_2026 = Edition(
    name="HJ 633-2026",
    effective_from=date(2026, 3, 1),
    columns=_freeze(
        {
            Indicator.SO2_24H: _SO2_24H,
            # Table 3 note b: SO2 1-h above 800 µg/m³ -> IAQI = 200
            Indicator.SO2_1H: _col(
                *_SO2_1H_BP,
                above_top=AboveTop("HJ 633-2026 Table 3 note b: SO2 1-h above 800 µg/m³, IAQI = 200", iaqi=200),
            ),
            Indicator.NO2_24H: _NO2_24H,
            Indicator.NO2_1H: _NO2_1H,
            Indicator.CO_24H: _CO_24H,
            Indicator.CO_1H: _CO_1H,
            # Table 3 note c: O3 8-h above 800 µg/m³ -> IAQI = 300
            Indicator.O3_8H: _col(
                *_O3_8H_BP,
                above_top=AboveTop("HJ 633-2026 Table 3 note c: O3 8-h above 800 µg/m³, IAQI = 300", iaqi=300),
            ),
            Indicator.O3_1H: _O3_1H,
            Indicator.PM10_24H: _PM10_24H_2026,
            Indicator.PM25_24H: _PM25_24H_2026,
            # §4.2.4: PM10 and PM2.5 1-h means are indexed with the 24-h column
            Indicator.PM10_1H: _PM10_24H_2026,
            Indicator.PM25_1H: _PM25_24H_2026,
        }
    ),
    reports=_freeze(
        {
            # §4.2.2: daily report, 24-h means of SO2, NO2, CO, PM10, PM2.5 and the daily maximum 8-h mean of O3
            "daily": (
                Indicator.SO2_24H,
                Indicator.NO2_24H,
                Indicator.CO_24H,
                Indicator.O3_8H,
                Indicator.PM10_24H,
                Indicator.PM25_24H,
            ),
            # §4.2.3: real-time report, the 1-h means of the six pollutants
            "hourly": _SIX_1H,
        }
    ),
    decimals=_DECIMALS,
    levels=_levels(1),  # Table 1: level I is AQI 1-50
    breakpoint_clause="HJ 633-2026 Table 3",
    rounding_clause="HJ 633-2026 §4.2.6: IAQI rounded up to an integer",
    primary_clause="HJ 633-2026 §4.3.1",
    missing_clause="HJ 633-2026 §5.3",
)

# --- HJ 633-2012 (data before 2026-03-01) ------------------------------------------------------------------------
_PM10_24H_2012 = _col("0", "50", "150", "250", "350", "420", "500", "600")  # Table 1
_PM25_24H_2012 = _col("0", "35", "75", "115", "150", "250", "350", "500")  # Table 1

HJ633_2012 = Edition(
    name="HJ 633-2012",
    effective_from=date.min,  # air.md: data before 2026-03-01 is indexed with the 2012 edition
    columns=_freeze(
        {
            Indicator.SO2_24H: _SO2_24H,
            # Table 1 note (3): SO2 1-h above 800 µg/m³ has no 1-h IAQI; the 24-h SO2 IAQI is reported instead
            Indicator.SO2_1H: _col(
                *_SO2_1H_BP,
                above_top=AboveTop(
                    "HJ 633-2012 Table 1 note 3: SO2 1-h above 800 µg/m³, the 24-h SO2 IAQI is reported",
                    use=Indicator.SO2_24H,
                ),
            ),
            Indicator.NO2_24H: _NO2_24H,
            Indicator.NO2_1H: _NO2_1H,
            Indicator.CO_24H: _CO_24H,
            Indicator.CO_1H: _CO_1H,
            # Table 1 note (4): O3 8-h above 800 µg/m³ has no 8-h IAQI; the 1-h O3 IAQI is reported instead
            Indicator.O3_8H: _col(
                *_O3_8H_BP,
                above_top=AboveTop(
                    "HJ 633-2012 Table 1 note 4: O3 8-h above 800 µg/m³, the 1-h O3 IAQI is reported",
                    use=Indicator.O3_1H,
                ),
            ),
            Indicator.O3_1H: _O3_1H,
            Indicator.PM10_24H: _PM10_24H_2012,
            Indicator.PM25_24H: _PM25_24H_2012,
            # The 2012 table has PM columns for 24 h only; 1-h PM means are indexed against them, as the 2026 edition
            # later wrote down (air.md: how the 2012 platform did it is not settled, check).
            Indicator.PM10_1H: _PM10_24H_2012,
            Indicator.PM25_1H: _PM25_24H_2012,
        }
    ),
    reports=_freeze(
        {
            # §5: daily report, 7 indicators: the 24-h means, and O3's daily maximum 1-h and maximum 8-h means
            "daily": (
                Indicator.SO2_24H,
                Indicator.NO2_24H,
                Indicator.CO_24H,
                Indicator.O3_1H,
                Indicator.O3_8H,
                Indicator.PM10_24H,
                Indicator.PM25_24H,
            ),
            # Real-time AQI from the six 1-h means (PM against the 24-h column), the method HJ 633-2026 §4.2.3 codified.
            "hourly": _SIX_1H,
            # §5: the real-time report's 9 indicators: the six 1-h means, the O3 8-h moving mean and the PM10/PM2.5
            # 24-h moving means; offered for consumers who recompute 2012 history that way (air.md: not settled).
            "hourly_nine": (*_SIX_1H, Indicator.O3_8H, Indicator.PM10_24H, Indicator.PM25_24H),
        }
    ),
    decimals=_DECIMALS,
    levels=_levels(0),  # level I is AQI 0-50 in the 2012 edition
    breakpoint_clause="HJ 633-2012 Table 1",
    rounding_clause="HJ 633-2012 §6.2: IAQI rounded up to an integer",
    primary_clause="HJ 633-2012 §4.3 (the same rule as HJ 633-2026 §4.3.1)",
    missing_clause="HJ 633-2012 has no missing-data clause; the HJ 633-2026 §5.3 rule is applied",
)

EDITIONS: tuple[Edition, ...] = (HJ633_2012, HJ633_2026)  # oldest first
