"""``lifeline simulate``: run a simulated district against a broker (``lifeline.simulate``)."""

from __future__ import annotations

import argparse

from infra import logs
from lifeline._run import Subparsers


def run(args: argparse.Namespace) -> int:
    from lifeline.simulate import simulate  # imported when run: the CLI starts without the simulators

    logs.setup(args.log_level)
    return simulate(args)


def add_parsers(sub: Subparsers) -> None:
    """``lifeline simulate``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    sim = sub.add_parser("simulate", help="run a simulated district (Modbus devices and MQTT sensors)")
    sim.add_argument("--scenario", default="baoshan", help="scenario name or YAML file (default baoshan)")
    sim.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT", help="where MQTT sensors publish")
    sim.add_argument(
        "--credentials",
        metavar="DIR",
        help="the broker's credentials folder (lifeline broker config): the sensors publish as "
        "sim-sensors and the site configs get their edge accounts",
    )
    sim.add_argument("--ca-file", help="MQTT over TLS: the CA that signed the broker's certificate")
    sim.add_argument("--sites-dir", default="var/sites", help="where to write each site's edge config")
    sim.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    sim.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    sim.set_defaults(func=run)
