"""``lifeline report <kind>``: a report of a Beijing day or month as CSV, XLSX or PDF, from the same InfluxDB and
alert store the API reads (``--config``: the API's config file; without it, the defaults the local stack uses).

    lifeline report air --period month --date 2026-03 --area east --format pdf --out air-2026-03.pdf
    lifeline report source --period day --date 2026-03-10 --site plant1 --permits permits.yaml --out s.xlsx
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from infra.config_loader import ConfigError
from lifeline._run import Subparsers

if TYPE_CHECKING:
    from api.config import ApiConfig
    from reports import Report, ReportPeriod
    from reports.service import Kind
    from rules.standards import Permit

KINDS = ("source", "air", "water", "safety")
FORMATS = ("csv", "xlsx", "pdf")


def add_parsers(sub: Subparsers) -> None:
    p = sub.add_parser("report", help="a daily or monthly report as CSV, XLSX or PDF")
    p.add_argument("kind", choices=KINDS, help="source (pollution sources), air, water or safety")
    p.add_argument("--period", choices=("day", "month"), required=True)
    p.add_argument("--date", required=True, help="YYYY-MM-DD (day) or YYYY-MM (month), Beijing time")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("--site", action="append", default=None, help="a site (repeatable); default: every site")
    scope.add_argument("--area", help="every site of an area of the config")
    p.add_argument("--format", choices=FORMATS, default=None, help="default: the --out file's extension")
    p.add_argument("--out", type=Path, required=True, help="the file to write")
    p.add_argument("--config", type=Path, default=None, help="the API's config (InfluxDB, alert store, areas)")
    p.add_argument("--permits", type=Path, default=None, help="a permit file (source reports judge against it)")
    p.add_argument("--hourly", action="store_true", help="source: the hourly means in a month report too")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from api.config import ApiConfig
    from infra.config_loader import read_yaml, validate
    from reports import ReportPeriod, render
    from rules.standards import load_permits

    fmt = args.format or args.out.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise SystemExit(f"--format: give one of {', '.join(FORMATS)} (or an --out file ending in one)")
    try:
        period = ReportPeriod.parse(args.period, args.date)
        config = ApiConfig() if args.config is None else validate(ApiConfig, read_yaml(args.config), "api config")
        permits = load_permits(args.permits) if args.permits is not None else {}
    except (ValueError, ConfigError) as exc:
        raise SystemExit(str(exc)) from exc
    sites: list[str] | None = args.site
    scope = "全部站点 (all sites)" if not sites else ", ".join(sites)
    if args.area is not None:
        if args.area not in config.areas:
            raise SystemExit(f"--area {args.area!r}: not an area of the config ({', '.join(sorted(config.areas))})")
        sites, scope = list(config.areas[args.area]), f"区域 {args.area}"
    report = asyncio.run(_build(args.kind, period, config, sites, scope, permits, args.hourly or None))
    data = render(report, fmt)
    args.out.write_bytes(data)
    print(f"{args.out}: {report.title} ({fmt}, {len(data)} bytes, {sum(len(t.rows) for t in report.tables)} rows)")
    return 0


async def _build(
    kind: Kind,
    period: ReportPeriod,
    config: ApiConfig,
    sites: list[str] | None,
    scope: str,
    permits: Mapping[tuple[str, str], Permit],
    include_hourly: bool | None,
) -> Report:
    from alerts.store import AlertStore
    from reports.service import build_report
    from storage import InfluxQuery, QueryError

    now = int(time.time() * 1000)
    if kind == "safety":
        store = AlertStore(config.store.url)
        try:
            return await build_report(kind, period, reader=None, store=store, sites=sites, scope=scope, now_ms=now)
        finally:
            store.close()
    reader = InfluxQuery(config.influx)
    try:
        return await build_report(
            kind,
            period,
            reader=reader,
            store=None,
            sites=sites,
            scope=scope,
            now_ms=now,
            permits=permits,
            include_hourly=include_hourly,
        )
    except QueryError as exc:
        raise SystemExit(f"InfluxDB: {exc}") from exc
    finally:
        await reader.aclose()
