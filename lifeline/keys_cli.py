"""``lifeline keys create --dir DIR --site S [--site S2 ...]``: each site's control and site key pairs (Ed25519).

Prints only public fingerprints (key ids); private keys are written with mode 0600 and never printed. Existing
keys are kept. Which file goes where: ``telemetry.keys``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lifeline._run import Subparsers


def add_parsers(sub: Subparsers) -> None:
    """``lifeline keys``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    p = sub.add_parser("keys", help="signing keys of gate commands and results")
    sub = p.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="make the missing control and site key pairs of sites (keeps existing)")
    create.add_argument("--dir", required=True, metavar="DIR", help="keys folder (one subfolder per site)")
    create.add_argument("--site", action="append", required=True, metavar="SITE", help="site id (repeat)")
    create.set_defaults(func=run_create)


def run_create(args: argparse.Namespace) -> int:
    from telemetry.keys import KeyFileError, create_site_keys

    try:
        made = create_site_keys(Path(args.dir), list(dict.fromkeys(args.site)))
    except (KeyFileError, OSError) as exc:
        print(f"lifeline keys: {exc}", file=sys.stderr)
        return 1
    for key in made:
        print(f"{key.site} {key.role} {key.kid} {'created' if key.created else 'kept'} {key.public_path}")
    return 0
