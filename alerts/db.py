"""The one place a database engine on the alert store's URL is built: the rules service and the API both call
:func:`make_engine`, so they open the same file with the same settings and the same default URL.

SQLite (the default, embedded): WAL so readers do not wait for the writer, ``busy_timeout`` 5000 ms, foreign keys
on, connections usable from any thread (the store's worker thread, the API's request threads), and a write
transaction that starts with ``BEGIN IMMEDIATE`` unless the connection is marked read-only (``READ_ONLY_OPTION``,
see :func:`_sqlite_on_begin`). Other databases (PostgreSQL):
``pool_pre_ping`` so a connection the server dropped is replaced instead of failing a request.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import URL, BigInteger, Connection, Engine, Integer, create_engine, event, make_url

__all__ = ["BUSY_TIMEOUT_MS", "DEFAULT_STORE_URL", "READ_ONLY_OPTION", "SCHEMA_LOCK", "make_engine"]

DEFAULT_STORE_URL = "sqlite:///var/alerts.db"
BUSY_TIMEOUT_MS = 5000
SCHEMA_LOCK = 0x11FE11E  # PostgreSQL advisory lock held while the schema is upgraded (alerts.migrations)
READ_ONLY_OPTION = "lifeline_read_only"  # execution option: this connection's transaction only reads
# The type of an id column, the alert store's and the API's: SQLite only auto-increments a column declared exactly
# INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
ID_TYPE = BigInteger().with_variant(Integer(), "sqlite")


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # The sqlite3 module would otherwise BEGIN only before DML, leaving SELECTs and DDL outside the transaction;
    # _sqlite_on_begin issues BEGIN instead (SQLAlchemy's documented recipe for Python < 3.12).
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A write transaction takes the write lock up front. A deferred one that read first and wants to write after
    # another writer committed fails at once with SQLITE_BUSY (busy_timeout does not help); IMMEDIATE waits instead.
    # Every transaction counts as a writer unless marked read-only: a caller that forgets the mark waits for the
    # lock (WAL readers still go on) instead of failing half-way.
    read_only = bool(conn.get_execution_options().get(READ_ONLY_OPTION))
    conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def make_engine(url: str | URL = DEFAULT_STORE_URL) -> Engine:
    """An engine on ``url`` with the project's settings; a SQLite file's folder is created if missing."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine
