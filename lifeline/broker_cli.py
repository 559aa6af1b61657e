"""``lifeline broker config``: the broker's accounts and access for a deployment, as files."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from infra.config_loader import ConfigError
from lifeline._run import Subparsers
from lifeline.broker_auth import (
    named_partitions,
    platform_accounts,
    scenario_deployment,
    sites_deployment,
    write_broker_files,
)
from lifeline.runners import broker_limits
from lifeline.tls import ensure_ca, ensure_crl


def _config(args: argparse.Namespace) -> int:
    if args.rules_partitions < 0 or args.bridges < 1 or args.rules < 1:
        print("--bridges and --rules are at least 1, --rules-partitions at least 0", file=sys.stderr)
        return 2
    counts = {"bridges": args.bridges, "rules_engines": args.rules, "rules_partitions": args.rules_partitions}
    try:
        if args.deployment and not args.sites:  # the spec's own site files, when it lists them
            from lifeline.deployment import load_spec

            args.sites = [str(p) for p in load_spec(Path(args.deployment)).sites] or None
        if args.sites:
            files = sorted(p for d in args.sites for p in (Path(d).glob("*.yaml") if Path(d).is_dir() else [Path(d)]))
            deployment = sites_deployment(files, **counts)
        else:
            from lifeline.simulate import load

            deployment = scenario_deployment(load(args.scenario, None), **counts)
        if args.rules_partition:
            if args.rules_partitions:
                raise ValueError("--rules-partition (by name) and --rules-partitions N (by hash) exclude each other")
            parts = named_partitions(args.rules_partition, [*deployment.sites, *deployment.hj212_sites])
            deployment = dataclasses.replace(deployment, named_partitions=parts)
        if args.deployment:  # the spec's counts and partitions, checked against the sites
            from lifeline.deployment import load_spec

            spec = load_spec(Path(args.deployment))
            if spec.hj212 is not None:  # the real district's HJ 212 stations: their sites and the ingest's account
                deployment = dataclasses.replace(deployment, hj212_sites=spec.hj212_sites())
            spec.check_sites([*deployment.sites, *deployment.hj212_sites], Path(args.deployment))
            deployment = spec.inventory(
                deployment.sites, deployment.sensor_topics, deployment.hj212_sites, deployment.simulated_sensors
            )
    except (ConfigError, OSError, KeyError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    accounts = platform_accounts(deployment)
    ca = ensure_ca(Path(args.ca)) if args.ca else None
    dynsec = write_broker_files(Path(args.out), accounts, ca)
    print(f"{len(accounts)} accounts for sites {', '.join(deployment.sites)}")
    for part in deployment.named_partitions:
        print(
            f"  rules partition {part.label}: accounts rules-{part.label}(-pub) for sites {', '.join(part.sites)}; "
            f"in its engine's config rules.partition: {{name: {part.label}, sites: [...]}}"
        )
    if args.rules_partitions:
        print(
            f"  rules partitions 0..{args.rules_partitions - 1}: accounts rules-<i>-of-{args.rules_partitions}"
            f"(-pub); in each engine's config rules.partition: {{index: <i>, count: {args.rules_partitions}}}"
        )
    print(f"  {dynsec}: for Mosquitto's dynamic-security plugin (plugin_opt_config_file); passwords hashed")
    print(f"  {Path(args.out) / 'credentials'}/<user>.password: one per account, mode 0600, for the services")
    print(
        "  mosquitto.conf: allow_anonymous false, use_username_as_clientid true, "
        "plugin .../mosquitto_dynamic_security.so"
    )
    if ca is not None:
        print(
            f"  {Path(args.out) / 'credentials'}/<user>.pem and <user>.key (0600): each account's client certificate "
            f"(CN = user) from the CA in {args.ca}"
        )
        print(
            f"  on the TLS listener: cafile {ca[0]}, require_certificate true, use_identity_as_username true "
            f"(a password alone then connects nobody), crlfile {ensure_crl(ca)} (lifeline keys revoke)"
        )
    print(f"  limits: {', '.join(broker_limits())}")
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
    cfg.add_argument(
        "--ca",
        metavar="DIR",
        help="the deployment's CA folder (ca.pem, ca.key; made if missing): a client certificate per account, "
        "for a broker with require_certificate and use_identity_as_username",
    )
    cfg.add_argument("--bridges", type=int, default=1, help="bridge accounts (bridge-1..N) in one shared group")
    cfg.add_argument("--rules", type=int, default=1, help="rules engine accounts (rules-1..N)")
    cfg.add_argument(
        "--rules-partitions",
        type=int,
        default=0,
        metavar="N",
        help="partition the rules engines by site (CRC-32 of the site id) into N, one account pair "
        "each (rules-<i>-of-N and -pub) instead of --rules",
    )
    cfg.add_argument(
        "--rules-partition",
        action="append",
        default=[],
        metavar="NAME:SITE[,SITE...]",
        help="a rules partition by site (repeat for each; every site in exactly one), one account pair "
        "each (rules-NAME and -pub) instead of --rules",
    )
    cfg.add_argument(
        "--deployment",
        metavar="DEPLOY.yaml",
        help="take bridges and rules partitions from this deployment spec (instead of the counts here)",
    )
    cfg.set_defaults(func=_config)
