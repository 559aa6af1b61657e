"""What MLPS 2.0 level 3 (GB/T 22239-2019 §8.1.4) asks of the API: a bounded request body, no echo of input in
errors, login throttling by user and address, a password policy and a forced change of admin-set passwords, an
idle timeout for login tokens, X-Forwarded-For only from trusted proxies, /docs from nowhere but the API, security
headers on every answer, and private files. In-process (Starlette's test client, whose ``client`` sets the peer's
address) or on a real uvicorn, without a broker or InfluxDB."""

from __future__ import annotations

import re
import sqlite3
import stat
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from api import ApiService, create_app
from api.service import BootstrapError
from infra.secret import write_secret_file
from tests.integration.test_api_support import PASSWORD, Clock, RunningApi, add_users, make_config

ATTACKER, OFFICE, PROXY = "198.51.100.7", "203.0.113.9", "10.1.2.3"
FAST_AUTH = {"argon2_time_cost": 1, "argon2_memory_kib": 64}


class App:
    def __init__(self, tmp_path: Path, **extra: Any) -> None:
        self.clock = Clock()
        self.service = ApiService(make_config(tmp_path, **extra), clock=self.clock)
        add_users(self.service)
        self.app = create_app(self.service, connect=False)
        self.client = TestClient(self.app)
        self.client.__enter__()  # runs the lifespan once; other clients below share the started service

    def client_at(self, address: str) -> TestClient:
        """A client whose requests come from ``address`` (the TCP peer the app sees)."""
        return TestClient(self.app, client=(address, 40000))

    def login(self, user: str, password: str = PASSWORD, client: TestClient | None = None) -> dict[str, str]:
        r = (client or self.client).post("/api/auth/login", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def close(self) -> None:
        self.client.__exit__(None, None, None)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    a = App(tmp_path, auth=FAST_AUTH)
    yield a
    a.close()


def _fail(client: TestClient, user: str, headers: dict[str, str] | None = None) -> httpx.Response:
    r: httpx.Response = client.post(
        "/api/auth/login", json={"username": user, "password": "not-the-password"}, headers=headers
    )
    return r


# -- 1. request body limit -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """A real uvicorn: chunked bodies as a client really sends them."""
    svc = ApiService(make_config(tmp_path_factory.mktemp("api-hardening"), auth=FAST_AUTH))
    add_users(svc)
    api = RunningApi(svc, connect=False)
    yield api
    api.stop()


def _login_body(size: int) -> bytes:
    head, tail = b'{"username": "viewer", "password": "', b'"}'
    return head + b"p" * (size - len(head) - len(tail)) + tail


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_65_kib_body_is_refused_with_413_before_parsing(served: RunningApi, chunked: bool) -> None:
    body = _login_body(65 * 1024)
    content: Any = iter([body[i : i + 4096] for i in range(0, len(body), 4096)]) if chunked else body
    r = served.client.post("/api/auth/login", content=content, headers={"Content-Type": "application/json"})
    assert (r.request.headers.get("transfer-encoding") == "chunked") is chunked
    assert ("content-length" in r.request.headers) is not chunked
    assert r.status_code == 413, r.text
    assert r.json()["detail"]["reason"] == "the request body is larger than 65536 bytes"
    assert r.json()["detail"]["code"] == "request.too_large"
    assert r.json()["detail"]["params"] == {"limit_bytes": 65536}
    assert r.headers["x-content-type-options"] == "nosniff"
    # the server is fine afterwards
    assert served.client.get("/healthz").status_code in (200, 503)


def test_a_body_at_the_limit_reaches_validation(served: RunningApi) -> None:
    r = served.client.post(
        "/api/auth/login", content=_login_body(64 * 1024), headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 422  # the password is longer than 256: parsed and refused, not cut off
    assert "ppppp" not in r.text


def test_the_limit_is_configurable(tmp_path: Path) -> None:
    a = App(tmp_path, auth=FAST_AUTH, http={"max_body_bytes": 2048})
    try:
        assert (
            a.client.post(
                "/api/auth/login", content=_login_body(2049), headers={"Content-Type": "application/json"}
            ).status_code
            == 413
        )
        assert (
            a.client.post(
                "/api/auth/login", content=_login_body(2048), headers={"Content-Type": "application/json"}
            ).status_code
            == 422
        )
    finally:
        a.close()


# -- 2. validation errors without the input -------------------------------------------------------------------

SECRET = "Tr0ub4dor-and-3-more-words"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/login", {"password": SECRET}),  # no username: FastAPI's default echoes the whole body
        ("/api/auth/login", {"username": "viewer", "password": SECRET * 20}),  # too long
        ("/api/auth/login", {"username": "viewer", "password": SECRET, "extra": SECRET}),
        ("/api/auth/login", [SECRET]),
        ("/api/auth/password", {"old_password": SECRET, "new_password": SECRET * 20}),
        ("/api/users", {"username": "new-user", "password": SECRET + "x" * 300, "role": "viewer"}),
    ],
    ids=["missing-name", "long-password", "extra-field", "not-an-object", "password-change", "new-user"],
)
def test_a_422_never_repeats_the_input(app: App, path: str, body: object) -> None:
    r = app.client.post(path, json=body, headers=app.login("boss"))
    assert r.status_code == 422, r.text
    assert SECRET not in r.text
    assert SECRET[:10] not in r.text
    errors = r.json()["detail"]
    assert errors
    for error in errors:
        assert set(error) == {"loc", "msg", "type", "code", "message", "params"}
        assert error["code"] == f"validation.{error['type']}"
        assert error["loc"][0] == "body"


