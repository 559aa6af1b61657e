"""Sites, devices with live status, latest values, history, rules, the audit log, health and metrics."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from typing import Annotated, Literal, TypeVar

import orjson
from fastapi import APIRouter, Path, Query, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from alerts.store import AuditRow
from api.deps import ID_PATTERN, MAX_MS, TEXT_PATTERN, Admin, DeviceId, Reader, Service, SiteId, check_site, error
from api.live import DeviceState, judge
from api.service import ApiService
from device_profiles import Profile
from infra.metrics import CONTENT_TYPE
from storage.reader import LatestRow, Point, QueryError, QueryUnavailableError, choose_interval_ms
from telemetry import Value

router = APIRouter()
T = TypeVar("T")

DAY_MS = 86_400_000


class DeviceOut(BaseModel):
    site: str
    device: str
    area: str | None
    profile: str
    measurement: str
    online: bool | None
    status_reason: str
    last_seen_ms: int | None
    quality: str
    state: str  # online | stale | offline | unknown, decided by the API: docs/api.md, Device state
    state_reason: str
    since_ms: int | None
    last_sample_ms: int | None
    stale_after_ms: int
    offline_after_ms: int
    agent_online: bool | None
    # the site file changes this device's points (scale, range, unit, decimals, states): its own point specs are at
    # GET /api/sites/{site}/devices/{device}/profile, not /api/profiles/{profile}
    own_profile: bool = False


class StateCounts(BaseModel):
    online: int = 0
    stale: int = 0
    offline: int = 0
    unknown: int = 0


class AgentOut(BaseModel):
    online: bool | None  # None: never heard
    since_ms: int | None
    reason: str


class SiteOut(BaseModel):
    site: str
    area: str | None
    devices: int
    online: int  # devices in state online
    states: StateCounts
    agent: AgentOut


class DistrictSiteOut(BaseModel):
    site: str
    title: str
    river: str
    area: str
    km: float | None
    devices: int
    online: int
    states: StateCounts
    agent: AgentOut


class DistrictOut(BaseModel):
    title: str
    sites: list[DistrictSiteOut]


class LatestOut(BaseModel):
    site: str
    device: str
    source: Literal["live", "influxdb", "none"]
    time_ms: int | None
    values: dict[str, Value]
    times_ms: dict[str, int]
    quality: dict[str, str]  # only points that are not good: uncertain or bad
    reasons: dict[str, str]
    units: dict[str, str]
    # how old the newest value was when answered (now - time_ms): "live" values are the API's own state, kept from
    # every reading it receives over MQTT (no InfluxDB query); "influxdb" ones were read for this answer
    age_ms: int | None = None


class HistoryPoint(BaseModel):
    time_ms: int
    values: dict[str, Value]
    quality: dict[str, int]


class HistoryOut(BaseModel):
    site: str
    device: str
    measurement: str
    start_ms: int
    end_ms: int
    max_points: int
    points: list[HistoryPoint]


class SiteHistoryOut(BaseModel):
    site: str
    profile: str
    measurement: str
    start_ms: int
    end_ms: int
    interval_ms: int  # every point is a bucket of this width; time_ms is its start
    max_points: int  # per device
    devices: dict[str, list[HistoryPoint]]
    # the buckets that start before cached_before_ms were read from InfluxDB cache_age_ms before this answer (the
    # API keeps a site's settled buckets, storage.history_cache); the others were read now. None: all read now.
    cached_before_ms: int | None = None
    cache_age_ms: int | None = None


def _device_out(svc: ApiService, state: DeviceState) -> DeviceOut:
    profile = svc.profiles.get(state.profile)
    measurement = state.measurement or (profile.measurement if profile else "")
    live = svc.cache.live(state.site, state.device, svc.clock())
    if live is None:  # gone between the two reads: judge the copy
        live = judge(state, svc.cache.agent(state.site), svc.thresholds(state.profile), svc.clock())
    return DeviceOut(
        site=state.site,
        device=state.device,
        area=svc.config.area_of(state.site),
        profile=state.profile,
        measurement=measurement,
        online=state.online,
        status_reason=state.status_reason,
        last_seen_ms=state.last_seen_ms,
        quality=state.overall_quality if state.has_values else "unknown",
        state=live.state,
        state_reason=live.reason,
        since_ms=live.since_ms,
        last_sample_ms=live.last_sample_ms,
        stale_after_ms=live.stale_after_ms,
        offline_after_ms=live.offline_after_ms,
        agent_online=live.agent_online,
        own_profile=svc.has_own_profile(state.site, state.device),
    )


def _site_out(svc: ApiService, site: str, area: str | None) -> SiteOut:
    now = svc.clock()
    counts = StateCounts()
    devices = svc.cache.devices(site)
    for d in devices:
        live = svc.cache.live(site, d.device, now)
        name = live.state if live is not None else "unknown"
        setattr(counts, name, getattr(counts, name) + 1)
    agent = svc.cache.agent(site)
    agent_out = AgentOut(
        online=None if agent is None else agent.online,
        since_ms=None if agent is None else agent.ts,
        reason="" if agent is None else agent.reason,
    )
    return SiteOut(site=site, area=area, devices=len(devices), online=counts.online, states=counts, agent=agent_out)


def _known_device(svc: ApiService, site: str, device: str) -> tuple[DeviceState, Profile]:
    state = svc.cache.get(site, device)
    if state is None:
        raise error(
            404,
            f"no device {device!r} at site {site!r}",
            "device",
            code="device.not_found",
            params={"site": site, "device": device},
        )
    profile = svc.profile_of(site, device, state.profile)
    if profile is None:
        raise error(
            404,
            f"device {device!r} has profile {state.profile!r}, which the API does not know",
            "device",
            code="device.unknown_profile",
            params={"device": device, "profile": state.profile},
        )
    return state, profile


@router.get("/api/sites", tags=["devices"])
def list_sites(who: Reader, svc: Service) -> list[SiteOut]:
    names = set(svc.cache.sites()) | {s for sites in svc.config.areas.values() for s in sites}
    out = []
    for site in sorted(names):
        area = svc.config.area_of(site)
        if not who.sees_area(area):
            continue
        out.append(_site_out(svc, site, area))
    return out


@router.get("/api/district", tags=["devices"])
def district(who: Reader, svc: Service) -> DistrictOut:
    """The overview's layout: every site the user may see, with its river, area and place along the river (from the
    config's ``district`` section; a site it does not name is shown off the rivers, in its access area)."""
    layout = svc.config.district
    out = []
    for s in list_sites(who, svc):
        place = layout.sites.get(s.site)
        out.append(
            DistrictSiteOut(
                site=s.site,
                title=place.title if place else "",
                river=place.river if place else "",
                area=(place.area if place else "") or s.area or "",
                km=place.km if place else None,
                devices=s.devices,
                online=s.online,
                states=s.states,
                agent=s.agent,
            )
        )
    return DistrictOut(title=layout.title, sites=out)


