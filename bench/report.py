"""A month of a 500-station district: the reports built and rendered, timed, their peak memory, and their numbers
checked against a reference computed the simplest way in the same run.

Rows are generated in-process (no InfluxDB): ``--sources`` pollution sources (CEMS, 7 points an hour, about 3 % of
the hours invalid, some over the ultra-low permit) for every hour of the month, and ``--stations`` air stations with
a daily AQI. Phases: the source report (one pass over the hourly rows) and the air report built, then rendered as
CSV, XLSX and PDF. Peak memory is the Python heap's peak (tracemalloc) in a second run of the same work, so the
timed run is not slowed by the tracing. The reference is a plain loop over the same rows (dicts and counters): every
source's valid hours, hours over the limit and emitted total, and the air days per category, must equal the report's.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator

from bench._figures import figure, write_json
from reports import AqiDay, MeanRow, Report, ReportPeriod, air_report, render, source_report
from rules.standards import Permit, load_templates

POLLUTANTS = ("so2", "nox", "dust")
LEVEL_OF = ((50, 1), (100, 2), (150, 3), (200, 4), (300, 5))


def _permits(sources: int) -> dict[tuple[str, str], Permit]:
    t = load_templates()["coal_power_ultra_low"]
    return {
        (f"plant{i:03d}", "cems"): Permit(
            f"plant{i:03d}", "cems", "coal_power_ultra_low", t.title, t.basis, t.medium, t.o2_ref, t.limits
        )
        for i in range(sources)
    }


def hourly_rows(period: ReportPeriod, sources: int, seed: int) -> Iterator[MeanRow]:
    """Every source's hourly rows, source by source (as storage returns them: one series per source)."""
    rng = random.Random(seed)
    hours = period.hours
    for i in range(sources):
        site = f"plant{i:03d}"
        for h in range(hours):
            ts = period.start_ms + h * 3_600_000
            if rng.random() < 0.03:
                yield MeanRow(site, "cems", ts, {"o2": 7.5}, {}, {f"{p}_zs": "too few" for p in POLLUTANTS})
                continue
            values = {"o2": round(rng.uniform(5, 9), 2)}
            for p, base in (("so2", 22.0), ("nox", 38.0), ("dust", 6.0)):
                values[f"{p}_zs"] = round(rng.gauss(base, base / 4), 2)
                values[f"{p}_load"] = round(rng.uniform(0.5, 3.0), 3)
            yield MeanRow(site, "cems", ts, values)


def daily_aqi(period: ReportPeriod, stations: int, seed: int) -> list[AqiDay]:
    rng = random.Random(seed)
    out = []
    for i in range(stations):
        for d in period.days:
            aqi = int(rng.uniform(20, 260))
            level = next((lv for top, lv in LEVEL_OF if aqi <= top), 6)
            primary = ("pm25",) if aqi > 50 else ()
            out.append(
                AqiDay(f"air{i:03d}", "aqms", period.day_start_ms(d), aqi, level, None, primary, (), "HJ 633-2026")
            )
    return out


def reference(
    period: ReportPeriod, sources: int, seed: int, permits: dict[tuple[str, str], Permit]
) -> dict[tuple[str, str, str], tuple[int, int, float]]:
    """(site, device, pollutant) -> (valid hours, hours over the hourly limit, emitted kg), by a plain loop."""
    out: dict[tuple[str, str, str], list[float]] = {}
    for r in hourly_rows(period, sources, seed):
        limits = permits[(r.site, r.device)].limits
        for p in POLLUTANTS:
            acc = out.setdefault((r.site, r.device, p), [0, 0, 0.0])
            v = r.values.get(p + "_zs")
            if v is not None:
                acc[0] += 1
                limit = limits[p].hourly_mean
                acc[1] += 1 if limit is not None and v > limit else 0
            load = r.values.get(p + "_load")
            if load is not None:
                acc[2] += load
    return {k: (int(v[0]), int(v[1]), round(v[2], 3)) for k, v in out.items()}


def _work(
    period: ReportPeriod, args: argparse.Namespace, permits: dict[tuple[str, str], Permit]
) -> tuple[dict[str, float], Report, Report, dict[str, int]]:
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    src = source_report(
        period, hourly_rows(period, args.sources, args.seed), [], permits, scope="bench", generated_ms=0
    )
    times["source_build_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    air = air_report(period, daily_aqi(period, args.stations, args.seed), scope="bench", generated_ms=0)
    times["air_build_s"] = time.perf_counter() - t0
    sizes: dict[str, int] = {}
    for fmt in ("csv", "xlsx", "pdf"):
        t0 = time.perf_counter()
        sizes[f"source_{fmt}_bytes"] = len(render(src, fmt))
        sizes[f"air_{fmt}_bytes"] = len(render(air, fmt))
        times[f"render_{fmt}_s"] = time.perf_counter() - t0
    return times, src, air, sizes


def _check(
    src: Report,
    air: Report,
    ref: dict[tuple[str, str, str], tuple[int, int, float]],
    period: ReportPeriod,
    args: argparse.Namespace,
) -> list[str]:
    problems = []
    got = {(str(r[0]), str(r[1]), str(r[2])): (r[6], r[8], r[11]) for r in src.table("summary").rows}
    if set(got) != set(ref):
        problems.append(f"source report: {len(got)} source pollutants, reference {len(ref)}")
    problems += [f"{k}: report {got.get(k)}, reference {v}" for k, v in sorted(ref.items()) if got.get(k) != v][:5]
    levels: Counter[int] = Counter(d.level for d in daily_aqi(period, args.stations, args.seed) if d.level)
    for lv, n in levels.items():
        if air.total(f"days_{lv}") != n:
            problems.append(f"air level {lv}: report {air.total(f'days_{lv}')}, reference {n}")
    good = levels[1] + levels[2]
    want = round(100 * good / sum(levels.values()), 1)
    if abs(float(air.total("good_pct") or 0) - want) > 0.05:
        problems.append(f"good days: report {air.total('good_pct')}, reference {want}")
    return problems


def run(args: argparse.Namespace) -> int:
    """``lifeline bench report``."""
    period = ReportPeriod.parse("month", args.month)
    permits = _permits(args.sources)
    rows = args.sources * period.hours
    times, src, air, sizes = _work(period, args, permits)
    total = sum(times.values())
    tracemalloc.start()
    _work(period, args, permits)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t0 = time.perf_counter()
    ref = reference(period, args.sources, args.seed, permits)
    ref_s = time.perf_counter() - t0
    problems = _check(src, air, ref, period, args)
    figure(
        f"report: {args.sources} sources x {period.hours} h ({rows:,} hourly rows) + {args.stations} air stations x "
        f"{len(period.days)} d: built and rendered (csv, xlsx, pdf) in {total:.1f} s, peak heap {peak / 2**20:.0f} MiB"
    )
    figure("  " + ", ".join(f"{k} {v:.2f}" for k, v in times.items()) + f"; reference loop {ref_s:.2f} s")
    figure("  " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    figure(f"  agrees with the reference: {'yes' if not problems else 'NO'} ({len(ref)} source pollutants, 6 levels)")
    for p in problems:
        print("  mismatch:", p)
    write_json(
        args.json,
        "report",
        {
            "sources": args.sources,
            "stations": args.stations,
            "hourly_rows": rows,
            "seconds": total,
            "peak_heap_bytes": peak,
            **times,
            **sizes,
            "reference_s": ref_s,
            "agrees": not problems,
        },
    )
    return 0 if not problems else 1
