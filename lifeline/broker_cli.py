"""``lifeline broker config``: the broker's accounts and access for a deployment, as files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.config_loader import ConfigError
from lifeline._run import Subparsers
from lifeline.broker_auth import platform_accounts, scenario_deployment, sites_deployment, write_broker_files


def _config(args: argparse.Namespace) -> int:
    counts = {"bridges": args.bridges, "rules_engines": args.rules}
    try:
        if args.sites:
            files = sorted(p for d in args.sites for p in (Path(d).glob("*.yaml") if Path(d).is_dir() else [Path(d)]))
            deployment = sites_deployment(files, **counts)
        else:
            from lifeline.simulate import load

            deployment = scenario_deployment(load(args.scenario, None), **counts)
    except (ConfigError, OSError, KeyError) as exc:
        print(exc, file=sys.stderr)
        return 1
    accounts = platform_accounts(deployment)
    dynsec = write_broker_files(Path(args.out), accounts)
    print(f"{len(accounts)} accounts for sites {', '.join(deployment.sites)}")
    print(f"  {dynsec}: for Mosquitto's dynamic-security plugin (plugin_opt_config_file); passwords hashed")
    print(f"  {Path(args.out) / 'credentials'}/<user>.password: one per account, mode 0600, for the services")
    print("  mosquitto.conf: allow_anonymous false, use_username_as_clientid true, "
          "plugin .../mosquitto_dynamic_security.so")  # fmt: skip
    return 0


def add_parsers(sub: Subparsers) -> None:
    """``lifeline broker config``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    broker = sub.add_parser("broker", help="the MQTT broker's accounts and access")
    broker_sub = broker.add_subparsers(dest="broker_command", required=True)
    cfg = broker_sub.add_parser("config", help="write the broker's accounts, access and credentials for a deployment")
    where = cfg.add_mutually_exclusive_group()
    where.add_argument("--sites", nargs="+", help="site config files or folders (the edge agents' configs)")
    where.add_argument("--scenario", default="baoshan", help="a simulated district (default baoshan)")
    cfg.add_argument("--out", required=True, help="folder for dynamic-security.json and credentials/")
    cfg.add_argument("--bridges", type=int, default=1, help="bridge accounts (bridge-1..N) in one shared group")
    cfg.add_argument("--rules", type=int, default=1, help="rules engine accounts (rules-1..N)")
    cfg.set_defaults(func=_config)