@router.get("/api/sites/{site}/devices", tags=["devices"])
def list_devices(site: SiteId, who: Reader, svc: Service) -> list[DeviceOut]:
    check_site(svc, who, site)
    return [_device_out(svc, d) for d in svc.cache.devices(site)]


@router.get("/api/sites/{site}/devices/{device}", tags=["devices"])
def get_device(site: SiteId, device: DeviceId, who: Reader, svc: Service) -> DeviceOut:
    check_site(svc, who, site)
    state = svc.cache.get(site, device)
    if state is None:
        raise error(
            404,
            f"no device {device!r} at site {site!r}",
            "device",
            code="device.not_found",
            params={"site": site, "device": device},
        )
    return _device_out(svc, state)


def _from_cache(state: DeviceState) -> LatestOut:
    return LatestOut(
        site=state.site,
        device=state.device,
        source="live",
        time_ms=state.last_seen_ms,
        values=state.values,
        times_ms=state.times_ms,
        quality={p: q.q.value for p, q in state.quality.items()},
        reasons={p: q.reason for p, q in state.quality.items()},
        units=state.units,
    )


_QUALITY_NAMES = {1: "uncertain", 2: "bad"}


def _from_row(row: LatestRow, profile: Profile | None) -> LatestOut:
    return LatestOut(
        site=row.site,
        device=row.device,
        source="influxdb",
        time_ms=row.time_ms or None,
        values=row.values,
        times_ms=row.times_ms,
        quality={f: _QUALITY_NAMES.get(q, "bad") for f, q in row.quality.items() if q},
        reasons=row.reasons,
        units=profile.units if profile else {},
    )


