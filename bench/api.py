"""``lifeline bench api``: p50/p99 latency of the API's latest-values and 24-hour history reads.

Loopback only: an InfluxDB 1.6.7 of the benchmark's own (temporary folder) filled with 24 h of water-quality
readings of a 50-device site (10 points, one sample every ``--interval-s``), and the API in this process, driven
through httpx's ASGI transport with a bearer token (so authentication is in every figure). The devices are known
from their status only (as after an API restart), so "latest" is read from InfluxDB, not from the live cache.

Cases: latest of one device; latest of the whole site (one InfluxQL query per measurement); the 24-hour history of
one device (every numeric point, at most 500 points); the 24-hour histories of all 50 devices at once (a site's
dashboard: one request to ``/api/sites/{site}/history``, one InfluxQL query; it took 50 requests and 100 queries
before that endpoint).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

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


async def _measure(args: argparse.Namespace, influx: Influxd, data_dir: Path) -> list[dict[str, object]]:
    from api import ApiConfig, ApiService, create_app
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
    transport = httpx.ASGITransport(app=create_app(service, manage=False))
    results = []
    async with httpx.AsyncClient(
        transport=transport, base_url="http://api", headers={"Authorization": f"Bearer {token}"}, timeout=60
    ) as client:
        device = f"/api/sites/{SITE}/devices/wq-000"

        async def one(path: str) -> None:
            r = await client.get(path)
            r.raise_for_status()

        site_history = f"/api/sites/{SITE}/history?profile=water_quality_station"
        answer = (await client.get(site_history)).raise_for_status().json()
        filled = sum(1 for points in answer["devices"].values() if points)
        if filled != args.devices:  # a figure for an answer that misses devices would flatter the endpoint
            raise RuntimeError(f"the site history held data of {filled} devices, not {args.devices}")

        cases: list[tuple[str, int, Callable[[], Awaitable[None]]]] = [
            ("latest", 1, lambda: one(f"{device}/latest")),
            ("latest", args.devices, lambda: one(f"/api/sites/{SITE}/latest")),
            ("history_24h", 1, lambda: one(f"{device}/history")),
            ("history_24h", args.devices, lambda: one(site_history)),
        ]
        for name, devices, call in cases:
            await call()  # warm-up
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                await call()
                times.append((time.perf_counter() - t) * 1000)
            times.sort()
            results.append(
                {
                    "query": name,
                    "devices": devices,
                    "p50_ms": round(statistics.median(times), 2),
                    "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
                    "requests": args.repeats,
                }
            )
    await service.stop()
    return results


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="lifeline-bench-api-") as tmp:
        data_dir = Path(tmp)
        with Influxd(data_dir / "influxdb") as influx:
            influx.create_database("lifeline")
            end = int(time.time() * 1000)
            written = _fill(influx, args.devices, args.interval_s, end)
            results = asyncio.run(_measure(args, influx, data_dir))
    write_json(args.json, "api", results)
    print(
        f"API read latency: {args.devices} devices, 24 h of {len(POINTS)} points every {args.interval_s} s "
        f"({written:,} values) in InfluxDB 1.6.7, {args.repeats} requests a case"
    )
    print(f"{'query':<14}{'devices':>8}{'p50 ms':>10}{'p99 ms':>10}")
    for r in results:
        figure(f"{r['query']:<14}{r['devices']:>8}{r['p50_ms']:>10}{r['p99_ms']:>10}")
    return 0
