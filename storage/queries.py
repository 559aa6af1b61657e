"""The named reads of the platform, built here so that no InfluxQL is written anywhere else: the window rules'
statistics (``window_query``, pure) and the environment indices the API shows (async, on an ``InfluxQuery``).

Each read returns the raw ``Series``; turning rows into a service's models stays with the service. Errors are the
reader's: ``QueryUnavailableError`` (unreachable, 5xx) and ``QueryError`` (refused).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final, Literal

from storage import influxql as ql
from storage.reader import InfluxQuery, Series
from storage.schema import (
    AQI_DAILY,
    AQI_HOURLY,
    COUNT_SUFFIX,
    DAILY,
    DEVICE,
    HOURLY,
    QUALITY_SUFFIX,
    REASON_SUFFIX,
    SITE,
    WATER,
    WATER_CLASS_DAILY,
    WaterClassField,
    daily,
)

__all__ = [
    "Col",
    "aqi_history",
    "aqi_latest",
    "device_means",
    "period_rows",
    "site_newest_aqi",
    "site_newest_water_class",
    "valid_measurement",
    "water_classes",
    "water_means_of_day",
    "window_query",
]

Period = Literal["hour", "day"]
BY_DEVICE = (SITE, DEVICE)


class Col:
    """The aliases of ``window_query``'s answer."""

    VALUE: Final = "value"
    COUNT: Final = "n"
    UNCERTAIN_SUM: Final = "u_sum"
    UNCERTAIN_COUNT: Final = "u_n"
    SEEN: Final = "seen"
    INVALID: Final = "invalid"


# --- window rules ----------------------------------------------------------------------------------------------------
def valid_measurement(measurement: str, period: Period, index: str | None = None) -> str:
    """Where the rules engine stores the valid means (or a derived index such as ``aqi``) of ``measurement``."""
    base = f"{measurement}_{index}" if index else measurement
    return base + (HOURLY if period == "hour" else DAILY)


def window_query(
    measurements: Sequence[str],
    point: str,
    start_ms: int,
    end_ms: int,
    *,
    tags: Mapping[str, Sequence[str]],
    stat: ql.Aggregate | None = None,
    stored_field: str | None = None,
    exclude_uncertain: bool = False,
    lookback_start_ms: int | None = None,
    retention_policy: str | None = None,
) -> str:
    """The statements (one request) for one window rule and period, per ``site`` and ``device``.

    ``tags``: each tag and the values it may have (none: any). With ``stored_field`` (a rule on the stored valid
    means): that field's value and count (``Col.VALUE``, ``Col.COUNT``) and the reason of an invalid period
    (``Col.INVALID``). Otherwise ``stat`` of ``point`` (``None``: only the count) and the sample count; with
    ``exclude_uncertain`` the sum and count of the uncertain samples as well (``Col.UNCERTAIN_*``), to subtract;
    with ``lookback_start_ms`` the devices with samples since then (``Col.SEEN``)."""
    source = ql.sources(measurements, retention_policy)
    filters = [ql.one_of(tag, values) for tag, values in tags.items() if values]

    def statement(columns: list[str], since: int, extra: Sequence[str] = ()) -> str:
        return ql.select(columns, source, [*ql.time_range(since, end_ms), *filters, *extra], group_by=BY_DEVICE)

    if stored_field is not None:
        value = [ql.call("last", stored_field, Col.VALUE), ql.call("last", stored_field + COUNT_SUFFIX, Col.COUNT)]
        invalid = [ql.call("last", stored_field + REASON_SUFFIX, Col.INVALID)]
        return ql.statements([statement(value, start_ms), statement(invalid, start_ms)])
    columns = [ql.call("count", point, Col.COUNT)]
    if stat is not None:
        columns.insert(0, ql.call("sum" if exclude_uncertain else stat, point, Col.VALUE))
    out = [statement(columns, start_ms)]
    if exclude_uncertain:
        uncertain = [ql.call("sum", point, Col.UNCERTAIN_SUM), ql.call("count", point, Col.UNCERTAIN_COUNT)]
        out.append(statement(uncertain, start_ms, [ql.compare(point + QUALITY_SUFFIX, "=", 1)]))
    if stat is None and lookback_start_ms is not None:
        out.append(statement([ql.call("count", point, Col.SEEN)], lookback_start_ms))
    return ql.statements(out)


# --- environment indices (the API) -----------------------------------------------------------------------------------
def _sites(site: str | None) -> list[str]:
    return [ql.eq(SITE, site)] if site is not None else []


