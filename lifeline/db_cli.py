"""``lifeline db upgrade|current``: the alert store's and the API's schema migrations (Alembic).

Both schemas live in one database, the alert store's (the API's ``store.url``, the rules service's
``alerts.store_url``). The services upgrade it themselves at start; this command does it ahead of a release, or
shows where a database is.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sqlalchemy.exc import SQLAlchemyError

from infra.config_loader import ConfigError
from lifeline._run import Subparsers


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return str(args.url)
    if args.config is None:
        from alerts.db import DEFAULT_STORE_URL

        return DEFAULT_STORE_URL
    from api.config import ApiConfig
    from infra.config_loader import read_yaml, validate

    try:  # the store's URL only: the key files the API would read are not needed here
        return validate(ApiConfig, read_yaml(Path(args.config)), "api config").store.url
    except ConfigError as exc:
        raise SystemExit(str(exc)) from exc


def _safe(url: str) -> str:
    return url.rsplit("@", maxsplit=1)[-1]  # no password in what is printed


def upgrade(args: argparse.Namespace) -> int:
    from alerts.db import make_engine
    from api.db import upgrade_all
    from api.service import prepare_sqlite_file

    url = _url(args)
    prepare_sqlite_file(url)  # a new SQLite file 0600, as the API makes it (it holds password hashes)
    engine = make_engine(url)
    try:
        for done in upgrade_all(engine):
            print(done)
    except SQLAlchemyError as exc:
        raise SystemExit(f"{_safe(url)}: upgrade failed: {exc}") from exc
    finally:
        engine.dispose()
    return 0


def current(args: argparse.Namespace) -> int:
    from alerts.db import make_engine
    from alerts.migrations import ALERTS, current_revision, head_revision
    from api.migrations import API

    url = _url(args)
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            behind = 0
            for schema in (ALERTS, API):
                at, head = current_revision(conn, schema), head_revision(schema)
                behind += at != head
                print(f"{schema.name}: {at or 'none'} (head {head}){'' if at == head else ' - upgrade needed'}")
    except SQLAlchemyError as exc:
        raise SystemExit(f"{_safe(url)}: {exc}") from exc
    finally:
        engine.dispose()
    return 1 if behind else 0


def add_parsers(sub: Subparsers) -> None:
    """``lifeline db``; ``sub`` is the CLI's ``add_subparsers()`` object."""
    db = sub.add_parser("db", help="schema migrations of the alert store and the API's tables")
    where = argparse.ArgumentParser(add_help=False)
    group = where.add_mutually_exclusive_group()
    group.add_argument("--config", metavar="API.yaml", help="the API's config (its store.url)")
    group.add_argument("--url", help="SQLAlchemy URL of the database (e.g. sqlite:///var/alerts.db)")
    db_sub = db.add_subparsers(dest="action", required=True)
    up = db_sub.add_parser("upgrade", parents=[where], help="upgrade both schemas to the newest migration")
    up.set_defaults(func=upgrade)
    cur = db_sub.add_parser("current", parents=[where], help="each schema's revision; exit 1 if one is behind")
    cur.set_defaults(func=current)
