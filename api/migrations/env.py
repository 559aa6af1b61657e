"""Alembic's entry for the API's migrations (run by ``alerts.migrations.upgrade``, or by ``alembic``)."""

from __future__ import annotations

from alerts.db import make_engine
from alerts.migrations import run_env
from api.migrations import API

run_env(API, make_engine)
