"""The environment bureau's indices: the latest and hourly AQI of the air stations (HJ 633, stored by
rules.valid_means as ``air_quality_aqi_hourly`` / ``_daily``), the daily water class of the water stations (GB 3838,
``water_quality_class_daily``), and a device's stored valid hourly and daily means with the limits that apply to it.

For the environment officer (scoped to their areas, like every route) and the admin; other roles get 403.
Everything is read from InfluxDB through ``storage.queries`` (no InfluxQL here): an unreachable InfluxDB is a 503,
a refused query a 502.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from functools import cache
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from api.auth import Principal, Role
from api.deps import ID_PATTERN, MAX_MS, DeviceId, Service, SiteId, Who, check_site, error, visible_sites
from api.routes_reports import PERMITS_STATE
from api.service import ApiService
from rules.indices import StationTagError, water_station
from rules.schema import Rule
from rules.standards import PARAMETERS, Permit, WaterBody, WaterClass
from rules.valid_means import load_means_config
from storage import QueryError, QueryUnavailableError, Series, queries
from storage.schema import (
    COUNT_SUFFIX,
    DEVICE,
    PROFILE,
    REASON_SUFFIX,
    SITE,
    TARGET_TAG,
    WATER,
    WATER_BODY_TAG,
    Aqi,
    WaterClassField,
    daily,
    hourly,
)

router = APIRouter()
T = TypeVar("T")

DAY_MS = 86_400_000
ENV_ROLES = frozenset({Role.ENVIRONMENT_OFFICER, Role.ADMIN})
MAX_ROWS = 10_000
Period = Literal["hour", "day"]


def env_reader(who: Who) -> Principal:
    if who.role not in ENV_ROLES:
        raise error(
            403,
            f"role {who.role.value} may not read the environment indices (environment_officer, admin)",
            code="auth.role_forbidden",
            params={"role": who.role.value, "permission": "read_environment"},
        )
    return who


EnvReader = Annotated[Principal, Depends(env_reader)]
SiteQuery = Annotated[str | None, Query(pattern=ID_PATTERN, description="one site; default: every site you see")]
StartMs = Annotated[int | None, Query(ge=0, le=MAX_MS, description="default: end_ms - 24 h (hourly), - 7 d (daily)")]
EndMs = Annotated[int | None, Query(ge=1, le=MAX_MS, description="default: now")]
PeriodQuery = Annotated[Period, Query(description="hourly or daily values")]


class AqiOut(BaseModel):
    site: str
    device: str
    period: Period
    time_ms: int  # the period's start
    aqi: float | None  # None: no indicator had a valid mean
    level: int | None  # 1-6 (HJ 633 Table 2)
    category_zh: str | None
    category_en: str | None
    colour: str | None
    primary: list[str]  # empty when AQI <= 50
    iaqi: dict[str, float]
    missing: list[str]
    edition: str | None  # HJ 633-2012 or HJ 633-2026, by the period's date


class AqiHistoryOut(BaseModel):
    site: str
    device: str
    period: Period
    start_ms: int
    end_ms: int
    points: list[AqiOut]


class WaterClassOut(BaseModel):
    site: str
    device: str
    time_ms: int  # the day's start (00:00 Asia/Shanghai)
    water_body: str | None
    water_class: int | None  # 1-5, 6 = worse than V (劣V); None: no parameter had a valid daily mean
    label: str | None  # I .. V, 劣V
    quality_en: str | None
    deciding: list[str]  # the parameters at the station's class
    deciding_values: dict[str, float]  # their daily means
    used: list[str]  # the parameters that took part
    parameters: dict[str, int]  # every classified parameter's class
    target_class: int | None
    target_label: str | None
    target_missed: bool | None


class LimitOut(BaseModel):
    point: str
    value: float
    direction: Literal["high", "low"]
    strict: bool  # True: a mean equal to the value complies
    severity: str | None
    source: str  # the rule id, or the standard
    title: str
    stat: str  # mean, max_8h, ...


class MeanRow(BaseModel):
    time_ms: int
    values: dict[str, float]
    counts: dict[str, int]
    invalid: dict[str, str]  # point: why its period has no valid mean


class MeansOut(BaseModel):
    site: str
    device: str
    measurement: str
    profile: str | None
    period: Period
    start_ms: int
    end_ms: int
    rows: list[MeanRow]
    limits: list[LimitOut]


# --- reading ----------------------------------------------------------------------------------------------------
async def _read(call: Awaitable[T]) -> T:
    try:
        return await call
    except QueryUnavailableError as exc:
        raise error(503, f"InfluxDB is not reachable: {exc.message}", code="influxdb.unreachable") from exc
    except QueryError as exc:
        raise error(502, f"InfluxDB refused the query: {exc.message}", code="influxdb.refused") from exc


def _range(svc: ApiService, start_ms: int | None, end_ms: int | None, default_ms: int) -> tuple[int, int]:
    end = end_ms if end_ms is not None else svc.clock()
    start = start_ms if start_ms is not None else max(0, end - default_ms)
    if end <= start:
        raise error(422, "end_ms must be after start_ms", "end_ms", code="history.end_before_start")
    days = svc.config.history.max_range_days
    if end - start > days * DAY_MS:
        raise error(
            422,
            f"the range may span at most {days} days",
            "start_ms",
            code="history.range_too_long",
            params={"days": days},
        )
    return start, end


def _sites_filter(svc: ApiService, who: Principal, site: str | None) -> set[str] | None:
    """The sites a user may see of those asked for (one, checked; None: every site, unscoped)."""
    if site is not None:
        check_site(svc, who, site)
        return {site}
    return visible_sites(svc, who)


def _rows(series: Iterable[Series], sites: set[str] | None) -> list[tuple[dict[str, str], dict[str, object]]]:
    out: list[tuple[dict[str, str], dict[str, object]]] = []
    for s in series:
        if sites is not None and s.tags.get(SITE) not in sites:
            continue
        out.extend((s.tags, row) for row in s.rows())
    return out


def _num(v: object) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _text(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _names(v: object) -> list[str]:
    return [n for n in v.split(",") if n] if isinstance(v, str) else []


def _iaqi(row: dict[str, object]) -> dict[str, float]:
    p = Aqi.IAQI_PREFIX
    return {k.removeprefix(p): n for k, v in row.items() if k.startswith(p) and (n := _num(v)) is not None}


def _aqi(tags: dict[str, str], row: dict[str, object], period: Period) -> AqiOut:
    level = _num(row.get(Aqi.LEVEL))
    return AqiOut(
        site=tags.get(SITE, ""),
        device=tags.get(DEVICE, ""),
        period=period,
        time_ms=int(_num(row.get("time")) or 0),
        aqi=_num(row.get(Aqi.AQI)),
        level=int(level) if level is not None else None,
        category_zh=_text(row.get(Aqi.CATEGORY)),
        category_en=_text(row.get(Aqi.CATEGORY_EN)),
        colour=_text(row.get(Aqi.COLOUR)),
        primary=_names(row.get(Aqi.PRIMARY)),
        iaqi=_iaqi(row),
        missing=_names(row.get(Aqi.MISSING)),
        edition=_text(row.get(Aqi.EDITION)),
    )


@router.get("/api/env/aqi/latest", tags=["environment"])
async def latest_aqi(who: EnvReader, svc: Service, site: SiteQuery = None) -> list[AqiOut]:
    """The newest hourly AQI of every air station (of the last 7 days) you may see."""
    sites = _sites_filter(svc, who, site)
    series = await _read(queries.aqi_latest(svc.influx, svc.clock() - 7 * DAY_MS, site=site))
    out = [_aqi(tags, row, "hour") for tags, row in _rows(series, sites)]
    return sorted(out, key=lambda a: (a.site, a.device))


@router.get("/api/env/sites/{site}/devices/{device}/aqi", tags=["environment"])
async def aqi_history(
    site: SiteId,
    device: DeviceId,
    who: EnvReader,
    svc: Service,
    period: PeriodQuery = "hour",
    start_ms: StartMs = None,
    end_ms: EndMs = None,
) -> AqiHistoryOut:
    """The station's stored hourly (or daily) AQI in the range, oldest first."""
    check_site(svc, who, site)
    start, end = _range(svc, start_ms, end_ms, DAY_MS if period == "hour" else 7 * DAY_MS)
    series = await _read(
        queries.aqi_history(svc.influx, period, site=site, device=device, start_ms=start, end_ms=end, limit=MAX_ROWS)
    )
    points = [_aqi(tags, row, period) for tags, row in _rows(series, None)]
    return AqiHistoryOut(
        site=site,
        device=device,
        period=period,
        start_ms=start,
        end_ms=end,
        points=sorted(points, key=lambda a: a.time_ms),
    )