def test_a_422_still_names_the_field(app: App) -> None:
    r = app.client.post("/api/auth/login", json={"password": SECRET})
    assert r.json()["detail"] == [
        {
            "loc": ["body", "username"],
            "msg": "Field required",
            "type": "missing",
            "code": "validation.missing",
            "message": "Field required",
            "params": {"field": "username"},
        }
    ]


# -- 3. login throttling by user and address --------------------------------------------------------------------


def test_failures_from_one_address_do_not_lock_the_user_out_elsewhere(app: App) -> None:
    attacker, office = app.client_at(ATTACKER), app.client_at(OFFICE)
    for _ in range(5):
        assert _fail(attacker, "boss").status_code == 401
    blocked = attacker.post("/api/auth/login", json={"username": "boss", "password": PASSWORD})
    assert blocked.status_code == 429  # even the right password, from there
    assert blocked.json()["detail"]["field"] == "username"
    assert "from your address" in blocked.json()["detail"]["reason"]
    assert 1 <= int(blocked.headers["Retry-After"]) <= 300
    app.login("boss", client=office)  # the admin logs in from the office all the while
    blocks = app.service.store.audit_log(action="auth.login_blocked")
    assert [(b.who, b.source, b.target) for b in blocks] == [("boss", ATTACKER, "user:boss")]  # once
    app.clock.advance(301_000)
    app.login("boss", client=attacker)


def test_failures_across_many_names_block_the_address(app: App) -> None:
    attacker, office = app.client_at(ATTACKER), app.client_at(OFFICE)
    for i in range(20):
        assert _fail(attacker, f"guess-{i}").status_code == 401
    r = attacker.post("/api/auth/login", json={"username": "viewer", "password": PASSWORD})
    assert r.status_code == 429
    assert r.json()["detail"]["reason"].startswith("too many failed logins from your address")
    assert int(r.headers["Retry-After"]) == 300
    app.login("viewer", client=office)
    assert [b.target for b in app.service.store.audit_log(action="auth.login_blocked")] == [f"address:{ATTACKER}"]


def test_throttle_limits_are_configured(tmp_path: Path) -> None:
    a = App(tmp_path, auth={**FAST_AUTH, "login_throttle": {"pair_max_failures": 2, "block_s": 60}})
    try:
        attacker = a.client_at(ATTACKER)
        assert [_fail(attacker, "viewer").status_code for _ in range(3)] == [401, 401, 429]
        a.clock.advance(60_000)
        assert _fail(attacker, "viewer").status_code == 401
    finally:
        a.close()