async def _latest(svc: ApiService, site: str, states: list[DeviceState]) -> list[LatestOut]:
    """Live values where the cache has them; the others from InfluxDB, one query per measurement of the site."""
    out: dict[str, LatestOut] = {s.device: _from_cache(s) for s in states if s.has_values}
    missing: dict[str, list[DeviceState]] = {}
    for s in states:
        profile = svc.profiles.get(s.profile)
        if s.device not in out and profile is not None:
            missing.setdefault(profile.measurement, []).append(s)
    try:
        for measurement, group in missing.items():
            device = group[0].device if len(group) == 1 else None
            rows = await svc.influx.latest(measurement, site=site, device=device, with_quality=True)
            wanted = {s.device: s for s in group}
            for row in rows:
                if row.device in wanted:
                    out[row.device] = _from_row(row, svc.profile_of(site, row.device, wanted[row.device].profile))
    except QueryUnavailableError as exc:
        raise error(503, f"InfluxDB is not reachable: {exc.message}", code="influxdb.unreachable") from exc
    except QueryError as exc:
        raise error(502, f"InfluxDB refused the query: {exc.message}", code="influxdb.refused") from exc
    now = svc.clock()
    answer = [out.get(s.device) or _nothing(site, s.device) for s in states]
    for a in answer:
        a.age_ms = None if a.time_ms is None else max(0, now - a.time_ms)
    return answer


def _nothing(site: str, device: str) -> LatestOut:
    return LatestOut(
        site=site, device=device, source="none", time_ms=None, values={}, times_ms={}, quality={}, reasons={}, units={}
    )


@router.get("/api/sites/{site}/latest", tags=["readings"])
async def site_latest(site: SiteId, who: Reader, svc: Service) -> list[LatestOut]:
    check_site(svc, who, site)
    return await _latest(svc, site, svc.cache.devices(site))


@router.get("/api/sites/{site}/devices/{device}/latest", tags=["readings"])
async def device_latest(site: SiteId, device: DeviceId, who: Reader, svc: Service) -> LatestOut:
    check_site(svc, who, site)
    unheard = svc.cache.get(site, device)
    if unheard is not None and not unheard.profile:  # named by its agent's birth, never heard: nothing yet
        return _nothing(site, device)
    state, _ = _known_device(svc, site, device)
    return (await _latest(svc, site, [state]))[0]


def _numeric(profile: Profile) -> dict[str, bool]:
    derived = dict.fromkeys(profile.derived_names(), True)  # O2-corrected values and loads are numbers
    if profile.modbus:
        return {p.name: p.numeric for p in profile.modbus.points} | derived
    if profile.hj212:  # HJ 212 values are all numbers
        return dict.fromkeys(profile.point_names(), True)
    points = profile.mqtt.points if profile.mqtt else profile.internal.points if profile.internal else []
    return {p.name: p.type.value in ("number", "integer") for p in points} | derived


