"""``lifeline edge --config SITE.yaml [--plan]``: run a site's edge agent, or print its request plan."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra import logs
from infra.config_loader import ConfigError
from infra.gc_tuning import tune_for_throughput
from lifeline._run import Subparsers, run_until_signal


def run(args: argparse.Namespace) -> int:
    from edge_agent import EdgeAgent, load_site, plan_report  # imported when run: the CLI starts without them
    from edge_agent.planner import PlanError

    try:
        site = load_site(Path(args.config))
        if args.plan:
            print(plan_report(site))
            return 0
    except (ConfigError, PlanError) as exc:
        print(exc, file=sys.stderr)
        return 1
    logs.setup(args.log_level)
    agent = EdgeAgent(site)
    tune_for_throughput()
    return run_until_signal(agent.run)


def add_parsers(sub: Subparsers) -> None:
    """``lifeline edge``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    edge = sub.add_parser("edge", help="run a site's edge agent")
    edge.add_argument("--config", required=True, metavar="SITE.yaml")
    edge.add_argument("--plan", action="store_true", help="print each device's request plan and exit")
    edge.set_defaults(func=run)
