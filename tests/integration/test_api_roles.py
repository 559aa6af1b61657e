"""Every role against every endpoint: a table of role x endpoint -> allowed or refused (403).

"Allowed" means the role passed the check: the answer is anything but 401 or 403 (a 404 for an id that does not
exist, a 409 from an interlock or a 503 from an unreachable InfluxDB still show the role got through). The API runs
in-process (Starlette's test client) without a broker or InfluxDB; the alert store holds one alert per site.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api import ApiService, create_app
from tests.integration.test_api_support import USERS, add_users, fill_alerts, make_config

ROLES = ["viewer", "op-north", "env-north", "safety-north", "boss"]
ANY = set(ROLES)
ALERTERS = {"op-north", "env-north", "safety-north", "boss"}
GATES = {"op-north", "boss"}
ADMIN = {"boss"}
ENV = {"env-north", "boss"}  # the environment indices: the environment officer and the admin
S, D = "north-sluices", "gate-01"

# (method, path, json body, roles allowed); {alert} is the id of the alert at north-sluices
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, set[str]]] = [
    ("GET", "/api/auth/me", None, ANY),
    ("POST", "/api/auth/password", {"old_password": "wrong-wrong-wrong", "new_password": "x" * 12}, ANY),
    ("GET", "/api/sites", None, ANY),
    ("GET", "/api/district", None, ANY),
    ("GET", f"/api/sites/{S}/devices", None, ANY),
    ("GET", f"/api/sites/{S}/devices/{D}", None, ANY),
    ("GET", f"/api/sites/{S}/latest", None, ANY),
    ("GET", f"/api/sites/{S}/devices/{D}/latest", None, ANY),
    ("GET", f"/api/sites/{S}/devices/{D}/history", None, ANY),
    ("GET", f"/api/sites/{S}/history?profile=sluice_gate_plc", None, ANY),
    ("GET", "/api/rules", None, ANY),
    ("GET", "/api/alerts", None, ANY),
    ("GET", "/api/alerts/{alert}", None, ANY),
    ("POST", "/api/alerts/{alert}/ack", {"note": "seen"}, ALERTERS),
    ("POST", "/api/alerts/{alert}/shelve", {"reason": "maintenance", "duration_s": 600}, ALERTERS),
    ("POST", "/api/alerts/{alert}/unshelve", {"reason": "done"}, ALERTERS),
    ("POST", "/api/alerts/{alert}/notes", {"text": "looked at it"}, ALERTERS),
    ("POST", "/api/alerts/{alert}/assign", {"assignee": "op-north"}, ALERTERS),
    ("POST", f"/api/gates/{S}/{D}/select", None, GATES),
    ("POST", f"/api/gates/{S}/{D}/commands", {"action": "open", "selection": "sel-none"}, GATES),
    ("GET", "/api/commands", None, ANY),
    ("GET", "/api/commands/c-none", None, ANY),
    ("GET", "/api/audit", None, ADMIN),
    ("GET", "/api/users", None, ADMIN),
    ("GET", "/api/areas", None, ADMIN),
    ("POST", "/api/users", {"username": "new-{role}", "password": "p" * 12, "role": "viewer"}, ADMIN),
    ("GET", "/api/users/viewer", None, ADMIN),
    ("PATCH", "/api/users/nobody", {"disabled": True}, ADMIN),
    ("DELETE", "/api/users/nobody", None, ADMIN),
    ("GET", "/api/tokens", None, ADMIN),
    ("POST", "/api/tokens", {"name": "scada-{role}", "username": "viewer"}, ADMIN),
    ("DELETE", "/api/tokens/999999", None, ADMIN),
    ("GET", "/api/env/aqi/latest", None, ENV),
    ("GET", f"/api/env/sites/{S}/devices/{D}/aqi", None, ENV),
    ("GET", "/api/env/water/classes", None, ENV),
    ("GET", f"/api/env/sites/{S}/devices/{D}/means?period=day", None, ENV),
    ("GET", "/healthz", None, ANY),
    ("GET", "/metrics", None, ANY),
]
CASES = [
    pytest.param(
        role,
        method,
        path,
        body,
        role in allowed,
        id=f"{role}-{method}-{path}-{'allowed' if role in allowed else 'refused'}",
    )
    for method, path, body, allowed in ENDPOINTS
    for role in ROLES
]


class App:
    def __init__(self, tmp_path: Path) -> None:
        self.service = ApiService(make_config(tmp_path))
        add_users(self.service)
        self.alerts = fill_alerts(self.service.store)
        self.client = TestClient(create_app(self.service, connect=False))
        self.client.__enter__()
        self.headers = {name: self._login(name) for name in USERS}

    def _login(self, name: str) -> dict[str, str]:
        r = self.client.post("/api/auth/login", json={"username": name, "password": "correct-horse-battery"})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    a = App(tmp_path_factory.mktemp("api-roles"))
    yield a
    a.client.__exit__(None, None, None)


@pytest.mark.parametrize(("role", "method", "path", "body", "allowed"), CASES)
def test_role_matrix(app: App, role: str, method: str, path: str, body: dict[str, Any] | None, allowed: bool) -> None:
    url = path.replace("{alert}", str(app.alerts[S]))
    if body is not None:
        body = {k: v.replace("{role}", role) if isinstance(v, str) else v for k, v in body.items()}
    r = app.client.request(method, url, json=body, headers=app.headers[role])
    if allowed:
        assert r.status_code not in (401, 403), f"{role} was refused {method} {url}: {r.status_code} {r.text}"
        assert r.status_code < 500 or r.status_code == 503, r.text  # 503: InfluxDB or the broker is not running
    else:
        assert r.status_code == 403, f"{role} was let through {method} {url}: {r.status_code} {r.text}"
        assert "may not" in r.text


@pytest.mark.parametrize(
    "path",
    [f"/api/sites/{S}/devices/{D}/history", f"/api/sites/{S}/history?profile=sluice_gate_plc"],
    ids=["device-history", "site-history"],
)
def test_history_is_scoped_to_the_users_areas(app: App, path: str) -> None:
    # every role may read history, but a scoped user only of the sites of its areas
    r = app.client.get(path, headers=app.headers["op-south"])
    assert r.status_code == 403, r.text
    assert r.json()["detail"]["field"] == "site"
    assert app.client.get(path.replace(S, "south-sluices"), headers=app.headers["op-south"]).status_code not in (
        401,
        403,
    )


@pytest.mark.parametrize(
    ("method", "path", "body", "_allowed"),
    [e for e in ENDPOINTS if not e[1].startswith(("/healthz", "/metrics"))],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_no_token_is_401(app: App, method: str, path: str, body: dict[str, Any] | None, _allowed: set[str]) -> None:
    url = path.replace("{alert}", str(app.alerts[S]))
    r = app.client.request(method, url, json=body, headers={"Authorization": "Bearer lls_not-a-token"})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert app.client.request(method, url, json=body).status_code == 401


def test_the_admin_lists_the_configured_areas(app: App) -> None:
    """The areas a user may be given, as configured, including an area whose sites have not reported yet."""
    areas = app.client.get("/api/areas", headers=app.headers["boss"]).json()
    assert areas
    assert {a["area"] for a in areas} == set(app.service.config.areas)
    assert all(a["sites"] == app.service.config.areas[a["area"]] for a in areas)
