"""``lifeline keys create --dir DIR --site S [--site S2 ...]``: each site's control and site key pairs (Ed25519).

Prints only public fingerprints (key ids); private keys are written with mode 0600 and never printed. Existing
keys are kept. Which file goes where: ``telemetry.keys``.

``lifeline keys cert --ca CA_DIR --dir DIR --user U [--user U2 ...]``: MQTT client certificates of the deployment's CA
(common name: the broker account's user name; ``<user>.pem`` and ``<user>.key``, 0600), kept when present, made again
when revoked or of another CA. ``lifeline keys revoke --ca CA_DIR CERT...``: the CA's revocation list (``crl.pem``
next to ``ca.pem``) gains these certificates; a broker with ``crlfile`` refuses them once restarted (``lifeline up``
reads the list at every start). After a session taken over: revoke the edge's certificate, make a new one, restart.
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
    cert = sub.add_parser(
        "cert", help="make the missing MQTT client certificates of broker accounts (keeps valid ones)"
    )
    cert.add_argument("--ca", required=True, metavar="CA_DIR", help="the CA's folder (ca.pem, ca.key; made if missing)")
    cert.add_argument(
        "--dir", required=True, metavar="DIR", help="where <user>.pem and <user>.key go (the credentials)"
    )
    cert.add_argument("--user", action="append", required=True, metavar="USER", help="broker account (repeat)")
    cert.set_defaults(func=run_cert)
    rev = sub.add_parser("revoke", help="revoke MQTT client certificates (the broker refuses them after a restart)")
    rev.add_argument("--ca", required=True, metavar="CA_DIR", help="the CA's folder (ca.pem, ca.key)")
    rev.add_argument("certs", nargs="+", metavar="CERT", help="certificate files (<user>.pem)")
    rev.set_defaults(func=run_revoke)


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


def run_cert(args: argparse.Namespace) -> int:
    from lifeline.tls import common_name, ensure_ca, issue

    ca = ensure_ca(Path(args.ca))
    folder = Path(args.dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    for user in dict.fromkeys(args.user):
        made = issue(folder, ca, user, client=True)
        print(f"{common_name(made.cert_file)} {made.cert_file} {made.key_file}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    from cryptography.exceptions import InvalidSignature

    from lifeline.tls import CRL_NAME, common_name, revoke

    ca_dir = Path(args.ca)
    ca = (ca_dir / "ca.pem", ca_dir / "ca.key")
    for path in map(Path, args.certs):
        try:
            serial = revoke(ca, path)
        except (OSError, ValueError, TypeError, InvalidSignature) as exc:
            print(f"lifeline keys revoke: {path}: {exc}", file=sys.stderr)
            return 1
        print(f"revoked {common_name(path)} serial {serial:x} in {ca_dir / CRL_NAME} (restart the broker)")
    return 0
