"""``lifeline bridge`` (its dead letters: ``lifeline deadletter``, lifeline/deadletter_cli.py)."""

from __future__ import annotations

import argparse
from pathlib import Path

from broker_bridge.config import BridgeConfig, load_bridge_config
from broker_bridge.validate import KnownSite
from infra import logs
from infra.config_loader import ConfigError
from infra.gc_tuning import tune_for_throughput
from lifeline._run import Subparsers, run_until_signal


def _config(path: str | None) -> BridgeConfig:
    if path is None:
        return BridgeConfig()
    try:
        return load_bridge_config(Path(path))
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc


def known_site(path: Path) -> KnownSite:
    """A site file read by the edge's own loader, as the bridge's validation needs it."""
    from edge_agent.config import load_site

    site = load_site(path)
    own = {d.id: site.profile_of(d) for d in site.config.devices if d.points}  # the site file's changes applied
    return KnownSite(site.config.site, dict(site.profiles), site.published_devices(), own)


def run_bridge(args: argparse.Namespace) -> int:
    from broker_bridge.bridge import Bridge  # imported when run: the CLI starts without it

    config = _config(args.config)
    logs.setup(args.log_level)
    bridge = Bridge(config, load_site=known_site)
    tune_for_throughput()
    return run_until_signal(bridge.run)


def add_parsers(sub: Subparsers) -> None:
    """``lifeline bridge``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    br = sub.add_parser("bridge", help="run the MQTT to InfluxDB bridge")
    br.add_argument("--config", metavar="BRIDGE.yaml", help="bridge config (default: local broker and InfluxDB)")
    br.set_defaults(func=run_bridge)