Aggregate = Literal["mean", "median", "min", "max", "first", "last"]
_POINT = r"[a-z][a-z0-9_]{0,63}"
Points = Annotated[
    list[Annotated[str, Query(pattern=rf"^{_POINT}$")]] | None,
    Query(max_length=50, description="point names (repeat); default: every numeric point"),
]
StartMs = Annotated[int | None, Query(ge=0, le=MAX_MS, description="default: end_ms - 24 h")]
EndMs = Annotated[int | None, Query(ge=1, le=MAX_MS, description="default: now")]
MaxPoints = Annotated[int | None, Query(ge=2, le=100_000, description="bounded by the config")]
AggregateQuery = Annotated[Aggregate, Query(description="for numeric points; others take the last")]
ProfileName = Annotated[
    str,
    Query(
        pattern=rf"^{_POINT}$", description="the devices' profile (a site may hold several, each its own measurement)"
    ),
]
PointLists = Annotated[
    list[Annotated[str, Query(max_length=3300, pattern=rf"^{_POINT}(,{_POINT})*$")]] | None,
    Query(max_length=50, description="point names, comma-separated or repeated; default: every numeric point"),
]


@dataclass(frozen=True, slots=True)
class _HistoryRequest:
    """A history request's checked arguments: point names split by aggregate, the bound and the range."""

    groups: list[tuple[Aggregate, list[str]]]  # (aggregate, points), only groups with points
    limit: int
    start: int
    end: int


def _history_request(
    svc: ApiService,
    profile: Profile,
    points: list[str] | None,
    start_ms: int | None,
    end_ms: int | None,
    max_points: int | None,
    aggregate: Aggregate,
) -> _HistoryRequest:
    numeric = _numeric(profile)
    wanted = list(dict.fromkeys(points)) if points else [p for p, n in numeric.items() if n]
    unknown = [p for p in wanted if p not in numeric]
    if unknown:
        raise error(
            422,
            f"profile {profile.name!r} has no point {', '.join(unknown)}",
            "points",
            code="history.unknown_points",
            params={"profile": profile.name, "points": ", ".join(unknown)},
        )
    cfg = svc.config.history
    limit = max_points if max_points is not None else cfg.default_points
    if limit > cfg.max_points:
        raise error(
            422,
            f"max_points may be at most {cfg.max_points}",
            "max_points",
            code="history.max_points",
            params={"max": cfg.max_points},
        )
    end = end_ms if end_ms is not None else svc.clock()
    start = start_ms if start_ms is not None else max(0, end - DAY_MS)
    if end <= start:
        raise error(422, "end_ms must be after start_ms", "end_ms", code="history.end_before_start")
    if end - start > cfg.max_range_days * DAY_MS:
        raise error(
            422,
            f"the range may span at most {cfg.max_range_days} days",
            "start_ms",
            code="history.range_too_long",
            params={"days": cfg.max_range_days},
        )
    # bool and text points cannot be averaged: they take the bucket's last value
    groups: list[tuple[Aggregate, list[str]]] = [
        (aggregate, [p for p in wanted if numeric[p]]),
        ("last", [p for p in wanted if not numeric[p]]),
    ]
    return _HistoryRequest([(agg, fields) for agg, fields in groups if fields], limit, start, end)


async def _influx(calls: Iterable[Awaitable[T]]) -> list[T]:
    """Run the InfluxDB reads together; an unreachable InfluxDB is a 503, a refused query a 502."""
    try:
        return list(await asyncio.gather(*calls))
    except QueryUnavailableError as exc:
        raise error(503, f"InfluxDB is not reachable: {exc.message}", code="influxdb.unreachable") from exc
    except QueryError as exc:
        raise error(502, f"InfluxDB refused the query: {exc.message}", code="influxdb.refused") from exc


def _merge(results: Iterable[list[Point]], limit: int) -> list[HistoryPoint]:
    """The points of each aggregate group joined on their time, oldest first, at most ``limit``."""
    merged: dict[int, HistoryPoint] = {}
    for result in results:
        for p in result:
            slot = merged.setdefault(p.time_ms, HistoryPoint(time_ms=p.time_ms, values={}, quality={}))
            slot.values.update(p.values)
            slot.quality.update(p.quality)
    return [merged[t] for t in sorted(merged)][:limit]


