"""Login, the bootstrap admin and its one-time password, session expiry, machine tokens, user management."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import ApiService, create_app
from tests.integration.test_api_support import PASSWORD, Clock, add_users, make_config


class App:
    def __init__(self, tmp_path: Path, **extra: Any) -> None:  # make_config's keywords
        self.clock = Clock()
        self.service = ApiService(make_config(tmp_path, **extra), clock=self.clock)
        self.client = TestClient(create_app(self.service, connect=False))
        self.client.__enter__()

    def login(self, user: str, password: str = PASSWORD) -> dict[str, str]:
        r = self.client.post("/api/auth/login", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = App(
        tmp_path,
        auth={"argon2_time_cost": 1, "argon2_memory_kib": 64, "session_lifetime_s": 3600, "idle_timeout_s": 3600},
    )  # idle timeout: test_api_hardening
    yield a
    a.client.__exit__(None, None, None)


def test_bootstrap_admin_with_one_time_password(app: App) -> None:
    password = app.service.bootstrap_admin({})
    assert password is not None
    assert len(password) >= 20
    assert app.service.bootstrap_admin({}) is None  # users exist: nothing created, nothing printed
    h = app.login("admin", password)
    assert app.client.get("/api/auth/me", headers=h).json()["must_change_password"] is True
    refused = app.client.get("/api/users", headers=h)
    assert refused.status_code == 403
    assert "one-time password" in refused.text
    short = app.client.post("/api/auth/password", headers=h, json={"old_password": password, "new_password": "x"})
    assert short.status_code == 422
    assert short.json()["detail"]["field"] == "new_password"
    r = app.client.post("/api/auth/password", headers=h, json={"old_password": password, "new_password": PASSWORD})
    assert r.status_code == 204
    assert app.client.get("/api/users", headers=h).status_code == 401  # a new password ends the sessions
    assert app.client.get("/api/users", headers=app.login("admin")).status_code == 200


def test_bootstrap_admin_from_environment(app: App) -> None:
    assert app.service.bootstrap_admin({"LIFELINE_ADMIN_PASSWORD": PASSWORD}) is None
    h = app.login("admin")
    assert app.client.get("/api/auth/me", headers=h).json()["must_change_password"] is False
    assert app.client.get("/api/users", headers=h).status_code == 200


def test_wrong_password_is_401_and_audited(app: App) -> None:
    add_users(app.service)
    for user in ("viewer", "nobody"):
        r = app.client.post("/api/auth/login", json={"username": user, "password": "wrong-password!"})
        assert r.status_code == 401
    rows = app.service.store.audit_log(action="auth.login_failed")
    assert {r.who for r in rows} == {"viewer", "nobody"}
    assert rows[0].source == "testclient"


def test_five_failed_logins_block_the_name_for_five_minutes(app: App) -> None:
    add_users(app.service)
    guess = {"username": "viewer", "password": "guess-guess!"}
    for _ in range(5):
        assert app.client.post("/api/auth/login", json=guess).status_code == 401
    blocked = app.client.post("/api/auth/login", json={"username": "viewer", "password": PASSWORD})
    assert blocked.status_code == 429  # even the right password, while blocked
    assert blocked.json()["detail"]["field"] == "username"
    assert 1 <= int(blocked.headers["Retry-After"]) <= 300
    assert app.client.post("/api/auth/login", json={"username": "boss", "password": PASSWORD}).status_code == 200
    app.clock.advance(301_000)
    app.login("viewer")


def test_session_expires(app: App) -> None:
    add_users(app.service)
    h = app.login("viewer")
    app.clock.advance(3_599_000)
    assert app.client.get("/api/auth/me", headers=h).status_code == 200
    app.clock.advance(1_000)
    assert app.client.get("/api/auth/me", headers=h).status_code == 401


def test_logout_ends_the_session(app: App) -> None:
    add_users(app.service)
    h = app.login("viewer")
    assert app.client.post("/api/auth/logout", headers=h).status_code == 204
    assert app.client.get("/api/auth/me", headers=h).status_code == 401


def test_api_token_shown_once_used_and_revoked(app: App) -> None:
    add_users(app.service)
    admin = app.login("boss")
    r = app.client.post(
        "/api/tokens", headers=admin, json={"name": "scada link", "username": "viewer", "lifetime_days": 30}
    )
    assert r.status_code == 201, r.text
    token, token_id = r.json()["token"], r.json()["id"]
    assert token.startswith("llt_")
    assert r.json()["expires_ms"] == app.clock() + 30 * 86_400_000
    listed = app.client.get("/api/tokens", headers=admin).json()
    assert [t["name"] for t in listed] == ["scada link"]
    assert "token" not in listed[0]
    machine = {"Authorization": f"Bearer {token}"}
    assert app.client.get("/api/auth/me", headers=machine).json()["username"] == "viewer"
    assert app.client.get("/api/users", headers=machine).status_code == 403  # it acts with the viewer's role
    assert app.client.get("/api/tokens", headers=admin).json()[0]["last_used_ms"] == app.clock()
    assert app.client.delete(f"/api/tokens/{token_id}", headers=admin).status_code == 204
    assert app.client.get("/api/auth/me", headers=machine).status_code == 401


def test_user_management(app: App) -> None:
    add_users(app.service)
    admin = app.login("boss")
    body = {"username": "ana", "password": "ana-password-1", "role": "environment_officer", "areas": ["north"]}
    assert app.client.post("/api/users", headers=admin, json=body).status_code == 201
    assert app.client.post("/api/users", headers=admin, json=body).status_code == 409
    bad_area = app.client.post("/api/users", headers=admin, json={**body, "username": "bo", "areas": ["mars"]})
    assert bad_area.status_code == 422
    assert bad_area.json()["detail"]["field"] == "areas"
    weak = app.client.post("/api/users", headers=admin, json={**body, "username": "cy", "password": "short"})
    assert weak.status_code == 422
    assert weak.json()["detail"][0]["loc"][-1] == "password"
    ana = app.login("ana", "ana-password-1")
    r = app.client.patch("/api/users/ana", headers=admin, json={"disabled": True})
    assert r.status_code == 200
    assert r.json()["disabled"] is True
    assert app.client.get("/api/auth/me", headers=ana).status_code == 401
    assert app.client.post("/api/auth/login", json={"username": "ana", "password": "ana-password-1"}).status_code == 401
    last = app.client.patch("/api/users/boss", headers=admin, json={"role": "viewer"})
    assert last.status_code == 409
    assert last.json()["detail"]["field"] == "role"
    assert app.client.delete("/api/users/boss", headers=admin).status_code == 409
    assert app.client.delete("/api/users/ana", headers=admin).status_code == 204
    assert app.client.get("/api/users/ana", headers=admin).status_code == 404
    actions = [r.action for r in app.service.store.audit_log(who="boss")]
    assert {"user.create", "user.update", "user.delete", "auth.login"} <= set(actions)


def test_the_api_runs_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """Users, tokens, the audit log and alert actions with the store on a real PostgreSQL (several instances)."""
    from alerts.lifecycle import Alert, AlertKey, Severity, raise_
    from alerts.store import AlertMeta

    a = App(tmp_path, store={"url": postgres_url}, auth={"argon2_time_cost": 1, "argon2_memory_kib": 64})
    try:
        a.service.bootstrap_admin({"LIFELINE_ADMIN_PASSWORD": PASSWORD})
        admin = a.login("admin")
        r = a.client.post(
            "/api/users",
            headers=admin,
            json={"username": "inspector-li", "password": PASSWORD, "role": "safety_inspector", "areas": ["north"]},
        )
        assert r.status_code == 201, r.text
        alert = Alert(AlertKey("gas.lel", "north-sluices", "gas-1", "lel"))
        raise_(alert, Severity.CRITICAL, 57.0, a.clock() - 1000)
        with a.service.store.begin() as tx:
            stored = tx.save(alert, AlertMeta("Combustible gas", "safety", "north", "gas_detector"), None)
        first = a.login("inspector-li")  # an admin set the password: it must be replaced first
        changed = a.client.post(
            "/api/auth/password",
            headers=first,
            json={"old_password": PASSWORD, "new_password": "li-own-passphrase-2026"},
        )
        assert changed.status_code == 204, changed.text
        li = a.login("inspector-li", "li-own-passphrase-2026")
        r = a.client.post(f"/api/alerts/{stored.id}/ack", headers=li, json={"note": "on my way"})
        assert r.status_code == 200, r.text
        assert a.client.get(f"/api/alerts/{stored.id}", headers=li).json()["state"] == "active_ack"
        actions = {row.action for row in a.service.store.audit_log()}
        assert {"auth.login", "user.create", "alert.ack"} <= actions, actions
    finally:
        a.client.__exit__(None, None, None)
