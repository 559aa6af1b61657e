"""``lifeline bench ...``: benchmarks that print figures. Loopback only, bounded in count and time."""

from __future__ import annotations

import argparse


def bench(args: argparse.Namespace) -> int:
    if args.target == "edge":
        from lifeline.bench_edge import run

        return run(args)
    raise SystemExit(f"unknown benchmark {args.target!r}")
