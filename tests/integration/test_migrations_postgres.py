"""Schema migrations on PostgreSQL (the alert store of several instances): an empty database upgraded equals the
models; services starting together upgrade it once (advisory lock); a database from before migrations is stamped."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from alerts.db import make_engine
from alerts.migrations import ALERTS, Schema, Upgrade, current_revision, head_revision
from api.db import upgrade_all
from api.migrations import API

pytestmark = pytest.mark.integration
SCHEMAS = [ALERTS, API]


def _differences(engine: Engine, schema: Schema) -> list[object]:
    def include_name(name: str | None, type_: str, _parent: object) -> bool:
        return type_ != "table" or name is None or schema.owns(name)

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_name": include_name, "compare_type": True})
        return list(compare_metadata(ctx, schema.metadata))


def _revisions(engine: Engine) -> list[str | None]:
    with engine.connect() as conn:
        return [current_revision(conn, s) for s in SCHEMAS]


def test_an_empty_database_upgraded_equals_the_models(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        upgrade_all(engine)
        assert _revisions(engine) == [head_revision(s) for s in SCHEMAS]
        assert [_differences(engine, s) for s in SCHEMAS] == [[], []]
    finally:
        engine.dispose()


def test_services_starting_together_upgrade_once(postgres_url: str) -> None:
    engines = [make_engine(postgres_url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(3) as pool:
            results: list[list[Upgrade]] = list(pool.map(upgrade_all, engines))
        upgraded = [u for r in results for u in r if u.before != u.after]
        assert sorted(u.schema for u in upgraded) == ["alerts", "api"]  # each schema once, the others found it done
        assert _revisions(engines[0]) == [head_revision(s) for s in SCHEMAS]
    finally:
        for engine in engines:
            engine.dispose()


def test_a_database_from_before_migrations_keeps_its_rows(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    try:
        upgrade_all(engine)
        with engine.begin() as conn:  # what the 0.2 services left: the baseline's tables and no version table
            conn.execute(text("DROP TABLE alembic_version_alerts"))
            conn.execute(text("DROP TABLE alembic_version_api"))
            conn.execute(text("INSERT INTO api_users VALUES ('admin', 'h', 'admin', '[]', false, true, 1000)"))
        assert _revisions(engine) == [None, None]
        done = upgrade_all(engine)
        assert [(d.before, d.legacy) for d in done] == [(None, True), (None, True)]
        assert _revisions(engine) == [head_revision(s) for s in SCHEMAS]
        with engine.connect() as conn:
            assert conn.execute(text("SELECT username FROM api_users")).all() == [("admin",)]
    finally:
        engine.dispose()
