"""``lifeline edge --config SITE.yaml [--plan]``: run a site's edge agent, or print its request plan."""

from __future__ import annotations

import argparse
import os
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
            return _print(plan_report(site))
    except (ConfigError, PlanError) as exc:
        print(exc, file=sys.stderr)
        return 1
    logs.setup(args.log_level)
    agent = EdgeAgent(site)
    tune_for_throughput()
    return run_until_signal(agent.run)


def _print(text: str) -> int:
    """Print ``text``; a reader that stops early (``--plan | head``) ends the output quietly, not in a traceback."""
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's advice (signal docs, "Note on SIGPIPE"): point stdout at devnull so that the flush at exit
        # does not raise again
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return 0


def add_parsers(sub: Subparsers) -> None:
    """``lifeline edge``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    edge = sub.add_parser("edge", help="run a site's edge agent")
    edge.add_argument("--config", required=True, metavar="SITE.yaml")
    edge.add_argument("--plan", action="store_true", help="print each device's request plan and exit")
    edge.set_defaults(func=run)