def _class_label(v: float | None) -> str | None:
    return WaterClass(int(v)).label if v is not None and int(v) in {c.value for c in WaterClass} else None


@router.get("/api/env/water/classes", tags=["environment"])
async def water_classes(
    who: EnvReader, svc: Service, site: SiteQuery = None, start_ms: StartMs = None, end_ms: EndMs = None
) -> list[WaterClassOut]:
    """Each water station's daily class (GB 3838-2002) in the range, with the parameters that decide it, their
    daily means, and the station's target class."""
    sites = _sites_filter(svc, who, site)
    start, end = _range(svc, start_ms, end_ms, 7 * DAY_MS)
    classes, day_means = await _read(
        queries.water_classes(svc.influx, start_ms=start, end_ms=end, site=site, limit=MAX_ROWS)
    )
    means = {(t.get(SITE), t.get(DEVICE), row.get("time")): row for t, row in _rows(day_means, sites)}
    f = WaterClassField
    out: list[WaterClassOut] = []
    for tags, row in _rows(classes, sites):
        cls, target = _num(row.get(f.CLASS)), _num(row.get(f.TARGET))
        deciding = _names(row.get(f.DECIDING))
        day = means.get((tags.get(SITE), tags.get(DEVICE), row.get("time")), {})
        missed = row.get(f.TARGET_MISSED)
        out.append(
            WaterClassOut(
                site=tags.get(SITE, ""),
                device=tags.get(DEVICE, ""),
                time_ms=int(_num(row.get("time")) or 0),
                water_body=_text(row.get(f.WATER_BODY)) or tags.get(WATER_BODY_TAG),
                water_class=int(cls) if cls is not None else None,
                label=_text(row.get(f.LABEL)),
                quality_en=_text(row.get(f.QUALITY_EN)),
                deciding=deciding,
                deciding_values={p: v for p in deciding if (v := _num(day.get(p))) is not None},
                used=_names(row.get(f.USED)),
                parameters={
                    k.removeprefix(f.CLASS_PREFIX): int(n)
                    for k, v in row.items()
                    if k.removeprefix(f.CLASS_PREFIX) in PARAMETERS
                    and k.startswith(f.CLASS_PREFIX)
                    and (n := _num(v)) is not None
                },
                target_class=int(target) if target is not None else None,
                target_label=_class_label(target),
                target_missed=missed if isinstance(missed, bool) else None,
            )
        )
    return sorted(out, key=lambda w: (w.site, w.device, w.time_ms))


