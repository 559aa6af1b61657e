"""The air quality index as a derived series: from the stored valid means to ``air_quality_aqi_hourly`` and
``air_quality_aqi_daily`` (HJ 633-2012 / HJ 633-2026, the edition by the period's Asia/Shanghai date;
``rules.standards``). Pure: means in, rows out (``storage.lineproto.encode_row``, names from ``storage.schema``);
``rules.valid_means`` writes them with the means.

Hourly AQI: the six 1-hour means (SO2, NO2, CO, O3, PM10, PM2.5) of the hour (HJ 633-2026 §5.1, real-time
report). Daily AQI: the 24-hour means of SO2, NO2, CO, PM10, PM2.5 and the daily maximum 8-hour mean of O3 (§5.2);
for days before 2026-03-01 (HJ 633-2012 §5) also the O3 daily maximum 1-hour mean.
A mean that is not valid (GB 3095-2012 Table 4) counts as missing (§5.3: AQI, level and primary pollutant come
from the others). Fields: ``aqi`` (absent when no indicator has an IAQI), ``level`` (1-6), ``category``
(Chinese), ``category_en``, ``colour``, ``primary`` (comma-separated, empty when AQI <= 50), ``iaqi_<indicator>``,
``missing`` (comma-separated indicators), ``edition``, ``aqi_capped`` (with ``aqi``: true when an IAQI above its
column's top breakpoint was capped at 500, to be reviewed).

Daily water class (GB 3838-2002 §4 and Table 1): from the daily valid means of a ``water_quality`` station, with
the station's device tags ``water_body`` (river | lake) and ``target_class`` (I-V), to ``water_quality_class_daily``
(``water_class_line``); a station without a valid ``water_body`` tag is not classed (``StationTagError``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from rules._means import Mean, Tags
from rules.standards import (
    PARAMETERS,
    AqiResult,
    NoiseZone,
    WaterBody,
    WaterClass,
    WaterResult,
    WaterStation,
    daily_aqi,
    hourly_aqi,
    misses_target,
    noise_verdict,
    water_class,
)
from storage.lineproto import FieldValue, encode_row
from storage.schema import (
    COUNT_SUFFIX,
    DEVICE,
    MAX_1H,
    MAX_8H,
    NOISE_ZONE_TAG,
    SITE,
    TARGET_TAG,
    WATER_BODY_TAG,
    WATER_CLASS_DAILY,
    Aqi,
    Noise,
    WaterClassField,
)

TZ = ZoneInfo("Asia/Shanghai")

_HOURLY = {"so2": "so2_1h", "no2": "no2_1h", "co": "co_1h", "o3": "o3_1h", "pm10": "pm10_1h", "pm25": "pm25_1h"}
_DAILY = {
    "so2": "so2_24h",
    "no2": "no2_24h",
    "co": "co_24h",
    "pm10": "pm10_24h",
    "pm25": "pm25_24h",
    "o3" + MAX_8H: "o3_8h",
    "o3" + MAX_1H: "o3_1h",  # HJ 633-2012 §5: the daily report's O3 daily maximum 1-hour mean (2012 days only)
}


def _values(means: Mapping[str, Mean], names: Mapping[str, str]) -> dict[str, float | None]:
    return {indicator: (means[point].value if point in means else None) for point, indicator in names.items()}


def hourly_index(means: Mapping[str, Mean], start_ms: int) -> AqiResult:
    hour = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(TZ)
    return hourly_aqi(_values(means, _HOURLY), hour)


def daily_index(means: Mapping[str, Mean], start_ms: int) -> AqiResult:
    day: date = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(TZ).date()
    return daily_aqi(_values(means, _DAILY), day)


def aqi_line(measurement: str, tags: Tags, result: AqiResult, ts_ms: int) -> str:
    """One row of the derived AQI series (every number a float, as the storage schema keeps them)."""
    fields: dict[str, FieldValue] = {
        Aqi.EDITION: result.edition,
        Aqi.PRIMARY: ",".join(i.value for i in result.primary),
        Aqi.MISSING: ",".join(i.value for i in result.missing),
    }
    if result.aqi is not None and result.level is not None:
        fields |= {
            Aqi.AQI: float(result.aqi),
            Aqi.LEVEL: float(result.level.number),
            Aqi.CATEGORY: result.level.category_zh,
            Aqi.CATEGORY_EN: result.level.category_en,
            Aqi.COLOUR: result.level.colour_en,
            Aqi.CAPPED: result.capped,
        }
    fields |= {Aqi.IAQI_PREFIX + i.indicator.value: float(i.value) for i in result.iaqi}
    return encode_row(measurement, tags, fields, ts_ms)


# --- surface-water class (GB 3838-2002) ---------------------------------------------------------------------------
_CLASS_NAMES = {c.label: c for c in WaterClass} | {c.name: c for c in WaterClass} | {str(int(c)): c for c in WaterClass}


class StationTagError(ValueError):
    """A water station's tags cannot say how to class it (names the tag, its value and what is allowed)."""


