"""Schema migrations (Alembic) of the API's tables, in the alert store's database with a version table of their
own; the runner is ``alerts.migrations``'s."""

from __future__ import annotations

from pathlib import Path

from alerts.migrations import Schema
from api._tables import metadata

__all__ = ["API"]

API = Schema("api", Path(__file__).parent, "alembic_version_api", metadata)