# --- a device's stored means and its limits ----------------------------------------------------------------------
def _matches(rule: Rule, profile: str | None, site: str, device: str, tags: dict[str, str]) -> bool:
    sel = rule.select
    return (
        (not sel.profile or profile in sel.profile)
        and (not sel.site or site in sel.site)
        and (not sel.device or device in sel.device)
        and all(tags.get(k) == v for k, v in sel.tags.items())
    )


def _rule_limits(
    rules: Iterable[Rule], period: Period, profile: str | None, site: str, device: str, tags: dict[str, str]
) -> list[LimitOut]:
    """The levels of the window rules that judge this device's stored valid means of this period."""
    out = []
    for rule in rules:
        w = rule.window
        if w is None or w.source != "valid" or w.index is not None or w.period != period or w.direction is None:
            continue
        if not _matches(rule, profile, site, device, tags):
            continue
        out += [
            LimitOut(
                point=w.stored_field,
                value=lv.value,
                direction=w.direction,
                strict=w.strict,
                severity=lv.severity,
                source=rule.id,
                title=rule.title,
                stat=w.stat,
            )
            for lv in w.levels
        ]
    return out


def _water_limits(tags: dict[str, str]) -> list[LimitOut]:
    """The target class's GB 3838-2002 Table 1 limits for the station's water body (from its tags)."""
    body, target = tags.get(WATER_BODY_TAG), tags.get(TARGET_TAG)
    if body not in {b.value for b in WaterBody} or target is None:
        return []
    try:
        station = water_station(tuple(sorted(tags.items())))
    except StationTagError:
        return []
    cls = station.target_class
    if cls is None or cls is WaterClass.WORSE_THAN_V:
        return []
    out = []
    for point, param in PARAMETERS.items():
        limits = param.limits.get(station.water_body)
        if limits is None:
            continue
        title = f"GB 3838-2002 Table 1 class {cls.label} ({station.water_body.value})"
        if param.sense == "range":
            out += [
                LimitOut(
                    point=point,
                    value=float(limits[0]),
                    direction="low",
                    strict=True,
                    severity=None,
                    source=param.clause,
                    title=title,
                    stat="mean",
                ),
                LimitOut(
                    point=point,
                    value=float(limits[1]),
                    direction="high",
                    strict=True,
                    severity=None,
                    source=param.clause,
                    title=title,
                    stat="mean",
                ),
            ]
            continue
        out.append(
            LimitOut(
                point=point,
                value=float(limits[int(cls) - 1]),
                direction="low" if param.sense == "min" else "high",
                strict=True,
                severity=None,
                source=param.clause,
                title=title,
                stat="mean",
            )
        )
    return out


