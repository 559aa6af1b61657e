"""The air quality index as a derived series: from the stored valid means to ``air_quality_aqi_hourly`` and
``air_quality_aqi_daily`` (HJ 633-2012 / HJ 633-2026, the edition by the period's Asia/Shanghai date;
``rules.standards``). Pure: means in, line protocol out; ``rules.valid_means`` writes them with the means.

Hourly AQI: the six 1-hour means (SO2, NO2, CO, O3, PM10, PM2.5) of the hour (HJ 633-2026 §5.1, real-time
report). Daily AQI: the 24-hour means of SO2, NO2, CO, PM10, PM2.5 and the daily maximum 8-hour mean of O3 (§5.2).
A mean that is not valid (GB 3095-2012 Table 4) counts as missing (§5.3: AQI, level and primary pollutant come
from the others). Fields: ``aqi`` (absent when no indicator has an IAQI), ``level`` (1-6), ``category``
(Chinese), ``category_en``, ``colour``, ``primary`` (comma-separated, empty when AQI <= 50), ``iaqi_<indicator>``,
``missing`` (comma-separated indicators), ``edition``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from rules._means import COUNT_SUFFIX, MAX_8H, Mean, Tags
from rules.standards import (
    AqiResult,
    NoiseZone,
    WaterBody,
    WaterClass,
    WaterStation,
    daily_aqi,
    hourly_aqi,
    misses_target,
    noise_verdict,
    water_class,
)

AIR = "air_quality"
WATER = "water_quality"
NOISE = "noise"
WATER_POINTS = ("ph", "do", "codmn", "cod", "nh3_n", "tp", "tn")
AQI_HOURLY = "air_quality_aqi_hourly"
AQI_DAILY = "air_quality_aqi_daily"
TZ = ZoneInfo("Asia/Shanghai")

_HOURLY = {"so2": "so2_1h", "no2": "no2_1h", "co": "co_1h", "o3": "o3_1h", "pm10": "pm10_1h", "pm25": "pm25_1h"}
_DAILY = {"so2": "so2_24h", "no2": "no2_24h", "co": "co_24h", "pm10": "pm10_24h", "pm25": "pm25_24h",
          "o3" + MAX_8H: "o3_8h"}  # fmt: skip


def _values(means: Mapping[str, Mean], names: Mapping[str, str]) -> dict[str, float | None]:
    return {indicator: (means[point].value if point in means else None) for point, indicator in names.items()}


def hourly_index(means: Mapping[str, Mean], start_ms: int) -> AqiResult:
    hour = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(TZ)
    return hourly_aqi(_values(means, _HOURLY), hour)


def daily_index(means: Mapping[str, Mean], start_ms: int) -> AqiResult:
    day: date = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(TZ).date()
    return daily_aqi(_values(means, _DAILY), day)


def _text(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _key(name: str) -> str:
    return name.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def aqi_line(measurement: str, tags: Tags, result: AqiResult, ts_ms: int) -> str:
    """One row of the derived AQI series (every number a float, as the storage schema keeps them)."""
    fields = [f"edition={_text(result.edition)}",
              f"primary={_text(','.join(i.value for i in result.primary))}",
              f"missing={_text(','.join(i.value for i in result.missing))}"]  # fmt: skip
    if result.aqi is not None and result.level is not None:
        fields += [f"aqi={float(result.aqi)!r}", f"level={float(result.level.number)!r}",
                   f"category={_text(result.level.category_zh)}", f"category_en={_text(result.level.category_en)}",
                   f"colour={_text(result.level.colour_en)}"]  # fmt: skip
    fields += [f"iaqi_{i.indicator.value}={float(i.value)!r}" for i in result.iaqi]
    tag_text = "".join(f",{_key(k)}={_key(v)}" for k, v in tags)
    return f"{measurement}{tag_text} {','.join(fields)} {int(ts_ms)}"


def water_fields(means: Mapping[str, Mean], tags: Tags) -> str:
    """The day's class of a water station (GB 3838-2002, the worst taking-part parameter) as extra fields of its
    ``water_quality_daily`` row, so that a window rule (``source: valid``) judges them like any stored mean:
    ``water_class`` (1-5, 6 = worse than V) and ``target_missed`` (1/0, only with a ``target_class`` tag), each with
    ``.n`` (the parameters classed), and ``water_class_deciding``. Station attributes are device tags:
    ``water_body`` (river, the default, or lake: total phosphorus differs) and ``target_class`` (1-5).
    Empty when no parameter has a valid daily mean."""
    attrs = dict(tags)
    body = WaterBody(attrs.get("water_body", WaterBody.RIVER.value))
    target = WaterClass(int(attrs["target_class"])) if attrs.get("target_class", "").isdigit() else None
    values = {p: means[p].value for p in WATER_POINTS if p in means}
    result = water_class(values, WaterStation(water_body=body, target_class=target))
    if result.water_class is None:
        return ""
    n = len(result.used)
    fields = [f"water_class={float(result.water_class)!r}", f"water_class{COUNT_SUFFIX}={n}i",
              f"water_class_deciding={_text(','.join(result.deciding))}"]  # fmt: skip
    missed = misses_target(result, target)
    if missed is not None:
        fields += [f"target_missed={1.0 if missed else 0.0}", f"target_missed{COUNT_SUFFIX}={n}i"]
    return ",".join(fields)


def noise_fields(means: Mapping[str, Mean], tags: Tags, start_ms: int) -> str:
    """The hour's verdict of a noise meter (GB 3096-2008 Table 1: its zone's limit by day, 06:00-22:00, or by
    night) as extra fields of its ``noise_hourly`` row: ``noise_limit_db`` and ``noise_exceeded`` (1/0, with
    ``.n``), for a window rule (``source: valid``). The zone is the device tag ``noise_zone``; empty without one or
    without a valid hourly level."""
    zone = dict(tags).get("noise_zone")
    laeq = means.get("noise_laeq")
    if zone is None or laeq is None or laeq.value is None:
        return ""
    hour = datetime.fromtimestamp(start_ms / 1000, UTC).astimezone(TZ)
    verdict = noise_verdict(NoiseZone(zone), hour, laeq.value)
    return (f"noise_limit_db={float(verdict.limit_db)!r},noise_exceeded={1.0 if verdict.exceeded else 0.0},"
            f"noise_exceeded{COUNT_SUFFIX}={laeq.count}i")