# -- 4. password policy and the forced change -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("password123456", "commonly used"),
        ("new-officer-wu", "user name"),
        ("New-Officer-Wu", "user name"),
    ],
    ids=["common", "user-name", "user-name-other-case"],
)
def test_an_admin_cannot_give_a_weak_password(app: App, password: str, reason: str) -> None:
    body = {"username": "new-officer-wu", "password": password, "role": "environment_officer", "areas": ["north"]}
    r = app.client.post("/api/users", headers=app.login("boss"), json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["field"] == "password"
    assert reason in r.json()["detail"]["reason"]
    assert password not in r.text


def test_a_user_an_admin_created_must_change_the_password_first(app: App) -> None:
    admin = app.login("boss")
    given = "handed-over-on-paper-7"
    body = {"username": "wu", "password": given, "role": "environment_officer", "areas": ["north"]}
    created = app.client.post("/api/users", headers=admin, json=body)
    assert created.status_code == 201, created.text
    assert created.json()["must_change_password"] is True
    wu = app.login("wu", given)  # the login works ...
    for method, path in [("GET", "/api/sites"), ("GET", "/api/alerts"), ("GET", "/api/rules")]:
        r = app.client.request(method, path, headers=wu)  # ... but nothing else does
        assert r.status_code == 403, r.text
        assert r.json()["detail"]["must_change_password"] is True
        assert "change the one-time password first" in r.json()["detail"]["reason"]
    assert app.client.get("/api/auth/me", headers=wu).json()["must_change_password"] is True
    weak = app.client.post(
        "/api/auth/password", headers=wu, json={"old_password": given, "new_password": "password123456"}
    )
    assert weak.status_code == 422
    assert weak.json()["detail"]["field"] == "new_password"
    own = "wu-walks-the-north-dyke"
    assert (
        app.client.post("/api/auth/password", headers=wu, json={"old_password": given, "new_password": own}).status_code
        == 204
    )
    wu = app.login("wu", own)
    assert app.client.get("/api/sites", headers=wu).status_code == 200
    # an admin resetting the password makes it one-time again
    reset = app.client.patch("/api/users/wu", headers=admin, json={"password": "another-paper-slip-8"})
    assert reset.status_code == 200
    assert reset.json()["must_change_password"] is True
    assert app.client.get("/api/sites", headers=app.login("wu", "another-paper-slip-8")).status_code == 403


def test_a_weak_admin_password_from_the_environment_is_refused(tmp_path: Path) -> None:
    service = ApiService(make_config(tmp_path, auth=FAST_AUTH))
    try:
        with pytest.raises(BootstrapError, match="LIFELINE_ADMIN_PASSWORD: this is a commonly used password"):
            service.bootstrap_admin({"LIFELINE_ADMIN_PASSWORD": "password123456"})
        assert service.users.count() == 0
    finally:
        service.engine.dispose()
        service.store.close()


def test_the_admin_password_may_come_from_a_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "admin.password"
    write_secret_file(secret, "a-long-paper-slip-21\n")
    service = ApiService(make_config(tmp_path, auth={**FAST_AUTH, "bootstrap_password": {"file": str(secret)}}))
    try:
        assert "a-long-paper-slip-21" not in repr(service.config) + str(service.config.model_dump())
        assert service.bootstrap_admin({}) is None  # the given password: nothing to print
        assert service.users.count() == 1
    finally:
        service.engine.dispose()
        service.store.close()


def test_an_admin_changing_their_own_password_is_not_forced_again(app: App) -> None:
    admin = app.login("boss")
    r = app.client.patch("/api/users/boss", headers=admin, json={"password": "boss-new-long-phrase"})
    assert r.status_code == 200
    assert r.json()["must_change_password"] is False


# -- 5. idle timeout -------------------------------------------------------------------------------------------


def test_an_idle_login_token_is_refused_and_revoked(app: App) -> None:
    h = app.login("viewer")
    assert app.service.config.auth.idle_timeout_s == 1800  # the default
    for _ in range(3):  # every use within 30 minutes keeps it alive, well past 30 minutes in all
        app.clock.advance(29 * 60_000)
        assert app.client.get("/api/auth/me", headers=h).status_code == 200
    app.clock.advance(30 * 60_000 + 1)
    r = app.client.get("/api/auth/me", headers=h)
    assert r.status_code == 401
    assert "idle" in r.json()["detail"]["reason"]
    assert [t.revoked for t in app.service.users.list_tokens("session")] == [True]
    app.login("viewer")


def test_last_use_is_written_at_most_once_a_minute(app: App) -> None:
    h = app.login("viewer")
    start = app.clock()

    def last_used() -> int | None:
        return app.service.users.list_tokens("session")[0].last_used_ms

    app.client.get("/api/auth/me", headers=h)
    assert last_used() == start  # the first use is written
    app.clock.advance(30_000)
    app.client.get("/api/auth/me", headers=h)
    assert last_used() == start  # 30 s later: no write
    app.clock.advance(30_000)
    app.client.get("/api/auth/me", headers=h)
    assert last_used() == start + 60_000


# -- 6. X-Forwarded-For ----------------------------------------------------------------------------------------


def _failed_login_source(client: TestClient, app: App, xff: str | None) -> str:
    headers = {"X-Forwarded-For": xff} if xff else {}
    _fail(client, "viewer", headers=headers)
    return app.service.store.audit_log(action="auth.login_failed")[0].source


def test_x_forwarded_for_from_an_untrusted_peer_is_ignored(app: App) -> None:
    assert _failed_login_source(app.client_at(ATTACKER), app, "192.0.2.1") == ATTACKER


def test_x_forwarded_for_from_a_trusted_proxy_is_used(tmp_path: Path) -> None:
    a = App(tmp_path, auth=FAST_AUTH, http={"trusted_proxies": ["10.0.0.0/8", "127.0.0.1"]})
    try:
        proxy = a.client_at(PROXY)
        assert _failed_login_source(proxy, a, ATTACKER) == ATTACKER
        # the client may send its own X-Forwarded-For: the proxy appends what it saw, and that is what counts
        assert _failed_login_source(proxy, a, f"192.0.2.1, {OFFICE}") == OFFICE
        assert _failed_login_source(a.client_at(OFFICE), a, "192.0.2.1") == OFFICE  # not a proxy
        # the throttle counts the real client, not the proxy: the attacker is blocked, the office is not
        for _ in range(5):
            _fail(proxy, "boss", headers={"X-Forwarded-For": ATTACKER})
        assert _fail(proxy, "boss", headers={"X-Forwarded-For": ATTACKER}).status_code == 429
        ok = proxy.post(
            "/api/auth/login", json={"username": "boss", "password": PASSWORD}, headers={"X-Forwarded-For": OFFICE}
        )
        assert ok.status_code == 200
    finally:
        a.close()


def test_a_real_server_on_loopback_ignores_x_forwarded_for_by_default(served: RunningApi) -> None:
    # uvicorn itself trusts 127.0.0.1 unless told not to: the API runs it with its proxy handling off
    served.client.post(
        "/api/auth/login",
        json={"username": "nobody-xff", "password": "not-the-password"},
        headers={"X-Forwarded-For": "192.0.2.77"},
    )
    assert served.service.store.audit_log(who="nobody-xff")[0].source == "127.0.0.1"


# -- 7. /docs from the API alone -------------------------------------------------------------------------------


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.inline: list[str] = []
        self._tag = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._tag = tag
        self.refs += [v for k, v in attrs if k in ("src", "href", "data-openapi-url") and v]
        self.inline += [f"<{tag} {k}>" for k, _ in attrs if k.startswith("on") or k == "style"]
        if tag == "style":
            self.inline.append("<style>")

    def handle_data(self, data: str) -> None:
        if self._tag == "script" and data.strip():
            self.inline.append("inline script")


def _csp(header: str) -> dict[str, list[str]]:
    return {d.split()[0]: d.split()[1:] for d in (p.strip() for p in header.split(";")) if d}


def test_docs_load_nothing_from_another_host(app: App) -> None:
    first = app.client.get("/docs", follow_redirects=False)
    assert first.status_code == 302
    assert first.headers["location"] == "docs/"
    page = app.client.get("/docs/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    parsed = _Refs()
    parsed.feed(page.text)
    assert not parsed.inline
    assert sorted(parsed.refs) == [
        "../openapi.json",
        "docs.css",
        "favicon.png",
        "init.js",
        "swagger-ui-bundle.js",
        "swagger-ui.css",
    ]
    for ref in parsed.refs:
        assert "//" not in ref
        assert ":" not in ref
        asset = app.client.get(httpx.URL("http://testserver/docs/").join(ref))
        assert asset.status_code == 200, ref
    init = app.client.get("/docs/init.js").text
    assert "validatorUrl: null" in init
    assert "http" not in init
    assert len(app.client.get("/docs/swagger-ui-bundle.js").content) > 500_000
    policy = _csp(page.headers["content-security-policy"])
    assert policy["default-src"] == ["'none'"]
    for directive, sources in policy.items():
        assert set(sources) <= {"'self'", "'none'"}, directive
    for icon in re.findall(r"url\(([^)]+)\)", app.client.get("/docs/docs.css").text):
        assert app.client.get(f"/docs/{icon}").headers["content-type"] == "image/svg+xml", icon
    for gone in ("/redoc", "/docs/oauth2-redirect", "/docs/index.html", "/docs/swagger-initializer.js"):
        assert app.client.get(gone).status_code == 404, gone


def test_every_icon_swagger_ui_draws_from_a_data_url_is_drawn_from_a_file(app: App) -> None:
    """The CSP (img-src 'self') refuses data: URLs; docs.css must cover each rule of Swagger UI's sheet that uses
    one (checked in a browser: no CSP violation with operations, models and the Authorize dialog open)."""
    ours = app.client.get("/docs/docs.css").text
    theirs = app.client.get("/docs/swagger-ui.css").text
    selectors = [
        sel for sel, body in re.findall(r"([^{}]+)\{([^{}]*)\}", theirs) if 'url("data:' in body or "url(data:" in body
    ]
    wanted = {part.strip() for sel in selectors for part in sel.split(",") if ".debug" not in part}
    assert wanted
    assert wanted <= {
        part.strip()
        for sel, _ in re.findall(r"([^{}]+)\{([^{}]*)\}", ours)
        for part in re.sub(r"/\*.*?\*/", "", sel, flags=re.S).split(",")
    }


# -- 8. security headers on JSON answers ------------------------------------------------------------------------

JSON_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


@pytest.mark.parametrize(
    ("method", "path", "auth"),
    [
        ("GET", "/api/auth/me", True),
        ("GET", "/api/auth/me", False),  # 401
        ("GET", "/api/sites", True),
        ("POST", "/api/auth/login", False),  # 422
        ("GET", "/api/nothing-here", False),  # 404
        ("GET", "/healthz", False),
        ("GET", "/openapi.json", False),
    ],
    ids=["me", "401", "sites", "422", "404", "healthz", "openapi"],
)
def test_security_headers_on_json_answers(app: App, method: str, path: str, auth: bool) -> None:
    r = app.client.request(
        method, path, headers=app.login("viewer") if auth else {}, json={} if method == "POST" else None
    )
    for name, value in JSON_HEADERS.items():
        assert r.headers[name] == value, (name, r.status_code)
    assert _csp(r.headers["content-security-policy"])["default-src"] == ["'none'"]
    assert _csp(r.headers["content-security-policy"])["frame-ancestors"] == ["'none'"]


def test_the_console_keeps_its_own_policy_and_gets_the_rest(app: App) -> None:
    r = app.client.get("/console/")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-frame-options"] == "DENY"


# -- 10. private files -----------------------------------------------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_store_and_its_wal_and_shm_files_are_0600(app: App, tmp_path: Path) -> None:
    app.login("viewer")  # writes: the WAL and its index exist now
    db = tmp_path / "api.sqlite"
    files = [db, db.with_name("api.sqlite-wal"), db.with_name("api.sqlite-shm")]
    assert all(f.exists() for f in files)
    assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}


def test_an_existing_store_with_a_loose_mode_is_tightened(tmp_path: Path) -> None:
    db = tmp_path / "api.sqlite"
    with sqlite3.connect(db) as conn:  # a store from before, made under a umask of 022
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x)")
    db.chmod(0o644)
    service = ApiService(make_config(tmp_path, auth=FAST_AUTH))
    try:
        assert _mode(db) == 0o600
    finally:
        service.engine.dispose()
        service.store.close()
