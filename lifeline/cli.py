"""The ``lifeline`` command: one entry point for every component.

Each command lives in its own module, which registers it with ``add_parsers(sub)`` (``lifeline/*_cli.py``, and
``bench`` for the benchmarks); this module only puts them together, in the order ``lifeline --help`` lists them.
Helpers the commands share are in ``lifeline._run``, so no command module imports this one.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import bench
from lifeline import (
    api_cli,
    bridge_cli,
    broker_cli,
    db_cli,
    edge_cli,
    hj212_cli,
    keys_cli,
    profiles_cli,
    rules_cli,
    simulate_cli,
    up_cli,
)

COMMANDS = (profiles_cli, rules_cli, edge_cli, simulate_cli, bridge_cli, broker_cli, api_cli, keys_cli, hj212_cli,
            db_cli, up_cli, bench)  # fmt: skip


def _version() -> str:
    try:
        return version("lifeline")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lifeline", description="Telemetry platform for a city's lifelines.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    p.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    sub = p.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
