"""``lifeline up``: the whole platform on one machine (``lifeline.up``)."""

from __future__ import annotations

import argparse
import sys

from infra import logs
from lifeline._run import Subparsers


def run(args: argparse.Namespace) -> int:
    from lifeline.up import up  # imported when run: the CLI starts without the whole stack

    logs.setup(args.log_level)
    if args.configs_only:
        return _configs_only(args)
    return up(args)


def _configs_only(args: argparse.Namespace) -> int:
    """Every service's config of a production district from the deployment spec; no server started."""
    from pathlib import Path

    from infra.config_loader import ConfigError
    from infra.secret import CredentialError
    from lifeline.derive import derive_configs
    from lifeline.up import _deployment

    if not args.config:
        print("--configs-only needs --config DEPLOY.yaml (with broker, influx and sites)", file=sys.stderr)
        return 2
    try:
        written = derive_configs(_deployment(args), Path(args.config))
    except (ConfigError, CredentialError) as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"{len(written)} configs, each 0600, passwords as file references:")
    for path in written:
        print(f"  {path}")
    return 0


def add_parsers(sub: Subparsers) -> None:
    """``lifeline up``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    up = sub.add_parser(
        "up", help="run the whole platform locally: broker, InfluxDB, bridge, rules, API, district, edge agents"
    )
    up.add_argument("--config", metavar="DEPLOY.yaml", help="deployment file (external broker or InfluxDB, ...)")
    up.add_argument("--scenario", default=None, help="simulated district (default baoshan)")
    up.add_argument("--data-dir", default=None, help="data and logs of the local servers (default var/up)")
    up.add_argument("--mqtt-port", type=int, default=1883, help="local broker port; if taken, a free one is used")
    up.add_argument("--influx-port", type=int, default=8086, help="local InfluxDB port; if taken, a free one")
    up.add_argument("--api-port", type=int, default=8080, help="the API's port; if taken, a free one")
    up.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    up.add_argument(
        "--configs-only",
        action="store_true",
        help="write every service's config of the deployment's real sites (sites:) and exit; no server "
        "is started (lifeline.derive)",
    )
    up.set_defaults(func=run)
