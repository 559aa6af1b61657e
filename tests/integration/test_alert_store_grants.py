"""Least privilege in a PostgreSQL alert store (``alerts.grants``): a rules engine connected as a role with
``rules_grants`` raises an alert with its evidence, saves its state, takes its lease and delivers its outbox, but
can neither rewrite nor delete an alert's evidence or history, nor delete an alert, nor change the schema."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.exc import ProgrammingError

from alerts.config import AlertServiceConfig
from alerts.db import make_engine
from alerts.grants import rules_grants
from alerts.lease import LeaseKeeper
from alerts.manager import AlertManager
from alerts.store import AlertStore
from device_profiles import load_catalogue
from rules import Evidence, Reading, Severity, Transition

pytestmark = pytest.mark.integration

ROLE = "lifeline_rules_engine"
T0 = 1_795_600_800_000


@pytest.fixture
def engine_url(postgres_url: str) -> Iterator[str]:
    """The store made by its owner (the migrations), and a URL of the rules engines' own role."""
    owner = AlertStore(postgres_url)
    owner.close()
    admin = make_engine(postgres_url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP ROLE IF EXISTS {ROLE}"))
        conn.execute(text(f"CREATE ROLE {ROLE} LOGIN"))
        for statement in rules_grants(ROLE):
            conn.execute(text(statement))
    yield make_url(postgres_url).set(username=ROLE).render_as_string(hide_password=False)
    with admin.begin() as conn:
        conn.execute(text(f"DROP OWNED BY {ROLE}"))
        conn.execute(text(f"DROP ROLE {ROLE}"))
    admin.dispose()


def _raise(store: AlertStore) -> None:
    manager = AlertManager(AlertServiceConfig(), store, [], load_catalogue())
    raised = Transition(
        "test.lel",
        "plant-1",
        "gas-1",
        "lel",
        Severity.WARNING,
        None,
        30.0,
        T0,
        "gas raised: lel = 30",
        "gas_detector",
        Evidence((Reading(T0 - 1000, {"lel": 29.0}), Reading(T0, {"lel": 30.0}))),
    )
    asyncio.run(manager.on_transitions([raised], ("rules.engine", {"version": 1})))


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM alert_evidence",
        "UPDATE alert_evidence SET readings = '[]'",
        "DELETE FROM alert_history",
        "UPDATE alert_history SET reason = 'nothing happened'",
        "DELETE FROM alerts",
        "DELETE FROM audit_log",
        "DROP TABLE alert_evidence",
        "TRUNCATE alert_evidence",
    ],
)
def test_the_rules_role_works_but_cannot_rewrite_or_delete_what_happened(engine_url: str, statement: str) -> None:
    store = AlertStore(engine_url)  # at the head revision: only the version is read
    try:
        _raise(store)
        (alert,) = store.list_alerts()
        (kept,) = store.evidence(alert.id)
        assert [r["values"] for r in kept.readings] == [{"lel": 29.0}, {"lel": 30.0}]
        assert store.get_state("rules.engine") == {"version": 1}
        keeper = LeaseKeeper(store, "rules.engine", "rules", ttl_s=5, renew_s=1.5, poll_s=0.5, clock=lambda: T0 / 1000)
        assert keeper._take() is not None
        with store.begin() as tx:  # the outbox: claimed, then delivered (the row leaves)
            tx.enqueue_notification(
                created_ms=T0, message_id="m1", channels=["bus"], kind="raised", message={}, alert_id=alert.id
            )
            (row,) = tx.claim_notifications(T0, 120_000, 10, "a:1")
            tx.notification_delivered(row.id)
        engine = make_engine(engine_url)
        try:
            with pytest.raises(ProgrammingError, match=r"permission denied|must be owner"), engine.begin() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()
        assert [r["values"] for r in store.evidence(alert.id)[0].readings] == [{"lel": 29.0}, {"lel": 30.0}]
        assert [h.action for h in store.history(alert.id)] == ["raise"]
    finally:
        store.close()
