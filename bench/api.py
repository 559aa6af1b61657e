"""``lifeline bench api``: p50/p99 latency of the API's latest-values and 24-hour history reads.

Loopback only: an InfluxDB 1.6.7 of the benchmark's own (temporary folder) filled with 24 h of water-quality
readings of a 50-device site (10 points, one sample every ``--interval-s``), and the API in this process, driven
through httpx's ASGI transport with a bearer token (so authentication is in every figure).

Cases, each "before" and "after" in the same run:
- latest of one device and of the whole site: "cold" is an API that knows the devices from their status only (as
  right after a restart), so the values are read from InfluxDB (one InfluxQL request per measurement); "live" is the
  API as it runs: its live state holds the newest sample of every device (here given as the MQTT link would give it,
  the last stored sample of each), no InfluxDB query. The live answer is checked equal to the cold one (values,
  times, quality) before any figure is taken, and says how old it is (``age_ms``).
- the 24-hour history of one device; the 24-hour histories of all 50 devices at once (a site's dashboard: one
  request to ``/api/sites/{site}/history``): "uncached" aggregates the whole day in InfluxDB at every request, as
  before; "cached" keeps the settled buckets (storage.history_cache) and reads only the newest minutes. The cached
  answer is checked equal to an uncached one over the same range before any figure is taken, and says how old its
  cached part is (``cache_age_ms``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench._figures import figure, write_json
from testing import Influxd, free_port

POINTS = ["ph", "do", "codmn", "cod", "nh3_n", "tp", "tn", "turbidity", "conductivity", "water_temp"]
SITE = "bench-site"
DAY_MS = 86_400_000


def _fill(influx: Influxd, devices: int, interval_s: int, end_ms: int) -> int:
    """24 h of readings for every device; returns how many values were written."""
    steps = DAY_MS // (interval_s * 1000)
    start = end_ms - DAY_MS
    written = 0
    with httpx.Client(base_url=influx.url, timeout=120) as client:
        for d in range(devices):
            lines = []
            for i in range(steps):
                values = ",".join(f"{p}={7 + ((i + j + d) % 97) / 100}" for j, p in enumerate(POINTS))
                lines.append(
                    f"water_quality,site={SITE},device=wq-{d:03d},profile=water_quality_station "
                    f"{values} {start + i * interval_s * 1000}"
                )
            r = client.post("/write", params={"db": "lifeline", "precision": "ms"}, content="\n".join(lines))
            r.raise_for_status()
            written += len(lines) * len(POINTS)
    return written


async def _service(args: argparse.Namespace, influx: Influxd, data_dir: Path) -> tuple[Any, str]:
    """The API service (started, no broker) knowing the site's devices from their status only, and a token."""
    from api import ApiConfig, ApiService
    from api.auth import Role
    from telemetry import DeviceStatus

    config = ApiConfig.model_validate(
        {
            "store": {"url": f"sqlite:///{data_dir / 'api.sqlite'}"},
            "influx": {"url": influx.url, "database": "lifeline"},
            "broker": {"host": "127.0.0.1", "port": free_port()},  # nothing there: the bench needs no broker
            "areas": {"bench": [SITE]},
        }
    )
    service = ApiService(config)
    now = service.clock()
    for d in range(args.devices):
        service.cache.apply_status(
            DeviceStatus(site=SITE, device=f"wq-{d:03d}", profile="water_quality_station", online=True, ts=now)
        )
    service.users.create("bench", "bench-password-1", Role.VIEWER, [])
    _, token = service.users.issue("bench", "api", "bench", None)
    await service.start(connect=False)
    return service, token


