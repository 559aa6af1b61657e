"""Alembic's entry for the alert store's migrations (run by ``alerts.migrations.upgrade``, or by ``alembic``)."""

from __future__ import annotations

from alerts.db import make_engine
from alerts.migrations import ALERTS, run_env

run_env(ALERTS, make_engine)
