"""Schema migrations (Alembic) of the alert store, and the runner the API's migrations use too.

Two components keep tables in one database (the alert store's URL): the alert store (``alerts._tables``) and the
API (``api._tables``, prefixed ``api_``). Each owns its migrations next to its tables (``alerts/migrations/``,
``api/migrations/``) with a version table of its own (``alembic_version_alerts``, ``alembic_version_api``): the
rules service upgrades the alert store without knowing the API, and the API upgrades both. See
docs/decisions/019-schema-migrations.md for why two environments rather than one with two branches.

:func:`upgrade` is what every service calls at start and ``lifeline db upgrade`` runs: under one transaction (on
PostgreSQL also under an advisory lock, so the rules service and the API starting together take turns), it
recognises a database made by ``create_all`` before migrations existed (no version table, the tables there),
upgrades it from the baseline revision, which creates only the tables missing, and stamps the head.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, inspect, select

from alerts import _tables
from alerts.db import SCHEMA_LOCK

__all__ = ["ALERTS", "Schema", "Upgrade", "current_revision", "head_revision", "upgrade"]

log = logging.getLogger("lifeline.db")


@dataclass(frozen=True, slots=True)
class Schema:
    """One component's tables and where their migrations are."""

    name: str  # "alerts", "api": for messages
    folder: Path  # the migrations folder: env.py, script.py.mako, versions/
    version_table: str
    metadata: MetaData  # the models: what the head revision must equal (tests compare them)

    def owns(self, table: str) -> bool:
        """Whether ``table`` is this component's (autogenerate and comparisons look at no other table)."""
        return table in self.metadata.tables


@dataclass(frozen=True, slots=True)
class Upgrade:
    schema: str
    before: str | None  # revision before; None: no version table
    after: str
    legacy: bool  # the database was made by create_all before migrations (recognised, then upgraded)

    def __str__(self) -> str:
        if self.before == self.after:
            return f"{self.schema}: at {self.after} (head)"
        start = "a database from before migrations" if self.legacy else (self.before or "an empty database")
        return f"{self.schema}: upgraded {start} to {self.after} (head)"


ALERTS = Schema("alerts", Path(__file__).parent, "alembic_version_alerts", _tables.metadata)


def config(schema: Schema, connection: Connection | None = None) -> Config:
    """An Alembic config for ``schema`` (no ini file); env.py runs on ``connection`` when given."""
    cfg = Config()
    cfg.set_main_option("script_location", str(schema.folder))
    cfg.attributes["schema"] = schema
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@functools.cache
def _script(folder: Path) -> ScriptDirectory:
    return ScriptDirectory(str(folder))


def head_revision(schema: Schema) -> str:
    """The newest revision of ``schema``'s migrations (one head: the history is linear)."""
    head = _script(schema.folder).get_current_head()
    if head is None:
        raise RuntimeError(f"{schema.folder}: no migrations")
    return head


def current_revision(connection: Connection, schema: Schema) -> str | None:
    """The revision the database is at; None when it has no version table (empty, or from before migrations)."""
    # read here rather than through alembic's MigrationContext, which logs at INFO on every service start
    if not inspect(connection).has_table(schema.version_table):
        return None
    table = Table(schema.version_table, MetaData(), Column("version_num", String))
    revisions = connection.execute(select(table.c.version_num)).scalars().all()
    if len(revisions) > 1:
        raise RuntimeError(f"{schema.version_table}: several revisions {revisions} (a linear history has one)")
    return revisions[0] if revisions else None


def upgrade(engine: Engine, schema: Schema, revision: str = "head") -> Upgrade:
    """Bring ``schema``'s tables to ``revision``; a database already there is left alone (one short read)."""
    head = head_revision(schema)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")  # released at commit
        before = current_revision(conn, schema)
        if before == head and revision in ("head", head):
            return Upgrade(schema.name, before, head, legacy=False)
        legacy = before is None and any(schema.owns(t) for t in inspect(conn).get_table_names())
        if legacy:
            log.info(
                "schema=%s recognised a database from before migrations: upgrading it from the baseline", schema.name
            )
        command.upgrade(config(schema, conn), revision)
        after = current_revision(conn, schema)
    if after is None:
        raise RuntimeError(f"{schema.name}: upgrade to {revision} left no revision stamped")
    if after != before:
        log.info("schema=%s upgraded from=%s to=%s", schema.name, before or "-", after)
    return Upgrade(schema.name, before, after, legacy)


def run_env(schema: Schema, make_engine: Callable[[str], Engine]) -> None:
    """The body of a migrations folder's env.py: run on the service's connection (``upgrade``), or, from the
    ``alembic`` command line (e.g. ``revision --autogenerate``), on ``-x url=...``."""
    from alembic import context

    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection, schema)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("give the database: alembic -x url=sqlite:///var/alerts.db ...")
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            _run(conn, schema)
    finally:
        engine.dispose()


def _run(connection: Connection, schema: Schema) -> None:
    from alembic import context as ctx

    def include_name(name: str | None, type_: str, _parent: object) -> bool:
        return type_ != "table" or name is None or schema.owns(name)

    ctx.configure(
        connection=connection,
        target_metadata=schema.metadata,
        version_table=schema.version_table,
        include_name=include_name,
        render_as_batch=True,  # SQLite alters a table by copying it: batch mode writes that
        compare_type=True,
    )
    with ctx.begin_transaction():
        ctx.run_migrations()
