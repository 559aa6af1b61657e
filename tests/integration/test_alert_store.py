"""The alert and audit store, on a SQLite file and on a real PostgreSQL: round trips, appended history, optimistic
concurrency, filters. SQLite's own settings (WAL, the write lock) are checked on SQLite alone."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from alerts import (
    Action,
    Alert,
    AlertKey,
    InvalidAction,
    Note,
    Severity,
    State,
    StateChange,
    acknowledge,
    add_note,
    assign,
    clear,
    raise_,
)
from alerts.store import ACT_RETRIES, AlertMeta, AlertStore, Conflict, StoredAlert

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000
MIN = 60_000
KEY = AlertKey("high_temp", "plant1", "boiler3", "t_out")
META = AlertMeta("Boiler outlet too hot", "water_ops", "north", "boiler_v1", "t_out > 80")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "alerts.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, path: Path) -> str:
    if request.param == "sqlite":
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def store(url: str) -> Iterator[AlertStore]:
    s = AlertStore(url)
    yield s
    s.close()


def _raised(key: AlertKey = KEY, now: int = T0, severity: Severity = Severity.WARNING) -> Alert:
    a = Alert(key)
    raise_(a, severity, 81.5, now, "t_out > 80")
    return a


def _insert(store: AlertStore, alert: Alert, meta: AlertMeta = META) -> StoredAlert:
    with store.begin() as tx:
        return tx.save(alert, meta, None)


# --- round trip ---------------------------------------------------------------------------------


def _every_field(key: AlertKey, value: float | str | bool | None) -> Alert:
    return Alert(
        key=key,
        state=State.ACTIVE_ACK,
        severity=Severity.CRITICAL,
        first_ms=T0,
        last_ms=T0 + 5 * MIN,
        count=7,
        value=value,
        assignee="carol",
        shelved_until_ms=T0 + 60 * MIN,
        shelve_reason="sensor swap",
        out_of_service=True,
        out_of_service_reason="maintenance",
        unack_since_ms=T0 + 2 * MIN,
        escalation_level=2,
        escalated_ms=T0 + 3 * MIN,
        chattering=True,
        history=[StateChange(T0, "system", Action.RAISE, State.NORMAL, State.ACTIVE_UNACK, "r")],
        notes=[Note("ana", T0 + 1, "looking")],
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        pytest.param(KEY, 81.5, id="float"),
        pytest.param(KEY, 3, id="int-stays-int"),
        pytest.param(KEY, True, id="bool-stays-bool"),
        pytest.param(KEY, "open", id="str"),
        pytest.param(KEY, None, id="none"),
        pytest.param(AlertKey("offline", "plant1", "boiler3"), 0.0, id="no-point"),
    ],
)
def test_every_field_round_trips(store: AlertStore, key: AlertKey, value: float | str | bool | None) -> None:
    alert = _every_field(key, value)
    saved = _insert(store, alert)
    expected = dataclasses.replace(alert, history=[], notes=[])
    with store.begin() as tx:
        by_key, by_id = tx.get(key), tx.get_id(saved.id)
    assert by_key == by_id == StoredAlert(saved.id, expected, META, 1)
    assert by_key is not None
    assert type(by_key.alert.value) is type(value)


def test_meta_without_optional_fields_round_trips(store: AlertStore) -> None:
    meta = AlertMeta("t", "default", None, None)
    saved = _insert(store, _raised(), meta)
    assert store.get(saved.id) == saved


def test_save_returns_a_copy_with_empty_lists_and_leaves_the_input(store: AlertStore) -> None:
    alert = _raised()
    saved = _insert(store, alert)
    assert (saved.version, saved.alert.history, saved.alert.notes) == (1, [], [])
    assert len(alert.history) == 1


def test_missing_alert_is_none(store: AlertStore) -> None:
    with store.begin() as tx:
        assert tx.get(KEY) is None
        assert tx.get_id(42) is None


def test_empty_point_is_refused(store: AlertStore) -> None:
    with pytest.raises(ValueError, match="empty point"), store.begin() as tx:
        tx.save(_raised(AlertKey("r", "s", "d", "")), META, None)


# --- history and notes --------------------------------------------------------------------------


def test_history_and_notes_are_appended_across_saves(store: AlertStore) -> None:
    first = _insert(store, _raised())
    alert = first.alert
    acknowledge(alert, "ana", T0 + MIN, "on my way")
    add_note(alert, "bob", "valve replaced", T0 + 2 * MIN)
    with store.begin() as tx:
        second = tx.save(alert, first.meta, first.version)
    assert second.version == 2

    history = store.history(first.id)
    assert [(h.ts_ms, h.who, h.action, h.from_state, h.to_state, h.reason) for h in history] == [
        (T0, "system", Action.RAISE, State.NORMAL, State.ACTIVE_UNACK, "t_out > 80"),
        (T0 + MIN, "ana", Action.ACK, State.ACTIVE_UNACK, State.ACTIVE_ACK, "on my way"),
        (T0 + 2 * MIN, "bob", Action.NOTE, State.ACTIVE_ACK, State.ACTIVE_ACK, "valve replaced"),
    ]
    assert [(n.ts_ms, n.who, n.text) for n in store.notes(first.id)] == [
        (T0 + MIN, "ana", "on my way"),
        (T0 + 2 * MIN, "bob", "valve replaced"),
    ]
    assert store.history(999) == []


# --- optimistic concurrency ---------------------------------------------------------------------


def test_stale_version_conflicts_and_writes_nothing(store: AlertStore) -> None:
    first = _insert(store, _raised())
    with store.begin() as tx:
        current = tx.save(dataclasses.replace(first.alert), first.meta, first.version)
    stale = first.alert
    acknowledge(stale, "ana", T0 + MIN)
    with pytest.raises(Conflict, match="version 1"), store.begin() as tx:
        tx.save(stale, first.meta, first.version)
    assert current.version == 2
    assert store.get(first.id) == current
    assert len(store.history(first.id)) == 1


def test_inserting_an_existing_key_conflicts(store: AlertStore) -> None:
    _insert(store, _raised())
    with pytest.raises(Conflict, match="absent"), store.begin() as tx:
        tx.save(_raised(), META, None)
    assert store.count_alerts() == 1


def test_exception_in_a_transaction_rolls_everything_back(store: AlertStore) -> None:
    def fail_half_way() -> None:
        with store.begin() as tx:
            tx.save(_raised(), META, None)
            tx.audit(ts_ms=T0, who="ana", action="ack", target="alert/1")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_half_way()
    assert store.count_alerts() == 0
    assert store.audit_log() == []


def test_act_retries_after_a_change_through_another_store(store: AlertStore, url: str) -> None:
    alert_id = _insert(store, _raised()).id
    other = AlertStore(url)
    calls = 0

    def ack(a: Alert) -> StateChange:
        nonlocal calls
        calls += 1
        if calls == 1:  # another process assigns the alert between our load and our save
            other.act(alert_id, lambda b: assign(b, "bob", "carol", T0 + MIN))
        return acknowledge(a, "ana", T0 + 2 * MIN)

    try:
        saved, transition = store.act(alert_id, ack)
    finally:
        other.close()
    assert calls == 2
    assert (transition.action, saved.version) == (Action.ACK, 3)
    assert (saved.alert.state, saved.alert.assignee) == (State.ACTIVE_ACK, "carol")
    assert store.get(alert_id) == saved
    assert [h.action for h in store.history(alert_id)] == [Action.RAISE, Action.ASSIGN, Action.ACK]


def test_act_gives_up_after_its_retries(store: AlertStore, url: str) -> None:
    alert_id = _insert(store, _raised()).id
    other = AlertStore(url)
    calls = 0

    def always_overtaken(a: Alert) -> StateChange:
        nonlocal calls
        calls += 1
        other.act(alert_id, lambda b: add_note(b, "bob", f"note {calls}", T0 + calls))
        return acknowledge(a, "ana", T0 + MIN)

    try:
        with pytest.raises(Conflict):
            store.act(alert_id, always_overtaken)
    finally:
        other.close()
    assert calls == ACT_RETRIES + 1
    assert store.get(alert_id) is not None
    assert [h.action for h in store.history(alert_id)] == [Action.RAISE] + [Action.NOTE] * calls


def test_act_on_a_missing_alert_is_a_key_error(store: AlertStore) -> None:
    with pytest.raises(KeyError):
        store.act(42, lambda a: acknowledge(a, "ana", T0))


def test_act_with_an_invalid_action_writes_nothing(store: AlertStore) -> None:
    before = _insert(store, _raised())

    def note_then_clear_twice(a: Alert) -> StateChange:
        add_note(a, "ana", "half done", T0 + MIN)
        clear(a, T0 + MIN)
        return clear(a, T0 + MIN)  # cleared_unack cannot clear again

    with pytest.raises(InvalidAction):
        store.act(before.id, note_then_clear_twice)
    assert store.get(before.id) == before
    assert len(store.history(before.id)) == 1
    assert store.notes(before.id) == []


# --- list and count -----------------------------------------------------------------------------


@pytest.fixture
def fleet(store: AlertStore) -> AlertStore:
    """Six alerts; ``last_ms`` grows with the device number, d6 never raised (last_ms None)."""
    rows: list[tuple[str, str, str, str, Severity, State]] = [
        ("d1", "plant1", "high_temp", "water_ops", Severity.INFO, State.ACTIVE_UNACK),
        ("d2", "plant1", "high_temp", "water_ops", Severity.WARNING, State.ACTIVE_ACK),
        ("d3", "plant2", "gas", "safety", Severity.CRITICAL, State.CLEARED_UNACK),
        ("d4", "plant2", "gas", "safety", Severity.INFO, State.NORMAL),
        ("d5", "river", "ph", "environment", Severity.WARNING, State.ACTIVE_UNACK),
    ]
    with store.begin() as tx:
        for n, (device, site, rule, audience, severity, state) in enumerate(rows, start=1):
            a = Alert(AlertKey(rule, site, device), state=state, severity=severity, last_ms=T0 + n * MIN)
            tx.save(a, dataclasses.replace(META, audience=audience), None)
        tx.save(Alert(AlertKey("ph", "river", "d6")), dataclasses.replace(META, audience="environment"), None)
    return store


@pytest.mark.parametrize(
    ("filters", "devices"),
    [
        pytest.param({}, ["d5", "d4", "d3", "d2", "d1", "d6"], id="all-newest-first-never-raised-last"),
        pytest.param({"states": ["active_unack"]}, ["d5", "d1"], id="states-str"),
        pytest.param({"states": [State.CLEARED_UNACK, State.NORMAL]}, ["d4", "d3", "d6"], id="states-enum"),
        pytest.param({"states": []}, [], id="states-empty-matches-nothing"),
        pytest.param({"site": "plant2"}, ["d4", "d3"], id="site"),
        pytest.param({"sites": ["plant1", "river"]}, ["d5", "d2", "d1", "d6"], id="sites"),
        pytest.param({"site": "plant1", "sites": ["plant2"]}, [], id="site-and-sites-both-apply"),
        pytest.param({"device": "d3"}, ["d3"], id="device"),
        pytest.param({"rule": "gas"}, ["d4", "d3"], id="rule"),
        pytest.param({"audiences": ["safety", "environment"]}, ["d5", "d4", "d3", "d6"], id="audiences"),
        pytest.param({"min_severity": Severity.WARNING}, ["d5", "d3", "d2"], id="min-severity"),
        pytest.param({"active_only": True}, ["d5", "d2", "d1"], id="active-only"),
        pytest.param({"since_ms": T0 + 3 * MIN}, ["d5", "d4", "d3"], id="since-on-last-ms"),
        pytest.param({"site": "plant1", "min_severity": Severity.WARNING}, ["d2"], id="combined"),
    ],
)
def test_list_and_count_filters(fleet: AlertStore, filters: dict[str, object], devices: list[str]) -> None:
    listed = fleet.list_alerts(**filters)  # type: ignore[arg-type]
    assert [s.alert.key.device for s in listed] == devices
    assert fleet.count_alerts(**filters) == len(devices)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("limit", "offset", "devices"),
    [
        pytest.param(2, 0, ["d5", "d4"], id="first-page"),
        pytest.param(2, 2, ["d3", "d2"], id="second-page"),
        pytest.param(10, 5, ["d6"], id="last-page"),
        pytest.param(0, 0, [], id="zero"),
    ],
)
def test_list_pages(fleet: AlertStore, limit: int, offset: int, devices: list[str]) -> None:
    assert [s.alert.key.device for s in fleet.list_alerts(limit=limit, offset=offset)] == devices


def test_negative_page_is_refused(store: AlertStore) -> None:
    with pytest.raises(ValueError, match="negative"):
        store.list_alerts(offset=-1)


def test_open_alerts(store: AlertStore) -> None:
    cases = {
        "normal": Alert(AlertKey("r", "s", "normal")),
        "active": Alert(AlertKey("r", "s", "active"), state=State.ACTIVE_UNACK),
        "cleared": Alert(AlertKey("r", "s", "cleared"), state=State.CLEARED_UNACK),
        "shelved": Alert(AlertKey("r", "s", "shelved"), shelved_until_ms=T0),
        "oos": Alert(AlertKey("r", "s", "oos"), out_of_service=True),
        "chattering": Alert(AlertKey("r", "s", "chattering"), chattering=True),
    }
    with store.begin() as tx:
        for a in cases.values():
            tx.save(a, META, None)
        open_devices = {s.alert.key.device for s in tx.open_alerts()}
    assert open_devices == {"active", "cleared", "shelved", "oos", "chattering"}
    assert {s.alert.key.device for s in store.open_alerts()} == open_devices


# --- state blobs, notifications, audit ----------------------------------------------------------


def test_state_blobs(store: AlertStore) -> None:
    data: dict[str, object] = {
        "version": 1,
        "flood": [{"audience": "safety", "held": 2, "until": None}],
        "ratio": 0.5,
        "on": True,
        "name": "Kläranlage",
    }
    with store.begin() as tx:
        assert tx.get_state("book") is None
        tx.put_state("book", {"version": 0})
        tx.put_state("book", data)
        tx.put_state("other", {})
    assert store.get_state("book") == data
    assert store.get_state("other") == {}


def _notify(store: AlertStore, message_id: str, channel: str, *, ok: bool, ts_ms: int, alert_id: int | None) -> int:
    with store.begin() as tx:
        return tx.add_notification(
            ts_ms=ts_ms,
            message_id=message_id,
            kind="raised",
            audience="water_ops",
            channel=channel,
            channel_type="smtp",
            target="ops@example.org",
            ok=ok,
            attempts=3 if not ok else 1,
            error="" if ok else "421 try later",
            alert_id=alert_id,
            text=f"{message_id} via {channel}",
        )


def test_notification_log(store: AlertStore) -> None:
    alert_id = _insert(store, _raised()).id
    failed = _notify(store, "m1", "ops-mail", ok=False, ts_ms=T0, alert_id=alert_id)
    _notify(store, "m2", "ops-mail", ok=True, ts_ms=T0 + 1, alert_id=None)
    sent = _notify(store, "m1", "ops-mail", ok=True, ts_ms=T0 + 2, alert_id=alert_id)
    _notify(store, "m1", "ops-chat", ok=False, ts_ms=T0 + 3, alert_id=alert_id)

    rows = store.notifications(alert_id=alert_id)
    assert [(r.message_id, r.channel, r.ok) for r in rows] == [
        ("m1", "ops-chat", False),
        ("m1", "ops-mail", True),
        ("m1", "ops-mail", False),
    ]
    first = rows[-1]
    assert (first.id, first.ts_ms, first.kind, first.audience, first.channel_type, first.target) == (
        failed,
        T0,
        "raised",
        "water_ops",
        "smtp",
        "ops@example.org",
    )
    assert (first.attempts, first.error, first.alert_id, first.text) == (
        3,
        "421 try later",
        alert_id,
        "m1 via ops-mail",
    )
    assert [r.id for r in store.notifications(limit=2)][1] == sent
    assert len(store.notifications()) == 4


def test_notification_for_a_missing_alert_is_refused(store: AlertStore) -> None:
    # foreign keys are on
    with pytest.raises(IntegrityError):
        _notify(store, "m1", "ops-mail", ok=True, ts_ms=T0, alert_id=999)


@pytest.fixture
def audited(store: AlertStore) -> AlertStore:
    entries = [
        (T0, "ana", "ack", "alert/1"),
        (T0 + 1, "bob", "shelve", "alert/12"),
        (T0 + 2, "ana", "login", "user/ana"),
        (T0 + 3, "root", "create_user", "user/bob"),
        (T0 + 4, "ana", "ack", "Alert/1"),
        (T0 + 5, "bob", "ack", "alert_1%"),
    ]
    with store.begin() as tx:
        for ts, who, action, target in entries:
            tx.audit(
                ts_ms=ts,
                who=who,
                action=action,
                target=target,
                source="10.0.0.7",
                detail={"note": "seen", "n": ts - T0},
            )
    return store


@pytest.mark.parametrize(
    ("filters", "targets"),
    [
        pytest.param({}, ["alert_1%", "Alert/1", "user/bob", "user/ana", "alert/12", "alert/1"], id="all-newest-first"),
        pytest.param({"since_ms": T0 + 3}, ["alert_1%", "Alert/1", "user/bob"], id="since"),
        pytest.param({"who": "ana"}, ["Alert/1", "user/ana", "alert/1"], id="who"),
        pytest.param({"action": "ack"}, ["alert_1%", "Alert/1", "alert/1"], id="action"),
        pytest.param({"target_prefix": "alert/1"}, ["alert/12", "alert/1"], id="prefix-case-sensitive"),
        pytest.param({"target_prefix": "alert_"}, ["alert_1%"], id="prefix-underscore-is-literal"),
        pytest.param({"target_prefix": "alert_1%"}, ["alert_1%"], id="prefix-percent-is-literal"),
        pytest.param({"target_prefix": "user/"}, ["user/bob", "user/ana"], id="prefix-users"),
        pytest.param({"who": "ana", "action": "ack", "since_ms": T0 + 1}, ["Alert/1"], id="combined"),
        pytest.param({"limit": 2}, ["alert_1%", "Alert/1"], id="limit"),
    ],
)
def test_audit_log_filters(audited: AlertStore, filters: dict[str, object], targets: list[str]) -> None:
    assert [r.target for r in audited.audit_log(**filters)] == targets  # type: ignore[arg-type]


def test_audit_row_fields(store: AlertStore) -> None:
    with store.begin() as tx:
        entry_id = tx.audit(ts_ms=T0, who="ana", action="login", target="user/ana")
        tx.audit(
            ts_ms=T0 + 1,
            who="ana",
            action="ack",
            target="alert/1",
            source="api",
            detail={"note": "seen", "level": 2, "ok": True, "none": None},
        )
    second, first = store.audit_log()
    assert (first.id, first.ts_ms, first.who, first.action, first.target, first.source, first.detail) == (
        entry_id,
        T0,
        "ana",
        "login",
        "user/ana",
        "",
        {},
    )
    assert second.detail == {"note": "seen", "level": 2, "ok": True, "none": None}


# --- the file -----------------------------------------------------------------------------------


@pytest.fixture
def sqlite_store(path: Path) -> Iterator[AlertStore]:
    s = AlertStore.sqlite(path)
    yield s
    s.close()


def test_sqlite_file_is_in_wal_mode(sqlite_store: AlertStore, path: Path) -> None:
    assert sqlite_store.ping()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_a_write_transaction_takes_the_write_lock_at_once_and_readers_go_on(
    sqlite_store: AlertStore, path: Path
) -> None:
    raw = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with sqlite_store.begin() as tx:
            assert tx.get(KEY) is None  # only read so far, yet a second writer must queue behind us
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                raw.execute("BEGIN IMMEDIATE")
            assert sqlite_store.count_alerts() == 0
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("ROLLBACK")
    finally:
        raw.close()


def test_a_restart_sees_everything(url: str) -> None:
    first = AlertStore(url)
    saved = _insert(first, _every_field(KEY, 81.5))
    acked = Alert(AlertKey("gas", "plant2", "d1"))
    raise_(acked, Severity.CRITICAL, True, T0, "co > 50")
    acknowledge(acked, "ana", T0 + 1, "evacuated")
    with first.begin() as tx:
        other = tx.save(acked, META, None)
        tx.put_state("book", {"version": 1})
        tx.add_notification(
            ts_ms=T0,
            message_id="m1",
            kind="raised",
            audience="safety",
            channel="chat",
            channel_type="webhook",
            target="https://chat.example.org/hook",
            ok=True,
            attempts=1,
            error="",
            alert_id=other.id,
            text="gas",
        )
        tx.audit(ts_ms=T0 + 1, who="ana", action="ack", target=f"alert/{other.id}")
    before = (
        first.list_alerts(),
        first.history(other.id),
        first.notes(other.id),
        first.notifications(),
        first.audit_log(),
        first.get_state("book"),
    )
    first.close()

    second = AlertStore(url)
    try:
        after = (
            second.list_alerts(),
            second.history(other.id),
            second.notes(other.id),
            second.notifications(),
            second.audit_log(),
            second.get_state("book"),
        )
        assert after == before
        assert second.get(saved.id) == saved
        assert [s.id for s in second.open_alerts()] == [saved.id, other.id]
        assert [n.text for n in second.notes(other.id)] == ["evacuated"]
    finally:
        second.close()


# --- the notification outbox --------------------------------------------------------------------------------


def _enqueue(store: AlertStore, message_id: str, kind: str, alert_id: int | None, channels: tuple[str, ...]) -> None:
    with store.begin() as tx:
        tx.enqueue_notification(
            created_ms=T0,
            message_id=message_id,
            channels=channels,
            kind=kind,
            message={"id": message_id, "kind": kind},
            alert_id=alert_id,
        )


def _claim(store: AlertStore, now: int = T0, lease_ms: int = MIN, limit: int = 10) -> list[tuple[str, str]]:
    with store.begin() as tx:
        return [(r.message_id, r.channel) for r in tx.claim_notifications(now, lease_ms, limit)]


def test_the_outbox_gives_one_alerts_notifications_to_a_channel_in_order(store: AlertStore) -> None:
    alert_id = _insert(store, _raised()).id
    _enqueue(store, "raise", "raised", alert_id, ("mail", "chat"))
    _enqueue(store, "clear", "cleared", alert_id, ("mail", "chat"))
    _enqueue(store, "flood", "flood", None, ("mail",))

    # the clear waits behind its raise on each channel; an alert-less summary waits for nobody
    assert _claim(store) == [("raise", "mail"), ("raise", "chat"), ("flood", "mail")]
    assert _claim(store) == []  # leased: not claimed twice (another instance skips them too)
    with store.begin() as tx:
        (mail, chat, _) = tx.claim_notifications(T0 + MIN, MIN, 10)  # the lease ran out (an instance died)
        tx.notification_delivered(mail.id)
        tx.notification_retry(chat.id, attempts=1, next_ms=T0 + 5 * MIN, error="HTTP 503", now_ms=T0 + MIN)
    assert _claim(store, T0 + 2 * MIN) == [("clear", "mail"), ("flood", "mail")]
    later = T0 + 2 * MIN + 1000
    assert _claim(store, later) == []  # the chat raise is not due yet, and its clear waits behind it
    with store.begin() as tx:
        assert tx.wake_channel("chat", later) == 1  # the channel came back: due now
    assert _claim(store, later) == [("raise", "chat")]
    queues = {q.channel: (q.pending, q.failed, q.oldest_pending_ms) for q in store.channel_queues()}
    assert queues == {"chat": (2, 0, T0), "mail": (2, 0, T0)}


def test_a_refused_notification_stays_failed_and_the_next_one_may_go(store: AlertStore) -> None:
    alert_id = _insert(store, _raised()).id
    _enqueue(store, "raise", "raised", alert_id, ("robot",))
    _enqueue(store, "clear", "cleared", alert_id, ("robot",))
    with store.begin() as tx:
        (raise_row,) = tx.claim_notifications(T0, MIN, 10)
        tx.notification_failed(raise_row.id, attempts=1, error="HTTP 400: bad key", now_ms=T0)
    with store.begin() as tx:
        (clear_row,) = tx.claim_notifications(T0, MIN, 10)
        assert clear_row.message_id == "clear"
        (failed,) = tx.unreported_failures(alert_id, "robot", clear_row.id)
        assert (failed.message_id, failed.last_error, failed.attempts) == ("raise", "HTTP 400: bad key", 1)
        tx.mark_reported([failed.id])
        assert tx.unreported_failures(alert_id, "robot", clear_row.id) == []
    (row, _) = store.notification_queue()
    assert (row.message_id, row.status) == ("raise", "failed")
    assert [r.message_id for r in store.notification_queue(statuses=["pending"])] == ["clear"]
