"""``lifeline api --config API.yaml``: serve the API (uvicorn) over its configured broker, InfluxDB and store."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from infra import logs
from infra.config_loader import ConfigError
from lifeline._run import Subparsers, report_problems

if TYPE_CHECKING:
    from api import ApiService


def add_parsers(sub: Subparsers) -> None:
    """``lifeline api``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    p = sub.add_parser("api", help="serve the HTTP API: auth, devices, readings, alerts, gate control, live stream")
    p.add_argument("--config", required=True, metavar="API.yaml")
    p.add_argument("--host", default=None, help="overrides listen.host")
    p.add_argument("--port", type=int, default=None, help="overrides listen.port (0: a free port)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.add_argument(
        "--bootstrap-password-file",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the first admin's one-time password to PATH (created 0600), not to the terminal",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from api import ApiService, create_app, load_config

    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        return report_problems(exc)
    if args.check:
        print(f"{args.config}: valid")
        return 0
    listen = config.listen.model_copy(
        update={k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    )
    logs.setup(getattr(args, "log_level", "INFO"))
    os.umask(0o077)  # GB/T 22239-2019 §8.1.4.8: every file the API writes (store, WAL, password file) is 0600
    from lifeline.bridge_cli import known_site  # the site files read by the edge's loader, as the bridge reads them

    try:
        service = ApiService(config, load_site=known_site)
    except ConfigError as exc:  # a site file of `sites:` that does not load
        return report_problems(exc)
    refused = _bootstrap(service, args.bootstrap_password_file)
    if refused is not None:
        print(f"lifeline api: {refused}", file=sys.stderr)
        return 1
    from api.server import ApiServer, uvicorn_config

    # it ends the live streams when told to stop, so that it stops at once
    server = ApiServer(uvicorn_config(create_app(service), listen), service)
    asyncio.run(server.serve())
    return 0


def _bootstrap(service: ApiService, password_file: Path | None) -> str | None:
    """Create the first admin if there is no user, and hand its one-time password over: to ``password_file``
    (0600, in place before the API listens: ``lifeline up`` waits for the file or the port), else to the terminal
    (stderr, only if it is one). Never to a log. Returns a problem, or None.

    Without a file, a terminal or LIFELINE_ADMIN_PASSWORD nobody could learn the password, so no admin is made."""
    from api.config import ADMIN_PASSWORD_ENV

    if (
        service.users.count() == 0
        and not os.environ.get(ADMIN_PASSWORD_ENV)
        and password_file is None
        and (not sys.stderr.isatty())
    ):
        return (
            f"no user exists yet, and the first admin's one-time password could be shown nowhere: run on a "
            f"terminal, or give --bootstrap-password-file PATH, or set {ADMIN_PASSWORD_ENV}"
        )
    from api.service import BootstrapError

    try:
        password = service.bootstrap_admin()
    except BootstrapError as exc:
        return str(exc)
    if password is None:
        return None
    name = service.config.auth.bootstrap_admin
    if password_file is not None:
        _write_private(password_file, password + "\n")
        print(
            f"lifeline api: created user {name!r}; its one-time password is in {password_file}",
            file=sys.stderr,
            flush=True,
        )
    else:
        # Printed once, on the terminal only: only its argon2 hash is stored. It must be changed at the first login.
        print(f"lifeline api: created user {name!r} with one-time password: {password}", file=sys.stderr, flush=True)
    return None


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to a new file readable by this user only, whole: it is written beside ``path`` and renamed into
    place, so that a reader (``lifeline up``) never sees it half written. A file already there is replaced."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    part = path.with_name(f".{path.name}.part")
    with contextlib.suppress(FileNotFoundError):
        part.unlink()
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
        out.flush()
        os.fsync(out.fileno())
    os.replace(part, path)