@router.get("/api/sites/{site}/devices/{device}/history", tags=["readings"])
async def device_history(
    site: SiteId,
    device: DeviceId,
    who: Reader,
    svc: Service,
    points: Points = None,
    start_ms: StartMs = None,
    end_ms: EndMs = None,
    max_points: MaxPoints = None,
    aggregate: AggregateQuery = "mean",
) -> HistoryOut:
    check_site(svc, who, site)
    state, profile = _known_device(svc, site, device)
    req = _history_request(svc, profile, points, start_ms, end_ms, max_points, aggregate)
    results = await _influx(
        svc.influx.history(
            profile.measurement,
            site=site,
            device=device,
            fields=fields,
            start_ms=req.start,
            end_ms=req.end,
            max_points=req.limit,
            aggregate=agg,
            with_quality=True,
        )
        for agg, fields in req.groups
    )
    return HistoryOut(
        site=site,
        device=state.device,
        measurement=profile.measurement,
        start_ms=req.start,
        end_ms=req.end,
        max_points=req.limit,
        points=_merge(results, req.limit),
    )


def _joined(results: list[list[Point]], limit: int) -> list[Point]:
    """``_merge`` without a model per point, for an answer encoded by orjson (which writes a ``Point`` as a
    ``HistoryPoint``): one group's points as they are, several groups' joined on their time."""
    if len(results) == 1:
        return results[0][:limit]
    merged: dict[int, Point] = {}
    for result in results:
        for p in result:
            slot = merged.get(p.time_ms)
            if slot is None:
                merged[p.time_ms] = Point(p.time_ms, dict(p.values), dict(p.quality))
            else:
                slot.values.update(p.values)
                slot.quality.update(p.quality)
    return [merged[t] for t in sorted(merged)][:limit]


@router.get("/api/sites/{site}/history", tags=["readings"], response_model=SiteHistoryOut)
async def site_history(
    site: SiteId,
    who: Reader,
    svc: Service,
    profile: ProfileName,
    points: PointLists = None,
    start_ms: StartMs = None,
    end_ms: EndMs = None,
    max_points: MaxPoints = None,
    aggregate: AggregateQuery = "mean",
) -> Response:
    """Every device of the site with this profile (those the live cache knows; with none known, every device
    InfluxDB has data of), bucketed to at most ``max_points`` each, in one InfluxQL query per aggregate (one
    for numeric points, one more for bool and text points); the settled buckets of a long range from the API's
    cache (``cached_before_ms``, ``cache_age_ms``). Encoded by orjson straight from the reader's points: a model
    per point cost 250 ms of a 50-device day's answer."""
    check_site(svc, who, site)
    known = svc.profiles.get(profile)
    if known is None:
        raise error(422, f"no profile {profile!r}", "profile", code="profile.not_found", params={"profile": profile})
    names = [name for item in points for name in item.split(",")] if points else None
    if names is not None and len(set(names)) > 50:
        raise error(422, "at most 50 points", "points", code="history.too_many_points", params={"max": 50})
    req = _history_request(svc, known, names, start_ms, end_ms, max_points, aggregate)
    devices = [s.device for s in svc.cache.devices(site) if s.profile == known.name] or None
    now = svc.clock()
    answers = await _influx(
        svc.history.site_history(
            known.measurement,
            site=site,
            fields=fields,
            start_ms=req.start,
            end_ms=req.end,
            now_ms=now,
            max_points=req.limit,
            aggregate=agg,
            devices=devices,
            with_quality=True,
        )
        for agg, fields in req.groups
    )
    results = [a.devices for a in answers]
    found = sorted({d for result in results for d in result})
    cached = [a for a in answers if a.read_at_ms is not None]
    body = {
        "site": site,
        "profile": known.name,
        "measurement": known.measurement,
        "start_ms": req.start,
        "end_ms": req.end,
        "interval_ms": choose_interval_ms(req.start, req.end, req.limit),
        "max_points": req.limit,
        "devices": {d: _joined([r.get(d, []) for r in results], req.limit) for d in found},
        "cached_before_ms": min((a.cached_before_ms or 0 for a in cached), default=None),
        "cache_age_ms": max((now - (a.read_at_ms or now) for a in cached), default=None),
    }
    return Response(orjson.dumps(body), media_type="application/json")


