"""The API's database: the alert store's engine (``alerts.db``, shared with the rules service), with the alert
store's schema and the API's own upgraded to their newest migrations."""

from __future__ import annotations

from sqlalchemy import Engine

from alerts.db import make_engine as make_store_engine
from alerts.migrations import ALERTS, Upgrade, upgrade
from api.migrations import API


def upgrade_all(engine: Engine) -> list[Upgrade]:
    """Upgrade the alert store's tables, then the API's (what ``lifeline db upgrade`` runs)."""
    return [upgrade(engine, ALERTS), upgrade(engine, API)]


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (the alert store's settings, ``alerts.db.make_engine``) with both schemas upgraded."""
    engine = make_store_engine(url)
    upgrade_all(engine)
    return engine
