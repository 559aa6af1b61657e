"""Changing a password (issue 24): wrong old passwords throttled by the login throttle (one count for both), every
failure and the change audited with the user and the client's address, and a new password ends every token of the
user: its sessions and its machine tokens (each revocation audited)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import ApiService, create_app
from tests.integration.test_api_support import PASSWORD, Clock, add_users, make_config

NEW = "a-fresh-tide-table-2026"
WRONG = "not-the-password-at-all"
ADDRESS = "testclient"  # the TestClient's peer address, as the audit log records it


class App:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = Clock()
        auth = {
            "argon2_time_cost": 1,
            "argon2_memory_kib": 64,
            "login_throttle": {"pair_max_failures": 3, "address_max_failures": 50, "window_s": 300, "block_s": 300},
        }
        self.service = ApiService(make_config(tmp_path, auth=auth), clock=self.clock)
        add_users(self.service)
        self.client = TestClient(create_app(self.service, connect=False))
        self.client.__enter__()

    def login(self, user: str, password: str = PASSWORD) -> dict[str, str]:
        r = self.client.post("/api/auth/login", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def change(self, headers: dict[str, str], old: str, new: str = NEW) -> tuple[int, dict[str, object]]:
        r = self.client.post("/api/auth/password", headers=headers, json={"old_password": old, "new_password": new})
        return r.status_code, (r.json() if r.content else {})

    def audit(self, action: str) -> list[tuple[str, str, str, dict[str, object]]]:
        rows = self.service.store.audit_log(action=action)[::-1]  # oldest first
        return [(r.who, r.target, r.source, dict(r.detail or {})) for r in rows]


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = App(tmp_path)
    yield a
    a.client.__exit__(None, None, None)


def test_wrong_old_passwords_are_throttled_audited_and_end_the_guessing_session(app: App) -> None:
    stolen = app.login("viewer")  # a session someone else holds: it does not know the password
    for i in range(2):
        status, body = app.change(stolen, WRONG)
        assert (status, body["detail"]["code"]) == (422, "password.old_wrong"), i  # type: ignore[index]
    status, _ = app.change(stolen, WRONG)  # the third: the block starts, and the session that guessed ends
    assert status == 422
    assert app.client.get("/api/auth/me", headers=stolen).status_code == 401
    failed = app.audit("auth.password_change_failed")
    assert [(who, target, source) for who, target, source, _ in failed] == [("viewer", "user:viewer", ADDRESS)] * 3
    assert [d["reason"] for *_, d in failed] == ["password.old_wrong"] * 3
    assert [d["token_ended"] for *_, d in failed] == [False, False, True]
    blocked = app.audit("auth.password_change_blocked")
    assert [(who, target, source, d["scope"]) for who, target, source, d in blocked] == [
        ("viewer", "user:viewer", ADDRESS, "user")
    ]
    # the same throttle refuses the user's logins from that address (one count for logins and changes) ...
    r = app.client.post("/api/auth/login", json={"username": "viewer", "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["detail"]["code"] == "auth.throttled_user"
    assert int(r.headers["Retry-After"]) == 300
    # ... until the block is over
    app.clock.advance(300_000)
    fresh = app.login("viewer")
    assert app.change(fresh, PASSWORD)[0] == 204


def test_a_blocked_change_is_refused_before_the_password_is_checked(app: App) -> None:
    for _ in range(3):  # failed logins count against a password change too
        app.client.post("/api/auth/login", json={"username": "op-north", "password": WRONG})
    app.clock.advance(1_000)
    session = app.service.users.issue("op-north", "session", "login", None)[1]  # a session from before the block
    status, body = app.change({"Authorization": f"Bearer {session}"}, PASSWORD)
    assert status == 429
    assert body["detail"] == {
        "code": "auth.throttled_user",
        "message": "too many failed logins for this user from your address: try again in 299 s",
        "params": {"wait_s": 299},
        "reason": "too many failed logins for this user from your address: try again in 299 s",
        "field": "old_password",
    }
    assert app.service.users.check_password("op-north", PASSWORD) is not None  # unchanged


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        pytest.param("short", "password.too_short", id="too-short"),
        pytest.param("password123456", "password.common", id="common"),
        pytest.param(PASSWORD, "password.unchanged", id="unchanged"),
    ],
)
def test_a_refused_new_password_is_audited_and_not_counted(app: App, new: str, reason: str) -> None:
    h = app.login("env-north")
    for _ in range(4):  # more than the throttle's 3: a right old password with a refused new one is no guess
        status, _ = app.change(h, PASSWORD, new)
        assert status == 422
    failed = app.audit("auth.password_change_failed")
    assert [(who, source, d["reason"]) for who, _, source, d in failed] == [("env-north", ADDRESS, reason)] * 4
    assert app.audit("auth.password_change_blocked") == []
    assert app.change(h, PASSWORD)[0] == 204


def test_a_new_password_revokes_sessions_and_machine_tokens_each_audited(app: App) -> None:
    boss = app.login("boss")
    made = []
    for name, user in (("scada-export", "op-south"), ("wall-screen", "op-south"), ("other", "viewer")):
        r = app.client.post("/api/tokens", headers=boss, json={"name": name, "username": user})
        assert r.status_code == 201, r.text
        made.append((r.json()["id"], r.json()["token"]))
    machine = {"Authorization": f"Bearer {made[0][1]}"}
    assert app.client.get("/api/sites", headers=machine).status_code == 200
    own, elsewhere = app.login("op-south"), app.login("op-south")

    assert app.change(own, PASSWORD)[0] == 204

    for headers in (own, elsewhere, machine, {"Authorization": f"Bearer {made[1][1]}"}):
        assert app.client.get("/api/sites", headers=headers).status_code == 401
    assert app.client.get("/api/sites", headers={"Authorization": f"Bearer {made[2][1]}"}).status_code == 200
    changed = app.audit("auth.password_changed")
    assert [(who, target, source) for who, target, source, _ in changed] == [("op-south", "user:op-south", ADDRESS)]
    assert changed[0][3]["machine_tokens_revoked"] == [made[0][0], made[1][0]]
    revoked = app.audit("token.revoke")
    assert sorted((who, target, d["reason"], d["for"]) for who, target, _, d in revoked) == [
        ("op-south", f"token:{made[0][0]}", "password_changed", "op-south"),
        ("op-south", f"token:{made[1][0]}", "password_changed", "op-south"),
    ]
    tokens = {t["id"]: t["revoked"] for t in app.client.get("/api/tokens", headers=boss).json()}
    assert tokens == {made[0][0]: True, made[1][0]: True, made[2][0]: False}
    assert app.client.get("/api/sites", headers=app.login("op-south", NEW)).status_code == 200


def test_an_admin_reset_revokes_the_users_machine_tokens_too(app: App) -> None:
    boss = app.login("boss")
    r = app.client.post("/api/tokens", headers=boss, json={"name": "export", "username": "viewer"})
    token_id, token = r.json()["id"], r.json()["token"]
    r = app.client.patch("/api/users/viewer", headers=boss, json={"password": "another-paper-slip-8"})
    assert r.status_code == 200, r.text
    assert app.client.get("/api/sites", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    update = app.audit("user.update")
    assert update[0][3]["machine_tokens_revoked"] == [token_id]
    revoked = app.audit("token.revoke")
    assert [(who, target, d["for"]) for who, target, _, d in revoked] == [("boss", f"token:{token_id}", "viewer")]