async def _measure(args: argparse.Namespace, influx: Influxd, data_dir: Path) -> list[dict[str, object]]:
    from api import create_app
    from telemetry import Sample, Telemetry

    service, token = await _service(args, influx, data_dir)
    transport = httpx.ASGITransport(app=create_app(service, manage=False))
    results: list[dict[str, object]] = []
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        device = f"/api/sites/{SITE}/devices/wq-000"
        site_latest = f"/api/sites/{SITE}/latest"
        site_history = f"/api/sites/{SITE}/history?profile=water_quality_station"

        async def get(path: str) -> Any:
            return (await client.get(path)).raise_for_status().json()

        async def case(name: str, mode: str, devices: int, path: str) -> None:
            await get(path)  # warm-up (and, cached, the first read that fills the cache)
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                await get(path)
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            results.append(
                {
                    "query": name,
                    "mode": mode,
                    "devices": devices,
                    "p50_ms": round(statistics.median(times), 2),
                    "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
                    "requests": args.repeats,
                }
            )

        # before: latest from InfluxDB (devices known from their status only)
        cold = await get(site_latest)
        if sum(1 for d in cold if d["source"] == "influxdb") != args.devices:
            raise RuntimeError("the cold latest read did not come from InfluxDB for every device")
        await case("latest", "cold", 1, f"{device}/latest")
        await case("latest", "cold", args.devices, site_latest)
        # after: the live state holds each device's newest sample, as the MQTT link keeps it
        for d in cold:
            service.cache.apply_telemetry(
                Telemetry(
                    site=SITE,
                    device=d["device"],
                    profile="water_quality_station",
                    measurement="water_quality",
                    seq=1,
                    samples=[Sample(ts=d["time_ms"], values=d["values"])],
                )
            )
        live = await get(site_latest)
        _same_latest(cold, live)
        await case("latest", "live", 1, f"{device}/latest")
        await case("latest", "live", args.devices, site_latest)

        # history: the same range uncached and cached must give the same answer
        end_ms = service.clock()
        fixed = f"{site_history}&start_ms={end_ms - DAY_MS}&end_ms={end_ms}"
        keep = service.history.min_buckets
        service.history.min_buckets = 1 << 40  # every range "too short" to keep: the uncached path
        uncached = await get(fixed)
        filled = sum(1 for points in uncached["devices"].values() if points)
        if filled != args.devices:  # a figure for an answer that misses devices would flatter the endpoint
            raise RuntimeError(f"the site history held data of {filled} devices, not {args.devices}")
        await case("history_24h", "uncached", 1, f"{device}/history")
        await case("history_24h", "uncached", args.devices, site_history)
        service.history.min_buckets = keep
        await get(fixed)  # fills the cache
        cached = await get(fixed)
        if cached["cache_age_ms"] is None or cached["devices"] != uncached["devices"]:
            raise RuntimeError("the cached site history differs from the uncached one (or was not cached)")
        await case("history_24h", "cached", args.devices, site_history)
    await service.stop()
    return results


def _same_latest(cold: list[dict[str, Any]], live: list[dict[str, Any]]) -> None:
    """The live state's answer holds what InfluxDB holds: the same values, times and quality of every device."""
    for c, lv in zip(cold, live, strict=True):
        if lv["source"] != "live" or lv["age_ms"] is None:
            raise RuntimeError(f"device {lv['device']}: not answered from the live state")
        for part in ("device", "time_ms", "values", "times_ms", "quality", "reasons"):
            if c[part] != lv[part]:
                raise RuntimeError(f"device {c['device']}: live {part} {lv[part]!r} != stored {c[part]!r}")


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lifeline-bench-api-") as tmp:
        data_dir = Path(tmp)
        with Influxd(data_dir / "influxdb") as influx:
            influx.create_database("lifeline")
            end = int(time.time() * 1000)
            written = _fill(influx, args.devices, args.interval_s, end)
            results = asyncio.run(_measure(args, influx, data_dir))
    write_json(args.json, "api", {"load_average": list(os.getloadavg()), "cases": results})
    print(
        f"API read latency: {args.devices} devices, 24 h of {len(POINTS)} points every {args.interval_s} s "
        f"({written:,} values) in InfluxDB 1.6.7, {args.repeats} requests a case; "
        f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )
    print(f"{'query':<14}{'mode':<10}{'devices':>8}{'p50 ms':>10}{'p99 ms':>10}")
    for r in results:
        figure(f"{r['query']:<14}{r['mode']:<10}{r['devices']:>8}{r['p50_ms']:>10}{r['p99_ms']:>10}")
    return 0
