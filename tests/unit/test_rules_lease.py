"""A rules partition's lease in the alert store (``alerts.lease``), time passed in: one holder at a time, a standby
takes it only once it has run out, a holder that was taken over can neither renew nor write (fencing by epoch,
whatever its clock says), and a standby of another MQTT session is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from alerts.lease import Lease, LeaseKeeper, LeaseLost, LeaseRefused, check, renew, take
from alerts.store import AlertStore

NAME = "rules.engine.north"
SESSION = "rules-north"
TTL = 5000


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AlertStore]:
    opened = AlertStore.sqlite(tmp_path / "alerts.db")
    yield opened
    opened.close()


def _take(store: AlertStore, holder: str, now_ms: int, session: str = SESSION) -> Lease | None:
    with store.begin() as tx:
        return tx.run(take, NAME, holder, session, now_ms, TTL)


def _write(store: AlertStore, lease: Lease) -> None:
    """What an engine's checkpoint does: the lease checked first, then the write, in one transaction."""
    with store.begin() as tx:
        tx.run(check, lease)
        tx.put_state(NAME, {"written": lease.holder})


def _renew(store: AlertStore, lease: Lease, now_ms: int) -> Lease | None:
    with store.begin() as tx:
        return tx.run(renew, lease, now_ms, TTL)


def test_the_first_engine_takes_the_lease_and_a_second_waits_until_it_runs_out(store: AlertStore) -> None:
    active = _take(store, "a:1", 0)
    assert active == Lease(NAME, "a:1", SESSION, 1, TTL)
    assert _take(store, "b:2", 1000) is None
    renewed = _renew(store, active, 1500)
    assert renewed is not None
    assert renewed.expires_ms == 1500 + TTL
    assert _take(store, "b:2", 1500 + TTL - 1) is None  # still held: renewed
    standby = _take(store, "b:2", 1500 + TTL)
    assert standby == Lease(NAME, "b:2", SESSION, 2, 1500 + TTL + TTL, previous="a:1")


@pytest.mark.parametrize("late_by_ms", [0, 60_000], ids=["on-time", "a-minute-late"])
def test_a_holder_taken_over_can_neither_renew_nor_write(store: AlertStore, late_by_ms: int) -> None:
    active = _take(store, "a:1", 0)
    assert active is not None
    assert _take(store, "b:2", TTL) is not None
    # the old holder's clock may say anything: the epoch moved on
    assert _renew(store, active, TTL + late_by_ms) is None
    with pytest.raises(LeaseLost):
        _write(store, active)
    assert store.get_state(NAME) is None  # its transaction rolled back


def test_a_holder_not_taken_over_renews_even_after_its_expiry(store: AlertStore) -> None:
    active = _take(store, "a:1", 0)
    assert active is not None
    assert _renew(store, active, TTL * 3) is not None  # nobody took it meanwhile: no reason to stop
    _write(store, active)
    assert store.get_state(NAME) == {"written": "a:1"}


def test_a_standby_of_another_mqtt_session_is_refused(store: AlertStore) -> None:
    assert _take(store, "a:1", 0) is not None
    with pytest.raises(LeaseRefused, match="second member of the partition's shared group"):
        _take(store, "b:2", TTL * 2, session="rules-north-2")


def test_the_keepers_fence_guards_the_alert_managers_writes(store: AlertStore) -> None:
    now = [0.0]
    keeper = LeaseKeeper(store, NAME, SESSION, ttl_s=5, renew_s=1.5, poll_s=0.5, holder="a:1", clock=lambda: now[0])
    with pytest.raises(LeaseLost), store.begin() as tx:
        keeper.fence(tx)  # nothing held yet
    keeper.lease = keeper._take()
    with store.begin() as tx:
        keeper.fence(tx)
    now[0] = 10.0
    assert _take(store, "b:2", 10_000) is not None
    with pytest.raises(LeaseLost), store.begin() as tx:
        keeper.fence(tx)


def test_the_engine_taking_over_frees_the_notifications_its_predecessor_had_claimed(store: AlertStore) -> None:
    """Rows a dead engine claimed are due at once for its successor, not after the outbox's lease (120 s)."""
    with store.begin() as tx:
        tx.enqueue_notification(
            created_ms=0, message_id="m1", channels=["hook", "mail"], kind="raised", message={}, alert_id=None
        )
        tx.enqueue_notification(
            created_ms=0, message_id="m2", channels=["hook"], kind="raised", message={}, alert_id=None
        )
        assert len(tx.claim_notifications(0, 120_000, 2, "a:1")) == 2  # the active engine's delivery
        assert len(tx.claim_notifications(0, 120_000, 1, "c:3")) == 1  # another partition's
    active = LeaseKeeper(store, NAME, SESSION, ttl_s=5, renew_s=1.5, poll_s=0.5, holder="a:1", clock=lambda: 0.0)
    assert active._take() is not None
    standby = LeaseKeeper(store, NAME, SESSION, ttl_s=5, renew_s=1.5, poll_s=0.5, holder="b:2", clock=lambda: 6.0)
    taken = standby._take()
    assert taken is not None
    assert taken.previous == "a:1"
    with store.begin() as tx:
        due = tx.claim_notifications(6000, 120_000, 10, "b:2")
    assert sorted((r.message_id, r.channel) for r in due) == [("m1", "hook"), ("m1", "mail")]  # c:3's stays its own


def test_the_deployments_rules_lease_reaches_every_partitions_engine() -> None:
    from lifeline.deployment import DeploymentSpec

    spec = DeploymentSpec.model_validate(
        {"rules": {"lease": {"ttl_s": 6}}, "rules_partitions": [{"index": 0, "count": 2}, {"index": 1, "count": 2}]}
    )
    engines = [spec.rules_config(p) for p in spec.partitions()]
    assert [(e.state_name, e.lease.ttl_s if e.lease else None) for e in engines] == [
        ("rules.engine.0-of-2", 6.0),
        ("rules.engine.1-of-2", 6.0),
    ]


def test_a_lease_renewed_less_often_than_twice_per_ttl_is_refused() -> None:
    from pydantic import ValidationError

    from rules.config import LeaseConfig

    with pytest.raises(ValidationError, match="renew_s 3 must be at most half of ttl_s 5"):
        LeaseConfig(ttl_s=5, renew_s=3)