@cache
def _means_measurements() -> tuple[str, ...]:
    """The measurements the valid-means job averages (the shipped rules/means.yaml)."""
    return tuple(m.measurement for m in load_means_config().measurements)


def _permit_limits(permit: Permit | None, period: Period, points: set[str]) -> list[LimitOut]:
    """A pollution source's permit (the API's ``permits_file``) as limits of its hourly or daily means: a flue-gas
    pollutant's on its O2-corrected point ``<P>_zs`` (the permit's values are at the reference O2) where the source
    stores one, as the source report judges; a value equal to the limit complies."""
    if permit is None:
        return []
    out: list[LimitOut] = []
    for pollutant, lim in sorted(permit.limits.items()):
        corrected = f"{pollutant}_zs"
        zs = permit.medium == "flue_gas" and permit.o2_ref is not None and (not points or corrected in points)
        point = corrected if zs else pollutant
        bounds: list[tuple[float, Literal["high", "low"]]] = []
        value = lim.hourly_mean if period == "hour" else lim.daily_mean
        if value is not None:
            bounds.append((value, "high"))
        if lim.range is not None:
            bounds += [(lim.range[0], "low"), (lim.range[1], "high")]
        for v, direction in bounds:
            out.append(
                LimitOut(
                    point=point,
                    value=v,
                    direction=direction,
                    strict=True,
                    severity=None,
                    source="permit",
                    title=permit.title if permit.basis in permit.title else f"{permit.title} ({permit.basis})",
                    stat="mean",
                )
            )
    return out


@router.get("/api/env/sites/{site}/devices/{device}/means", tags=["environment"])
async def device_means(
    request: Request,
    site: SiteId,
    device: DeviceId,
    who: EnvReader,
    svc: Service,
    period: PeriodQuery = "hour",
    start_ms: StartMs = None,
    end_ms: EndMs = None,
) -> MeansOut:
    """The device's stored valid hourly (or daily) means (rules.valid_means: validity rules and rounding applied;
    an invalid period gives the reason instead of a value), with the limits that apply to them: the levels of
    the window rules that judge them, and for a water station its target class's GB 3838 limits."""
    check_site(svc, who, site)
    start, end = _range(svc, start_ms, end_ms, DAY_MS if period == "hour" else 7 * DAY_MS)
    state = svc.cache.get(site, device)
    profile = svc.profiles.get(state.profile) if state else None
    measurements = [profile.measurement] if profile else list(_means_measurements())
    found = await _read(
        queries.device_means(
            svc.influx, measurements, period, site=site, device=device, start_ms=start, end_ms=end, limit=MAX_ROWS
        )
    )
    series = [s for s in found if s.values]
    if not series:
        if profile is None:
            raise error(
                404,
                f"no stored {period}ly means of device {device!r} at site {site!r}",
                "device",
                code="env.no_means",
                params={"period": period, "site": site, "device": device},
            )
        stored = hourly(profile.measurement) if period == "hour" else daily(profile.measurement)
        series = [Series(name=stored, tags={}, columns=[], values=[])]
    s = series[0]  # a device's means live in one measurement
    rows: list[MeanRow] = []
    points = {c.removesuffix(COUNT_SUFFIX) for c in s.columns if c.endswith(COUNT_SUFFIX)}
    tags: dict[str, str] = dict(s.tags)  # and the source's other tags: the string columns that are not reasons
    for row in s.rows():
        tags |= {k: v for k, v in row.items() if isinstance(v, str) and not k.endswith(REASON_SUFFIX)}
        rows.append(
            MeanRow(
                time_ms=int(_num(row.get("time")) or 0),
                values={p: v for p in points if (v := _num(row.get(p))) is not None},
                counts={p: int(n) for p in points if (n := _num(row.get(p + COUNT_SUFFIX))) is not None},
                invalid={p: r for p in points if isinstance(r := row.get(p + REASON_SUFFIX), str)},
            )
        )
    profile_name = profile.name if profile else tags.get(PROFILE)
    limits = _rule_limits(svc.rules, period, profile_name, site, device, tags)
    if s.name.startswith(WATER):
        limits += _water_limits(tags)
    permits = getattr(request.app.state, PERMITS_STATE, {})  # the source's permit, where the API holds one
    limits += _permit_limits(permits.get((site, device)), period, points)
    return MeansOut(
        site=site,
        device=device,
        measurement=s.name,
        profile=profile_name,
        period=period,
        start_ms=start,
        end_ms=end,
        rows=sorted(rows, key=lambda r: r.time_ms),
        limits=limits,
    )


