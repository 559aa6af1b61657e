"""The environment bureau's indices, as the rules service stores them: the air quality index of each air station
(hourly and daily, HJ 633-2012/2026) and the daily class of each surface-water station (GB 3838-2002) with its
target. Read-only, for every role, within the user's areas."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.deps import Reader, Service, SiteId, check_site
from api.routes_data import _influx
from telemetry.influx_query import Series, quote_ident, quote_string

router = APIRouter()
MEASUREMENTS = {"hour": "air_quality_aqi_hourly", "day": "air_quality_aqi_daily"}


class AqiOut(BaseModel):
    site: str
    device: str
    period_start_ms: int
    period: Literal["hour", "day"]
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


def _split(text: object) -> list[str]:
    return [part for part in str(text or "").split(",") if part]


def _rows(series: list[Series]) -> list[tuple[dict[str, str], dict[str, Any]]]:
    return [(s.tags, row) for s in series for row in s.rows()]


@router.get("/api/sites/{site}/aqi", tags=["environment"])
async def site_aqi(site: SiteId, who: Reader, svc: Service,
                   period: Annotated[Literal["hour", "day"], Query()] = "hour") -> list[AqiOut]:  # fmt: skip
    """The newest AQI of each air station of ``site`` (hourly or daily)."""
    check_site(svc, who, site)
    q = (f"SELECT * FROM {quote_ident(MEASUREMENTS[period])} WHERE \"site\" = {quote_string(site)} "
         'GROUP BY "device" ORDER BY time DESC LIMIT 1')  # fmt: skip
    (series,) = await _influx([svc.influx.query(q)])
    out = []
    for tags, row in _rows(series):
        out.append(AqiOut(
            site=site, device=tags.get("device", ""), period_start_ms=int(row["time"]), period=period,
            aqi=row.get("aqi"), level=row.get("level"), category=row.get("category"),
            category_en=row.get("category_en"), colour=row.get("colour"),
            primary=_split(row.get("primary")), missing=_split(row.get("missing")), edition=str(row.get("edition")),
            iaqi={k.removeprefix("iaqi_"): float(v) for k, v in row.items()
                  if k.startswith("iaqi_") and v is not None},
        ))  # fmt: skip
    return sorted(out, key=lambda a: a.device)


@router.get("/api/sites/{site}/water-class", tags=["environment"])
async def site_water_class(site: SiteId, who: Reader, svc: Service) -> list[WaterOut]:
    """The newest daily class of each water-quality station of ``site``, its deciding parameters and target."""
    check_site(svc, who, site)
    q = (f'SELECT * FROM "water_quality_daily" WHERE "site" = {quote_string(site)} AND "water_class" > 0 '
         'GROUP BY "device" ORDER BY time DESC LIMIT 1')  # fmt: skip
    (series,) = await _influx([svc.influx.query(q)])
    out = []
    for tags, row in _rows(series):
        missed = row.get("target_missed")
        means = {k: float(v) for k, v in row.items()
                 if k in ("ph", "do", "codmn", "cod", "nh3_n", "tp", "tn") and v is not None}  # fmt: skip
        out.append(WaterOut(site=site, device=tags.get("device", ""), day_start_ms=int(row["time"]),
                            water_class=float(row["water_class"]),
                            deciding=_split(row.get("water_class_deciding")),
                            target_missed=None if missed is None else bool(missed), means=means))  # fmt: skip
    return sorted(out, key=lambda w: w.device)
