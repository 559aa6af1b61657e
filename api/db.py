"""The API's database: an engine on the store's URL and the API's own tables created in it."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.pool import ConnectionPoolEntry

from alerts.store import SCHEMA_LOCK
from api._tables import metadata

Clock = Callable[[], int]  # epoch ms


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with the API's tables created. SQLite: shared between threads, waits on locks."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: object, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")  # readers do not wait for the writer
            cursor.close()

    else:
        engine = create_engine(url, pool_pre_ping=True)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":  # several services may create tables at once on an empty database
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")
        metadata.create_all(conn)
    return engine
