"""The ``lifeline`` command: one entry point for every component.

Each command lives in its own module, which registers it with ``add_parsers(sub)`` (``lifeline/*_cli.py``); this
module only puts them together, in the order ``lifeline --help`` lists them. Helpers the commands share are in
``lifeline._run``, so no command module imports this one.

Commands of other installed packages (``lifeline bench`` from the ``bench`` package) come in through the entry point
group ``lifeline.commands``: each entry names an ``add_parsers(sub)`` function. So ``bench``, which imports the
product and the test harness, is found at run time and never imported here: no import cycle.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, entry_points, version
from typing import Any

from lifeline import (
    api_cli,
    bridge_cli,
    broker_cli,
    db_cli,
    deadletter_cli,
    edge_cli,
    hj212_cli,
    keys_cli,
    profiles_cli,
    report_cli,
    rules_cli,
    simulate_cli,
    up_cli,
    write_cli,
)

COMMANDS = (
    profiles_cli,
    rules_cli,
    edge_cli,
    simulate_cli,
    bridge_cli,
    broker_cli,
    api_cli,
    write_cli,
    keys_cli,
    hj212_cli,
    deadletter_cli,
    db_cli,
    report_cli,
    up_cli,
)
PLUGIN_GROUP = "lifeline.commands"  # entry points: name = "package.module:add_parsers"


def plugins() -> list[Callable[[Any], None]]:
    """The ``add_parsers`` functions other installed packages register in :data:`PLUGIN_GROUP`, by entry name. One
    that cannot be imported is left out with a warning: a broken plugin never takes the product's commands down."""
    found: list[Callable[[Any], None]] = []
    for entry in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        try:
            found.append(entry.load())
        except ImportError as exc:
            print(f"lifeline: command {entry.name!r} ({entry.value}) not loaded: {exc}", file=sys.stderr)
    return found


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
    for add_parsers in plugins():
        add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
