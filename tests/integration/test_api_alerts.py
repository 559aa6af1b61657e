"""The alerts endpoints against an AlertStore the test fills: listing scoped to the user's areas, the lifecycle
actions through the store (acknowledge, shelve, unshelve, comment, assign) with an audit entry each, and 409 for
an action the alert's state does not allow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import ApiService, create_app
from telemetry import Telemetry
from tests.integration.test_api_support import NOW_MS, USERS, Clock, add_users, fill_alerts, make_config


class App:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        self.service = ApiService(make_config(tmp_path), clock=self.clock)
        add_users(self.service)
        self.ids = fill_alerts(self.service.store)
        self.client = TestClient(create_app(self.service, connect=False))
        self.client.__enter__()
        self.h = {}
        for name in USERS:
            r = self.client.post("/api/auth/login", json={"username": name, "password": "correct-horse-battery"})
            self.h[name] = {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = App(tmp_path)
    yield a
    a.client.__exit__(None, None, None)


@pytest.mark.parametrize(
    ("user", "sites"),
    [
        pytest.param("viewer", {"north-sluices", "north-env", "south-sluices", "nowhere"}, id="viewer-sees-all"),
        pytest.param("boss", {"north-sluices", "north-env", "south-sluices", "nowhere"}, id="admin-sees-all"),
        pytest.param("op-north", {"north-sluices", "north-env"}, id="operator-north"),
        pytest.param("op-south", {"south-sluices"}, id="operator-south"),
    ],
)
def test_list_is_scoped_to_areas(app: App, user: str, sites: set[str]) -> None:
    r = app.client.get("/api/alerts", headers=app.h[user])
    assert r.status_code == 200, r.text
    assert {a["site"] for a in r.json()["alerts"]} == sites
    assert r.json()["total"] == len(sites)


def test_each_role_sees_its_own_audience_unless_it_asks_for_all(app: App) -> None:
    # the filled alerts are the water operators': an environment officer's own view is empty
    h = app.h["env-north"]
    assert app.client.get("/api/alerts", headers=h).json()["total"] == 0
    r = app.client.get("/api/alerts", headers=h, params={"all_audiences": "true"})
    assert {a["site"] for a in r.json()["alerts"]} == {"north-sluices", "north-env"}


def test_filters_and_paging(app: App) -> None:
    h = app.h["viewer"]
    assert app.client.get("/api/alerts", headers=h, params={"site": "north-env"}).json()["total"] == 1
    assert app.client.get("/api/alerts", headers=h, params={"state": "active_ack"}).json()["total"] == 0
    assert app.client.get("/api/alerts", headers=h, params={"min_severity": "critical"}).json()["total"] == 0
    assert app.client.get("/api/alerts", headers=h, params={"min_severity": "warning"}).json()["total"] == 4
    page = app.client.get("/api/alerts", headers=h, params={"limit": 2, "offset": 1}).json()
    assert (page["total"], len(page["alerts"])) == (4, 2)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 100_000}, "limit"),
        ({"site": "Not An Id"}, "site"),
        ({"state": "sleepy"}, "state"),
        ({"min_severity": "huge"}, "min_severity"),
        ({"since_ms": -1}, "since_ms"),
    ],
)
def test_bad_filters_name_the_field(app: App, params: dict[str, object], field: str) -> None:
    r = app.client.get("/api/alerts", headers=app.h["viewer"], params=params)
    assert r.status_code == 422
    assert field in r.json()["detail"][0]["loc"]


def test_alert_outside_areas_is_not_found(app: App) -> None:
    south = app.ids["south-sluices"]
    assert app.client.get(f"/api/alerts/{south}", headers=app.h["op-north"]).status_code == 404
    r = app.client.post(f"/api/alerts/{south}/ack", headers=app.h["op-north"], json={})
    assert r.status_code == 404
    assert app.client.get(f"/api/alerts/{south}", headers=app.h["op-south"]).status_code == 200


def test_lifecycle_actions_with_audit(app: App) -> None:
    aid = app.ids["north-sluices"]
    h = app.h["op-north"]
    app.clock.advance(1000)
    r = app.client.post(f"/api/alerts/{aid}/ack", headers=h, json={"note": "crew on the way"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "active_ack"
    again = app.client.post(f"/api/alerts/{aid}/ack", headers=h, json={})
    assert again.status_code == 409
    assert "cannot ack" in again.json()["detail"]["reason"]

    r = app.client.post(f"/api/alerts/{aid}/shelve", headers=h, json={"reason": "sensor swap", "duration_s": 3600})
    assert r.status_code == 200, r.text
    assert r.json()["shelved_until_ms"] == app.clock() + 3_600_000
    assert (
        app.client.post(f"/api/alerts/{aid}/shelve", headers=h, json={"reason": "again", "duration_s": 60}).status_code
        == 409
    )
    r = app.client.post(f"/api/alerts/{aid}/unshelve", headers=h, json={"reason": "swap done"})
    assert r.status_code == 200
    assert r.json()["shelved_until_ms"] is None
    r = app.client.post(f"/api/alerts/{aid}/notes", headers=h, json={"text": "level falling"})
    assert r.status_code == 200
    r = app.client.post(f"/api/alerts/{aid}/assign", headers=h, json={"assignee": "op-north"})
    assert r.status_code == 200
    assert r.json()["assignee"] == "op-north"
    bad = app.client.post(f"/api/alerts/{aid}/assign", headers=h, json={"assignee": "nobody"})
    assert bad.status_code == 422
    assert bad.json()["detail"]["field"] == "assignee"

    detail = app.client.get(f"/api/alerts/{aid}", headers=h).json()
    assert [x["action"] for x in detail["history"]] == ["raise", "ack", "shelve", "unshelve", "note", "assign"]
    assert [n["text"] for n in detail["notes"]] == ["crew on the way", "level falling"]
    audit = app.client.get("/api/audit", headers=app.h["boss"], params={"target_prefix": f"alert:{aid}"}).json()
    assert [(a["action"], a["who"]) for a in reversed(audit)] == [
        ("alert.ack", "op-north"),
        ("alert.shelve", "op-north"),
        ("alert.unshelve", "op-north"),
        ("alert.note", "op-north"),
        ("alert.assign", "op-north"),
    ]
    assert audit[-1]["detail"]["from_state"] == "active_unack"
    assert audit[-1]["detail"]["to_state"] == "active_ack"
    assert audit[0]["source"] == "testclient"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("shelve", {"reason": "", "duration_s": 60}, "reason"),
        ("shelve", {"reason": "x"}, "duration_s"),
        ("shelve", {"reason": "x", "duration_s": 10**9}, "duration_s"),
        ("notes", {"text": ""}, "text"),
        ("ack", {"note": "x", "extra": 1}, "extra"),
        ("assign", {"assignee": "Not A User"}, "assignee"),
    ],
)
def test_bad_bodies_name_the_field(app: App, path: str, body: dict[str, object], field: str) -> None:
    r = app.client.post(f"/api/alerts/{app.ids['north-sluices']}/{path}", headers=app.h["boss"], json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][-1] == field


def test_unknown_alert_is_404(app: App) -> None:
    assert app.client.get("/api/alerts/999999", headers=app.h["boss"]).status_code == 404
    assert app.client.post("/api/alerts/999999/ack", headers=app.h["boss"], json={}).status_code == 404
    assert app.client.get("/api/alerts/0", headers=app.h["boss"]).status_code == 422
    assert NOW_MS > 0


def _outbox(app: App) -> None:
    """A notification of the south and north alerts waiting on 'hook' (tried twice), a flood summary with no alert,
    and one refused for good on 'robot'."""
    store = app.service.store
    with store.begin() as tx:
        for site in ("north-sluices", "south-sluices"):
            tx.enqueue_notification(
                created_ms=NOW_MS,
                message_id=f"m-{site}",
                channels=["hook"],
                kind="raised",
                message={"title": f"Level high at {site}"},
                alert_id=app.ids[site],
            )
        tx.enqueue_notification(
            created_ms=NOW_MS, message_id="flood", channels=["hook"], kind="flood", message={}, alert_id=None
        )
        tx.enqueue_notification(
            created_ms=NOW_MS,
            message_id="m-robot",
            channels=["robot"],
            kind="raised",
            message={},
            alert_id=app.ids["north-sluices"],
        )
        for row in tx.claim_notifications(NOW_MS, 60_000, 10):
            if row.channel == "robot":
                tx.notification_failed(row.id, attempts=1, error="HTTP 400 from robot: bad key", now_ms=NOW_MS)
            else:
                tx.notification_retry(row.id, attempts=2, next_ms=NOW_MS + 4000, error="HTTP 503", now_ms=NOW_MS)


def test_the_notification_outbox_shows_what_waits_and_why(app: App) -> None:
    _outbox(app)
    r = app.client.get("/api/alerts/notifications", headers=app.h["viewer"])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["channels"] == [
        {"channel": "hook", "pending": 3, "failed": 0, "oldest_pending_ms": NOW_MS},
        {"channel": "robot", "pending": 0, "failed": 1, "oldest_pending_ms": None},
    ]
    rows = {(n["channel"], n["alert_id"]): n for n in body["notifications"]}
    assert len(rows) == 4
    hook = rows[("hook", app.ids["south-sluices"])]
    assert (hook["status"], hook["attempts"], hook["next_ms"], hook["last_error"]) == (
        "pending",
        2,
        NOW_MS + 4000,
        "HTTP 503",
    )
    assert hook["title"] == "Level high at south-sluices"
    robot = rows[("robot", app.ids["north-sluices"])]
    assert (robot["status"], robot["next_ms"], robot["last_error"]) == ("failed", None, "HTTP 400 from robot: bad key")
    failed = app.client.get("/api/alerts/notifications", headers=app.h["viewer"], params={"status": "failed"})
    assert [n["channel"] for n in failed.json()["notifications"]] == ["robot"]


def test_a_scoped_user_sees_the_outbox_rows_of_alerts_in_their_areas(app: App) -> None:
    _outbox(app)
    r = app.client.get("/api/alerts/notifications", headers=app.h["op-south"])
    assert r.status_code == 200, r.text
    assert [n["alert_id"] for n in r.json()["notifications"]] == [app.ids["south-sluices"]]
    assert app.client.get("/api/alerts/notifications").status_code == 401


def test_the_notification_log_says_what_was_sent_to_whom_and_when(app: App) -> None:
    with app.service.store.begin() as tx:
        for site, ok in (("north-sluices", True), ("south-sluices", False)):
            tx.add_notification(
                ts_ms=NOW_MS + 1000,
                message_id=f"m-{site}",
                kind="raised",
                audience="safety",
                channel="sms",
                channel_type="sms",
                target="+8613800000000",
                ok=ok,
                attempts=1 if ok else 3,
                error="" if ok else "gateway said 500",
                alert_id=app.ids[site],
                text=f"Level high at {site}",
            )
    for user in ("safety-north", "boss"):
        r = app.client.get("/api/alerts/notifications", headers=app.h[user])
        assert r.status_code == 200, r.text
        sent = {n["alert_id"]: n for n in r.json()["sent"]}
        north = sent[app.ids["north-sluices"]]
        assert (north["target"], north["channel"], north["ts_ms"], north["ok"]) == (
            "+8613800000000",
            "sms",
            NOW_MS + 1000,
            True,
        )
        assert (app.ids["south-sluices"] in sent) is (user == "boss")  # a scoped inspector: their areas only
    failed = app.client.get("/api/alerts/notifications", headers=app.h["boss"], params={"status": "failed"}).json()
    assert [(n["alert_id"], n["error"]) for n in failed["sent"]] == [(app.ids["south-sluices"], "gateway said 500")]
    one = app.client.get(
        "/api/alerts/notifications", headers=app.h["boss"], params={"alert_id": app.ids["north-sluices"]}
    ).json()
    assert [n["alert_id"] for n in one["sent"]] == [app.ids["north-sluices"]]


def test_an_alert_shows_its_points_current_value_beside_the_value_at_its_last_change(app: App) -> None:
    h = app.h["viewer"]
    north = app.ids["north-sluices"]
    before = app.client.get(f"/api/alerts/{north}", headers=h).json()
    assert (before["current_value"], before["current_state"]) == (None, "unknown")
    app.service.cache.apply_telemetry(
        Telemetry.model_validate(
            {
                "site": "north-sluices",
                "device": "gate-01",
                "profile": "sluice_gate_plc",
                "measurement": "sluice_gate",
                "seq": 1,
                "samples": [{"ts": app.clock() - 500, "values": {"level_up": 7.25}}],
            }
        )
    )
    now = app.client.get(f"/api/alerts/{north}", headers=h).json()
    assert now["value"] == 5.5  # the value at the last change
    assert (now["current_value"], now["current_time_ms"], now["current_point"]) == (7.25, app.clock() - 500, "level_up")
    assert now["current_state"] == "online"
    listed = {a["id"]: a for a in app.client.get("/api/alerts", headers=h).json()["alerts"]}
    assert listed[north]["current_value"] == 7.25