# --- a site's newest indices (one row per station) ----------------------------------------------------------------
class SiteAqiOut(BaseModel):
    site: str
    device: str
    period_start_ms: int
    period: Period
    aqi: float | None  # None: no indicator had a valid mean (shown as NA)
    level: float | None
    category: str | None  # Chinese (HJ 633 Table 1)
    category_en: str | None
    colour: str | None
    primary: list[str]  # empty when AQI <= 50
    missing: list[str]
    edition: str
    iaqi: dict[str, float]


class WaterOut(BaseModel):
    site: str
    device: str
    day_start_ms: int
    water_class: float  # 1-5, 6 = worse than V
    deciding: list[str]
    target_missed: bool | None  # None: the station has no target class
    means: dict[str, float]


@router.get("/api/sites/{site}/aqi", tags=["environment"])
async def site_aqi(site: SiteId, who: EnvReader, svc: Service, period: PeriodQuery = "hour") -> list[SiteAqiOut]:
    """The newest AQI of each air station of ``site`` (hourly or daily)."""
    check_site(svc, who, site)
    out = []
    for tags, row in _rows(await _read(queries.site_newest_aqi(svc.influx, period, site=site)), None):
        out.append(
            SiteAqiOut(
                site=site,
                device=tags.get(DEVICE, ""),
                period_start_ms=int(_num(row.get("time")) or 0),
                period=period,
                aqi=_num(row.get(Aqi.AQI)),
                level=_num(row.get(Aqi.LEVEL)),
                category=_text(row.get(Aqi.CATEGORY)),
                category_en=_text(row.get(Aqi.CATEGORY_EN)),
                colour=_text(row.get(Aqi.COLOUR)),
                primary=_names(row.get(Aqi.PRIMARY)),
                missing=_names(row.get(Aqi.MISSING)),
                edition=str(row.get(Aqi.EDITION)),
                iaqi=_iaqi(row),
            )
        )
    return sorted(out, key=lambda a: a.device)


@router.get("/api/sites/{site}/water-class", tags=["environment"])
async def site_water_class(site: SiteId, who: EnvReader, svc: Service) -> list[WaterOut]:
    """The newest daily class of each water-quality station of ``site``, its deciding parameters, target and the
    day's means (``/api/env/water/classes`` for a range, with every parameter's class)."""
    check_site(svc, who, site)
    out = []
    f = WaterClassField
    for tags, row in _rows(await _read(queries.site_newest_water_class(svc.influx, site=site)), None):
        day = int(_num(row.get("time")) or 0)
        day_means = queries.water_means_of_day(svc.influx, site=site, device=tags.get(DEVICE, ""), day_ms=day)
        means_rows = [r for _, r in _rows(await _read(day_means), None)]
        means = {
            k: n
            for k, v in (means_rows[0] if means_rows else {}).items()
            if k in PARAMETERS and (n := _num(v)) is not None
        }
        missed = row.get(f.TARGET_MISSED)
        out.append(
            WaterOut(
                site=site,
                device=tags.get(DEVICE, ""),
                day_start_ms=day,
                water_class=_num(row.get(f.CLASS)) or 0.0,
                deciding=_names(row.get(f.DECIDING)),
                target_missed=missed if isinstance(missed, bool) else None,
                means=means,
            )
        )
    return sorted(out, key=lambda w: w.device)