async def aqi_latest(reader: InfluxQuery, since_ms: int, *, site: str | None = None) -> list[Series]:
    """The newest hourly AQI row of every air station (one series per site and device) since ``since_ms``."""
    return await reader.query(
        ql.select(
            "*",
            reader.source(AQI_HOURLY),
            [*ql.time_range(since_ms), *_sites(site)],
            group_by=BY_DEVICE,
            newest_first=True,
            limit=1,
        )
    )


async def aqi_history(
    reader: InfluxQuery, period: Period, *, site: str, device: str, start_ms: int, end_ms: int, limit: int
) -> list[Series]:
    """A station's hourly (or daily) AQI rows in ``[start_ms, end_ms)``."""
    measurement = AQI_HOURLY if period == "hour" else AQI_DAILY
    terms = [*ql.time_range(start_ms, end_ms), ql.eq(SITE, site), ql.eq(DEVICE, device)]
    return await reader.query(ql.select("*", reader.source(measurement), terms, group_by=BY_DEVICE, limit=limit))


async def water_classes(
    reader: InfluxQuery, *, start_ms: int, end_ms: int, site: str | None, limit: int
) -> tuple[list[Series], list[Series]]:
    """The daily water classes and the daily water-quality means in the range: (classes, means), per station."""
    terms = [*ql.time_range(start_ms, end_ms), *_sites(site)]
    series = await reader.query(
        ql.statements(
            [
                ql.select("*", reader.source(WATER_CLASS_DAILY), terms, group_by=BY_DEVICE, limit=limit),
                ql.select("*", reader.source(daily(WATER)), terms, group_by=BY_DEVICE, limit=limit),
            ]
        )
    )
    return [s for s in series if s.name == WATER_CLASS_DAILY], [s for s in series if s.name == daily(WATER)]


async def device_means(
    reader: InfluxQuery,
    measurements: Sequence[str],
    period: Period,
    *,
    site: str,
    device: str,
    start_ms: int,
    end_ms: int,
    limit: int,
) -> list[Series]:
    """A device's stored valid hourly (or daily) means in the range, from the means of ``measurements``."""
    sources = reader.sources([valid_measurement(m, period) for m in measurements])
    terms = [*ql.time_range(start_ms, end_ms), ql.eq(SITE, site), ql.eq(DEVICE, device)]
    return await reader.query(ql.select("*", sources, terms, group_by=BY_DEVICE, limit=limit))


async def site_newest_aqi(reader: InfluxQuery, period: Period, *, site: str) -> list[Series]:
    """The newest hourly (or daily) AQI row of each station of ``site``."""
    measurement = AQI_HOURLY if period == "hour" else AQI_DAILY
    return await reader.query(
        ql.select("*", reader.source(measurement), [ql.eq(SITE, site)], group_by=(DEVICE,), newest_first=True, limit=1)
    )


async def site_newest_water_class(reader: InfluxQuery, *, site: str) -> list[Series]:
    """The newest daily water class (with a class) of each station of ``site``."""
    terms = [ql.eq(SITE, site), ql.compare(WaterClassField.CLASS, ">", 0)]
    return await reader.query(
        ql.select("*", reader.source(WATER_CLASS_DAILY), terms, group_by=(DEVICE,), newest_first=True, limit=1)
    )


async def water_means_of_day(reader: InfluxQuery, *, site: str, device: str, day_ms: int) -> list[Series]:
    """A water station's daily means of the day that starts at ``day_ms``."""
    terms = [ql.time_at(day_ms), ql.eq(SITE, site), ql.eq(DEVICE, device)]
    return await reader.query(ql.select("*", reader.source(daily(WATER)), terms))


# --- reports ---------------------------------------------------------------------------------------------------------
async def period_rows(
    reader: InfluxQuery, measurements: Sequence[str], *, start_ms: int, end_ms: int, sites: Sequence[str] | None
) -> list[Series]:
    """Every stored row of ``measurements`` (valid means, daily indices) in ``[start_ms, end_ms)``, per site and
    device; ``sites`` None: every site (an empty list reads nothing)."""
    if sites is not None and not sites:
        return []
    terms = [*ql.time_range(start_ms, end_ms), *([ql.one_of(SITE, sites)] if sites is not None else [])]
    return await reader.query(ql.select("*", reader.sources(measurements), terms, group_by=BY_DEVICE))