def water_station(tags: Tags) -> WaterStation:
    """The station's attributes from its device tags: ``water_body`` (river | lake; lakes and reservoirs) and
    optionally ``target_class`` (I-V, 1-5, or 劣V). GB 3838-2002 Table 1 keeps rivers and lakes apart for TP."""
    given = dict(tags)
    body = given.get(WATER_BODY_TAG)
    if body not in {b.value for b in WaterBody}:
        where = f"site {given.get(SITE, '?')} device {given.get(DEVICE, '?')}"
        raise StationTagError(
            f"{where}: tag {WATER_BODY_TAG}={body!r} must be river or lake (GB 3838-2002 "
            "Table 1 classes total phosphorus apart for lakes and reservoirs)"
        )
    target_text = given.get(TARGET_TAG)
    target = None
    if target_text is not None:
        target = _CLASS_NAMES.get(target_text.strip().upper())
        if target is None:
            where = f"site {given.get(SITE, '?')} device {given.get(DEVICE, '?')}"
            raise StationTagError(f"{where}: tag {TARGET_TAG}={target_text!r} is not a class (I, II, III, IV, V)")
    return WaterStation(water_body=WaterBody(body), target_class=target)


def daily_class(means: Mapping[str, Mean], station: WaterStation) -> WaterResult:
    """The day's class from the daily valid means (GB 3838-2002 §4, the worst parameter decides); an invalid mean
    is missing. Points with no GB 3838 class are left out."""
    values = {p: m.value for p, m in means.items() if p in PARAMETERS and m.value is not None}
    return water_class(values, station)


def water_class_line(tags: Tags, result: WaterResult, station: WaterStation, ts_ms: int) -> str:
    """One row of ``water_quality_class_daily``: ``class`` (1-6, 6 = 劣V), ``class_label``, ``deciding`` and
    ``used`` (comma-separated points), ``class_<point>`` per classified parameter, and with a target:
    ``target_class``, ``class_over_target`` (class - target; above 0: the target is missed) and ``target_missed``.
    A day with no classed parameter stores ``used`` empty and no class."""
    f = WaterClassField
    fields: dict[str, FieldValue] = {
        f.DECIDING: ",".join(result.deciding),
        f.USED: ",".join(result.used),
        f.WATER_BODY: station.water_body.value,
    }
    if result.water_class is not None:
        fields |= {
            f.CLASS: float(result.water_class),
            f.LABEL: result.water_class.label,
            f.QUALITY_EN: result.water_class.quality_en,
        }
    fields |= {f.CLASS_PREFIX + p.point: float(p.water_class) for p in result.parameters}
    if station.target_class is not None:
        fields[f.TARGET] = float(station.target_class)
        if result.water_class is not None:
            fields[f.OVER_TARGET] = float(result.water_class - station.target_class)
            fields[f.TARGET_MISSED] = bool(misses_target(result, station.target_class))
    return encode_row(WATER_CLASS_DAILY, tags, fields, ts_ms)


def noise_fields(means: Mapping[str, Mean], tags: Tags, start_ms: int) -> dict[str, FieldValue]:
    """The hour's verdict of a noise meter (GB 3096-2008 Table 1: its zone's limit by day, 06:00-22:00, or by
    night) as extra fields of its ``noise_hourly`` row: ``noise_limit_db`` and ``noise_exceeded`` (1/0, with
    ``.n``), for a window rule (``source: valid``). The zone is the device tag ``noise_zone``; empty without one or
    without a valid hourly level."""
    zone = dict(tags).get(NOISE_ZONE_TAG)
    laeq = means.get(Noise.LAEQ)
    if zone is None or laeq is None or laeq.value is None:
        return {}
    if zone not in {z.value for z in NoiseZone}:  # a bad tag must not stop the job for every other source
        raise StationTagError(
            f"site {dict(tags).get(SITE, '?')} device {dict(tags).get(DEVICE, '?')}: tag "
            f"{NOISE_ZONE_TAG}={zone!r} is not a GB 3096-2008 zone (0, 1, 2, 3, 4a, 4b)"
        )
    hour = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(TZ)
    verdict = noise_verdict(NoiseZone(zone), hour, laeq.value)
    return {
        Noise.LIMIT_DB: float(verdict.limit_db),
        Noise.EXCEEDED: 1.0 if verdict.exceeded else 0.0,
        Noise.EXCEEDED + COUNT_SUFFIX: laeq.count,
    }
