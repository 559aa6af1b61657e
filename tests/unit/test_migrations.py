"""Schema migrations: a database made by ``create_all`` before migrations (the frozen DDL in
tests/data/store_before_migrations.sqlite.sql) is recognised, keeps its rows and is stamped at the head; an empty
one upgraded equals the models, so a model changed without a migration fails here."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, text

from alerts.db import make_engine
from alerts.migrations import ALERTS, Schema, current_revision, head_revision, upgrade
from alerts.store import AlertStore
from api.db import upgrade_all
from api.migrations import API
from lifeline.cli import main

BEFORE = Path(__file__).resolve().parents[1] / "data" / "store_before_migrations.sqlite.sql"
SCHEMAS = [ALERTS, API]


def _old_database(path: Path, drop: tuple[str, ...] = ()) -> None:
    """A SQLite file as the 0.2 services left it, with rows in it; ``drop``: tables an older one did not have yet."""
    db = sqlite3.connect(path)
    db.executescript(BEFORE.read_text(encoding="utf-8"))
    for table in drop:
        db.execute(f"DROP TABLE {table}")
    db.execute(
        "INSERT INTO alerts (id, rule_id, site, device, point, state, severity, first_ms, last_ms, count, value,"
        " shelve_reason, out_of_service, out_of_service_reason, escalation_level, chattering, title, audience,"
        " reason, version) VALUES (7, 'gate.high', 's1', 'g1', 'level', 'active_unack', 4, 1000, 2000, 2, '4.5',"
        " '', 0, '', 0, 0, 'High water', 'ops', '', 1)"
    )
    db.execute(
        "INSERT INTO alert_history (alert_id, ts_ms, who, action, from_state, to_state, reason)"
        " VALUES (7, 1000, 'rules', 'raise', 'normal', 'active_unack', 'level 4.5 > 4')"
    )
    db.execute("INSERT INTO api_users VALUES ('admin', 'argon2-hash', 'admin', '[]', 0, 1, 1000)")
    db.execute(
        "INSERT INTO api_tokens (hash, kind, name, username, created_ms, revoked)"
        " VALUES ('h1', 'api', 'ci', 'admin', 1000, 0)"
    )
    db.commit()
    db.close()


def _differences(engine: Engine, schema: Schema) -> list[object]:
    def include_name(name: str | None, type_: str, _parent: object) -> bool:
        return type_ != "table" or name is None or schema.owns(name)

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"include_name": include_name, "compare_type": True})
        return list(compare_metadata(ctx, schema.metadata))


def _revisions(engine: Engine) -> list[str | None]:
    with engine.connect() as conn:
        return [current_revision(conn, s) for s in SCHEMAS]


@pytest.mark.parametrize(
    "drop",
    [(), ("notification_outbox", "state_blobs", "api_commands")],
    ids=["every-table", "older-without-some-tables"],
)
def test_a_database_from_before_migrations_keeps_its_rows_and_is_stamped_at_head(
    tmp_path: Path, drop: tuple[str, ...]
) -> None:
    path = tmp_path / "alerts.db"
    _old_database(path, drop)
    engine = make_engine(f"sqlite:///{path}")
    assert _revisions(engine) == [None, None]

    done = upgrade_all(engine)

    assert [(d.before, d.after, d.legacy) for d in done] == [(None, head_revision(s), True) for s in SCHEMAS]
    assert _revisions(engine) == [head_revision(s) for s in SCHEMAS]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT id, title, count FROM alerts")).all() == [(7, "High water", 2)]
        assert conn.execute(text("SELECT alert_id, to_state FROM alert_history")).all() == [(7, "active_unack")]
        assert conn.execute(text("SELECT username, role FROM api_users")).all() == [("admin", "admin")]
        assert conn.execute(text("SELECT name FROM api_tokens")).all() == [("ci",)]
    assert [_differences(engine, s) for s in SCHEMAS] == [[], []]  # the missing tables were created as the models
    engine.dispose()


def test_the_alert_store_opens_a_database_from_before_migrations(tmp_path: Path) -> None:
    path = tmp_path / "alerts.db"
    _old_database(path)
    store = AlertStore.sqlite(path)
    try:
        stored = store.get(7)
        assert stored is not None
        assert (stored.alert.key.device, stored.meta.title) == ("g1", "High water")
    finally:
        store.close()
    engine = make_engine(f"sqlite:///{path}")
    assert _revisions(engine) == [head_revision(ALERTS), None]  # the rules service upgrades only its own schema
    engine.dispose()


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.name)
def test_upgrading_an_empty_database_gives_the_models(tmp_path: Path, schema: Schema) -> None:
    """Fails when a table in ``alerts/_tables.py`` or ``api/_tables.py`` changed without a migration."""
    engine = make_engine(f"sqlite:///{tmp_path / 'new.db'}")
    done = upgrade(engine, schema)
    assert (done.before, done.after, done.legacy) == (None, head_revision(schema), False)
    assert _differences(engine, schema) == []
    again = upgrade(engine, schema)
    assert again.before == again.after == head_revision(schema)
    engine.dispose()


def test_notifications_waiting_in_the_old_outbox_are_carried_over_per_channel(tmp_path: Path) -> None:
    """alerts_0002: a message in the 0.3 outbox becomes one pending row per channel that has not confirmed it."""
    path = tmp_path / "alerts.db"
    _old_database(path)
    message = '{"id": "m1", "kind": "raised", "targets": ["hook", "mail"], "alert_id": 7}'
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO notification_outbox (created_ms, message_id, message, alert_id) VALUES (5000, 'm1', ?, 7)",
        (message,),
    )
    db.execute(
        "INSERT INTO notifications (ts_ms, message_id, kind, audience, channel, channel_type, target, ok, attempts,"
        " error, alert_id, text) VALUES (5100, 'm1', 'raised', 'ops', 'hook', 'webhook', 'x', 1, 1, '', 7, 't')"
    )
    db.commit()
    db.close()
    store = AlertStore.sqlite(path)
    try:
        (row,) = store.notification_queue()
    finally:
        store.close()
    assert (row.message_id, row.channel, row.status, row.alert_id, row.next_ms) == ("m1", "mail", "pending", 7, 5000)


def test_lifeline_db_upgrade_and_current(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    _old_database(tmp_path / "alerts.db")
    assert main(["db", "current", "--url", url]) == 1  # behind: an upgrade is needed
    assert main(["db", "upgrade", "--url", url]) == 0
    out = capsys.readouterr().out
    assert f"alerts: upgraded a database from before migrations to {head_revision(ALERTS)}" in out
    assert main(["db", "current", "--url", url]) == 0
    assert f"api: {head_revision(API)} (head {head_revision(API)})" in capsys.readouterr().out
    assert (tmp_path / "alerts.db").stat().st_mode & 0o077 == 0  # it holds password hashes


def test_lifeline_version_is_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"lifeline {version('lifeline')}"
