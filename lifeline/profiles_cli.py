"""``lifeline profiles validate PATH...``: check device profile files (and the checker ``rules validate`` shares);
``lifeline profiles new NAME``: start a profile from the template; ``lifeline profiles sample NAME``: a site file
with one device of a profile (docs/devices-from-manuals.md)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from device_profiles import load_catalogue, load_profiles
from device_profiles.catalogue_loader import profile_files
from device_profiles.samples import SampleError, new_profile, site_sample
from infra.config_loader import ConfigError
from lifeline._run import Subparsers, report_problems


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
        return report_problems(exc)
    print(summary)
    return 0


def validate(args: argparse.Namespace) -> int:
    def load(paths: list[Path]) -> str:
        profiles = load_profiles(paths)
        files = profile_files(paths)
        return f"{len(profiles)} profile(s) in {len(files)} file(s) are valid: {', '.join(sorted(profiles))}"

    return validate_files(args.paths, load)


def new(args: argparse.Namespace) -> int:
    out = Path(args.out or f"{args.name}.yaml")
    try:
        text = new_profile(args.name, args.kind, args.title)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if out.exists() and not args.force:
        print(f"{out}: exists (--force to overwrite)", file=sys.stderr)
        return 1
    out.write_text(text, encoding="utf-8")
    print(
        f"{out}: profile {args.name!r} from the template; fill it in from the manual, then: "
        f"lifeline profiles validate {out}"
    )
    return 0


def sample(args: argparse.Namespace) -> int:
    paths = [Path(p) for p in args.profiles]
    try:
        profiles = {**load_catalogue(), **(load_profiles(paths) if paths else {})}
    except ConfigError as exc:
        return report_problems(exc)
    profile = profiles.get(args.name)
    if profile is None:
        print(f"unknown profile {args.name!r} (known: {', '.join(sorted(profiles))})", file=sys.stderr)
        return 2
    from_file = next((p for p in paths if args.name in load_profiles([p])), None) if paths else None
    try:
        text = site_sample(profile, from_file)
    except SampleError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # read by head: end quietly
        pass
    return 0


def add_parsers(sub: Subparsers) -> None:
    """``lifeline profiles``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    prof = sub.add_parser("profiles", help="device profiles")
    prof_sub = prof.add_subparsers(dest="action", required=True)
    val = prof_sub.add_parser("validate", help="validate profile files or folders")
    val.add_argument("paths", nargs="+", metavar="PATH")
    val.set_defaults(func=validate)
    new_p = prof_sub.add_parser("new", help="start a Modbus profile from the template, to fill in from a manual")
    new_p.add_argument("name", metavar="NAME", help="the profile's name (lowercase, digits, _)")
    new_p.add_argument("--kind", help="the device kind rules bind to (default: NAME)")
    new_p.add_argument("--title", help="a title for people")
    new_p.add_argument("--out", metavar="FILE", help="where to write it (default: NAME.yaml)")
    new_p.add_argument("--force", action="store_true", help="overwrite FILE")
    new_p.set_defaults(func=new)
    sam = prof_sub.add_parser("sample", help="print a site file with one device of a profile")
    sam.add_argument("name", metavar="NAME", help="a profile of the catalogue or of --profiles")
    sam.add_argument("--profiles", nargs="*", default=[], metavar="PATH", help="profile files or folders of yours")
    sam.set_defaults(func=sample)
