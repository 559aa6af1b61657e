"""``lifeline profiles validate PATH...``: check device profile files (and the checker ``rules validate`` shares)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from device_profiles import load_profiles
from device_profiles.catalogue_loader import profile_files
from infra.config_loader import ConfigError
from lifeline._run import Subparsers


def validate_files(raw_paths: list[str], load: Callable[[list[Path]], str]) -> int:
    """Load files or folders with ``load`` (which says what it found): exit 2 for missing paths, 1 for problems."""
    paths = [Path(p) for p in raw_paths]
    missing = [p for p in paths if not p.exists()]
    for p in missing:
        print(f"{p}: no such file or folder", file=sys.stderr)
    if missing:
        return 2
    try:
        summary = load(paths)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    print(summary)
    return 0


def validate(args: argparse.Namespace) -> int:
    def load(paths: list[Path]) -> str:
        profiles = load_profiles(paths)
        files = profile_files(paths)
        return f"{len(profiles)} profile(s) in {len(files)} file(s) are valid: {', '.join(sorted(profiles))}"

    return validate_files(args.paths, load)


def add_parsers(sub: Subparsers) -> None:
    """``lifeline profiles``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    prof = sub.add_parser("profiles", help="device profiles")
    prof_sub = prof.add_subparsers(dest="action", required=True)
    val = prof_sub.add_parser("validate", help="validate profile files or folders")
    val.add_argument("paths", nargs="+", metavar="PATH")
    val.set_defaults(func=validate)
