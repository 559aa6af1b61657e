"""``lifeline bench ...``: benchmarks that print figures. Loopback only, bounded in count and time."""

from __future__ import annotations

import argparse


def bench(args: argparse.Namespace) -> int:
    if args.target == "edge":
        from lifeline.bench_edge import run

        return run(args)
    if args.target == "bridge":
        from lifeline.bench_bridge import run as run_bridge

        return run_bridge(args)
    raise SystemExit(f"unknown benchmark {args.target!r}")