class PointOut(BaseModel):
    unit: str
    decimals: int | None  # from the point's scale (0.01: 2 decimals); None: as measured
    states: dict[int, str] | None  # the labels of coded values (alarm_level 2: "second-level alarm")
    range: tuple[float, float] | None


class ProfileOut(BaseModel):
    name: str
    title: str
    points: dict[str, PointOut]


def _decimals(scale: float) -> int | None:
    if scale in {1.0, 0}:
        return None
    return max(0, math.ceil(-math.log10(abs(scale)) - 1e-9))


@router.get("/api/profiles/{name}", tags=["devices"])
def get_profile(name: Annotated[str, Path(pattern=ID_PATTERN)], who: Reader, svc: Service) -> ProfileOut:
    """What the console needs to show a device's values: each point's unit, decimals and state labels."""
    profile = svc.profiles.get(name)
    if profile is None:
        raise error(404, f"no profile {name!r}", "name", code="profile.not_found", params={"profile": name})
    return _profile_out(profile)


@router.get("/api/sites/{site}/devices/{device}/profile", tags=["devices"])
def get_device_profile(site: SiteId, device: DeviceId, who: Reader, svc: Service) -> ProfileOut:
    """The device's own point specs: its profile's, with the changes its site file makes (``DeviceOut.own_profile``:
    a drive's frequency scale and range, a controller channel's decimals)."""
    check_site(svc, who, site)
    _, profile = _known_device(svc, site, device)
    return _profile_out(profile)


def _profile_out(profile: Profile) -> ProfileOut:
    points = {
        p.name: PointOut(
            unit=p.unit,
            decimals=p.decimals if p.decimals is not None else _decimals(p.scale),
            states=p.states,
            range=p.range,
        )
        for p in profile.points
    }
    for d in profile.derived.points if profile.derived else []:  # O2-corrected values, loads, composed values
        if d.decimals is not None or d.unit:
            points.setdefault(d.name, PointOut(unit=d.unit, decimals=d.decimals, states=None, range=None))
    for unit_name, unit in profile.units.items():
        points.setdefault(unit_name, PointOut(unit=unit, decimals=None, states=None, range=None))
    return ProfileOut(name=profile.name, title=profile.title, points=points)


@router.get("/api/rules", tags=["rules"])
def list_rules(who: Reader, svc: Service) -> list[dict[str, object]]:
    return [{"kind": r.kind, **r.model_dump(mode="json", by_alias=True, exclude_none=True)} for r in svc.rules]


Text = Annotated[str | None, Query(max_length=256, pattern=TEXT_PATTERN)]


@router.get("/api/audit", tags=["audit"])
def audit_log(
    who: Admin,
    svc: Service,
    since_ms: Annotated[int | None, Query(ge=0, le=MAX_MS)] = None,
    user: Annotated[str | None, Query(pattern=ID_PATTERN, description="who acted")] = None,
    action: Text = None,
    target_prefix: Text = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[AuditRow]:
    return svc.store.audit_log(since_ms=since_ms, who=user, action=action, target_prefix=target_prefix, limit=limit)


@router.get("/healthz", tags=["system"], responses={503: {"description": "a part is not reachable"}})
async def healthz(svc: Service, response: Response) -> dict[str, str]:
    async def influx_ok() -> bool:
        try:
            await svc.influx.ping()
        except QueryError:
            return False
        return True

    parts = {
        "broker": svc.link.connected.is_set(),
        "influxdb": await influx_ok(),
        "store": await run_in_threadpool(svc.store.ping),
    }
    if not all(parts.values()):
        response.status_code = 503
    return {name: "ok" if ok else "unreachable" for name, ok in parts.items()}


@router.get("/metrics", tags=["system"], response_class=Response, responses={200: {"content": {"text/plain": {}}}})
def metrics(svc: Service) -> Response:
    return Response(svc.metrics_text(), media_type=CONTENT_TYPE)
