"""Every name the platform stores in InfluxDB: measurements, tags, fields and suffixes. Written once, here.

Raw telemetry (the bridge): the measurement comes from the device profile; tags ``site``, ``device``, ``profile``
and the profile's own. A point ``P`` of a sample is the field ``P``; its quality, when not good, the integer field
``P.q`` (the wire contract's ``Quality`` code: 1 uncertain, 2 bad) and its reason the string field ``P.reason``.

Derived series (written by the rules engine from the raw ones, through the same encoder and writer):

* valid means: ``<measurement>_hourly`` and ``<measurement>_daily``, the source's tags, at the period's start;
  ``P`` the mean, ``P.n`` the count behind it, an invalid period ``P.n``, ``P.q = 2`` and ``P.reason``; the O3
  daily maximum 8-hour mean is the daily field ``P_8h_max``, its daily maximum 1-hour mean ``P_1h_max``;
* the air quality index (HJ 633): ``air_quality_aqi_hourly`` / ``_daily`` (fields in ``Aqi``);
* the daily surface-water class (GB 3838-2002): ``water_quality_class_daily`` (fields in ``WaterClassField``);
* the noise verdict (GB 3096-2008): extra fields of the ``noise_hourly`` row (``Noise``).
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "AIR",
    "AQI_DAILY",
    "AQI_HOURLY",
    "COUNT_SUFFIX",
    "DAILY",
    "DEVICE",
    "HOURLY",
    "LD",
    "LN",
    "MAX_1H",
    "MAX_8H",
    "NOISE",
    "NOISE_ZONE_TAG",
    "PROFILE",
    "QUALITY_SUFFIX",
    "REASON_SUFFIX",
    "SITE",
    "TARGET_TAG",
    "WATER",
    "WATER_BODY_TAG",
    "WATER_CLASS_DAILY",
    "Aqi",
    "Noise",
    "WaterClassField",
    "daily",
    "hourly",
]

# --- raw telemetry -------------------------------------------------------------------------------------------------
SITE: Final = "site"
DEVICE: Final = "device"
PROFILE: Final = "profile"
QUALITY_SUFFIX: Final = ".q"
REASON_SUFFIX: Final = ".reason"

# --- valid means ---------------------------------------------------------------------------------------------------
HOURLY: Final = "_hourly"
DAILY: Final = "_daily"
COUNT_SUFFIX: Final = ".n"
MAX_8H: Final = "_8h_max"
MAX_1H: Final = "_1h_max"  # the daily maximum hourly mean (O3, HJ 633-2012 daily report)
LD: Final = "_ld"  # a sound level's day level Ld (energy mean of the day hours, GB 3096-2008), a daily field
LN: Final = "_ln"  # its night level Ln (energy mean of the night hours), a daily field

# --- measurements of the derived indices ---------------------------------------------------------------------------
AIR: Final = "air_quality"
NOISE: Final = "noise"
WATER: Final = "water_quality"
AQI_HOURLY: Final = "air_quality_aqi_hourly"
AQI_DAILY: Final = "air_quality_aqi_daily"
WATER_CLASS_DAILY: Final = "water_quality_class_daily"

# --- device tags the indices read ----------------------------------------------------------------------------------
WATER_BODY_TAG: Final = "water_body"
TARGET_TAG: Final = "target_class"
NOISE_ZONE_TAG: Final = "noise_zone"


def hourly(measurement: str) -> str:
    """The measurement of the valid hourly means of ``measurement``."""
    return measurement + HOURLY


def daily(measurement: str) -> str:
    """The measurement of the valid daily means of ``measurement``."""
    return measurement + DAILY


class Aqi:
    """Fields of ``air_quality_aqi_hourly`` / ``_daily``."""

    AQI: Final = "aqi"  # absent when no indicator has an IAQI
    LEVEL: Final = "level"  # 1-6
    CATEGORY: Final = "category"  # Chinese
    CATEGORY_EN: Final = "category_en"
    COLOUR: Final = "colour"
    PRIMARY: Final = "primary"  # comma-separated, empty when AQI <= 50
    MISSING: Final = "missing"  # comma-separated indicators
    EDITION: Final = "edition"
    IAQI_PREFIX: Final = "iaqi_"  # iaqi_<indicator>
    CAPPED: Final = "aqi_capped"  # true: an IAQI above its column's top breakpoint was capped at 500 (review it)


class WaterClassField:
    """Fields of ``water_quality_class_daily``."""

    CLASS: Final = "class"  # 1-6, 6 = worse than V
    LABEL: Final = "class_label"
    QUALITY_EN: Final = "quality_en"
    DECIDING: Final = "deciding"  # comma-separated points
    USED: Final = "used"
    WATER_BODY: Final = "water_body"
    CLASS_PREFIX: Final = "class_"  # class_<point>
    TARGET: Final = "target_class"
    OVER_TARGET: Final = "class_over_target"
    TARGET_MISSED: Final = "target_missed"


class Noise:
    """The noise meter's point and the verdict fields added to its ``noise_hourly`` row."""

    LAEQ: Final = "noise_laeq"
    LIMIT_DB: Final = "noise_limit_db"
    EXCEEDED: Final = "noise_exceeded"
