"""The API's database: the alert store's engine (``alerts.db``, shared with the rules service) with the API's own
tables created in it."""

from __future__ import annotations

from sqlalchemy import Engine

from alerts.db import create_tables
from alerts.db import make_engine as make_store_engine
from api._tables import metadata


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (the alert store's settings, ``alerts.db.make_engine``) with the API's tables created."""
    engine = make_store_engine(url)
    create_tables(engine, metadata)
    return engine
