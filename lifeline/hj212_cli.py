"""``lifeline hj212 --config FILE [--events FILE]``: run the HJ 212 ingest server (edge_agent.hj212)."""

from __future__ import annotations

import argparse
from pathlib import Path

from infra import logs
from infra.config_loader import ConfigError
from lifeline._run import Subparsers, report_problems, run_until_signal


def add_parsers(sub: Subparsers) -> None:
    """``lifeline hj212``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    p = sub.add_parser(
        "hj212", help="hear HJ 212 stations (CEMS, wastewater outlets) over TCP and publish their telemetry"
    )
    p.add_argument("--config", required=True, metavar="HJ212.yaml")
    p.add_argument("--events", metavar="FILE", help="write one JSON line per packet (acceptance checks)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge_agent.hj212 import Hj212Server, load_config

    try:
        loaded = load_config(Path(args.config))
    except ConfigError as exc:
        return report_problems(exc)
    if args.check:
        print(f"{args.config}: valid, {len(loaded.stations)} station(s)")
        return 0
    logs.setup(getattr(args, "log_level", "INFO"))
    server = Hj212Server(loaded, events_path=Path(args.events) if args.events else None)
    return run_until_signal(server.run)
