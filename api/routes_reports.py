"""Reports and exports: ``GET /api/reports/{kind}`` (source, air, water, safety) of a Beijing day or month as CSV,
XLSX or PDF, built by ``reports.service`` from the stored valid means, daily indices and the alert store.

Roles: the environment reports (source, air, water) for the environment officer and the admin, the safety report
for the safety inspector and the admin; others get 403. A scoped user's report covers only their areas: a site or an
area outside them is a 403, as everywhere in the API. An unreachable InfluxDB is a 503, a refused query a 502.
The source report judges against the permits in ``app.state.report_permits`` ({(site, device): Permit}) where the
composition puts them; without, it reports means, capture and totals with no exceedance judged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from api.auth import Principal, Role
from api.deps import ID_PATTERN, Service, Who, check_site, error, visible_sites
from api.service import ApiService
from reports import MEDIA_TYPES, ReportPeriod, render
from reports.service import Kind, build_report
from rules.standards import Permit
from storage import QueryError, QueryUnavailableError

router = APIRouter()

ROLES: Mapping[Kind, frozenset[Role]] = {
    "source": frozenset({Role.ENVIRONMENT_OFFICER, Role.ADMIN}),
    "air": frozenset({Role.ENVIRONMENT_OFFICER, Role.ADMIN}),
    "water": frozenset({Role.ENVIRONMENT_OFFICER, Role.ADMIN}),
    "safety": frozenset({Role.SAFETY_INSPECTOR, Role.ADMIN}),
}
PERMITS_STATE = "report_permits"
DATE_PATTERN = r"^\d{4}-\d{2}(-\d{2})?$"


def _scope(svc: ApiService, who: Principal, site: str | None, area: str | None) -> tuple[list[str] | None, str]:
    """The sites the report covers and how it is named: one site, one area, or everything the user sees."""
    if site is not None and area is not None:
        raise error(422, "give a site or an area, not both", "area", code="report.site_and_area")
    if site is not None:
        check_site(svc, who, site)
        return [site], site
    if area is not None:
        if area not in svc.config.areas:
            raise error(422, f"unknown area {area!r}", "area", code="report.unknown_area", params={"area": area})
        if not who.sees_area(area):
            raise error(
                403,
                f"area {area!r} is outside your areas",
                "area",
                code="auth.area_outside_areas",
                params={"area": area},
            )
        return list(svc.config.areas[area]), f"区域 {area}"
    seen = visible_sites(svc, who)
    if seen is None:
        return None, "全部站点"
    return sorted(seen), "区域 " + ", ".join(sorted(who.areas))


@router.get("/api/reports/{kind}", tags=["reports"], response_class=Response)
async def report(
    kind: Kind,
    request: Request,
    who: Who,
    svc: Service,
    period: Annotated[Literal["day", "month"], Query(description="a Beijing natural day or month")],
    date: Annotated[str, Query(pattern=DATE_PATTERN, description="YYYY-MM-DD (day) or YYYY-MM (month)")],
    format: Annotated[Literal["csv", "xlsx", "pdf"], Query(description="the file format")] = "pdf",
    site: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    area: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    hourly: Annotated[bool | None, Query(description="source: the hourly means (default: day reports only)")] = None,
) -> Response:
    """The report as a file download (Content-Disposition: attachment)."""
    if who.role not in ROLES[kind]:
        allowed = ", ".join(sorted(r.value for r in ROLES[kind]))
        raise error(
            403,
            f"role {who.role.value} may not read the {kind} report ({allowed})",
            code="auth.role_forbidden",
            params={"role": who.role.value, "permission": f"report_{kind}"},
        )
    try:
        when = ReportPeriod.parse(period, date)
    except ValueError as exc:
        raise error(422, str(exc), "date", code="report.bad_date") from exc
    sites, scope = _scope(svc, who, site, area)
    permits: Mapping[tuple[str, str], Permit] = getattr(request.app.state, PERMITS_STATE, {})
    try:
        built = await build_report(
            kind,
            when,
            reader=svc.influx,
            store=svc.store,
            sites=sites,
            scope=scope,
            now_ms=svc.clock(),
            permits=permits,
            include_hourly=hourly,
        )
    except QueryUnavailableError as exc:
        raise error(503, f"InfluxDB is not reachable: {exc.message}", code="influxdb.unreachable") from exc
    except QueryError as exc:
        raise error(502, f"InfluxDB refused the query: {exc.message}", code="influxdb.refused") from exc
    name = f"{kind}-{period}-{date}.{format}"
    return Response(
        render(built, format),
        media_type=MEDIA_TYPES[format],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
