"""``lifeline api --config API.yaml``: serve the API (uvicorn) over its configured broker, InfluxDB and store."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from device_profiles import ConfigError
from lifeline import logs


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``lifeline api``; ``subparsers`` is the CLI's ``add_subparsers()`` object."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "api", help="serve the HTTP API: auth, devices, readings, alerts, gate control, live stream"
    )
    p.add_argument("--config", required=True, metavar="API.yaml")
    p.add_argument("--host", default=None, help="overrides listen.host")
    p.add_argument("--port", type=int, default=None, help="overrides listen.port (0: a free port)")
    p.add_argument("--check", action="store_true", help="validate the config and exit")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from api import ApiService, create_app, load_config

    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    if args.check:
        print(f"{args.config}: valid")
        return 0
    listen = config.listen.model_copy(
        update={k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    )
    logs.setup(getattr(args, "log_level", "INFO"))
    service = ApiService(config)
    password = service.bootstrap_admin()
    if password is not None:
        # Printed once, here only: only its argon2 hash is stored. The user must change it at the first login.
        print(f"lifeline api: created user {config.auth.bootstrap_admin!r} with one-time password: {password}",
              flush=True)  # fmt: skip
    server = uvicorn.Server(
        uvicorn.Config(create_app(service), host=listen.host, port=listen.port, log_config=None, access_log=False,
                       lifespan="on")
    )
    asyncio.run(server.serve())
    return 0
