"""The web console the API serves: one page, one script, one style sheet. Served at ``/`` and ``/console/``, with a
strict Content-Security-Policy; it references only its own files, calls only paths of the API's OpenAPI spec, and
loads nothing from another host. The API runs in-process (Starlette's test client) without a broker or InfluxDB."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import ApiService, create_app
from api.app import CONSOLE_DIR
from tests.integration.test_api_support import USERS, add_users, login, make_config

ROOT = Path(__file__).resolve().parents[2]
JS = CONSOLE_DIR / "console.js"
# Namespace names are identifiers, never fetched: the only http URL a console file may hold.
NAMESPACES = {"http://www.w3.org/2000/svg"}
VENDOR_HOMES = {"https://github.com/leeoniya/uPlot"}  # api/console/vendor/uPlot.iife.min.js's licence banner
# What the console is for (the brief's list): each of these must be called somewhere in its script.
REQUIRED = {
    "/api/auth/login",
    "/api/auth/password",
    "/api/auth/logout",
    "/api/auth/me",
    "/api/district",
    "/api/sites/{site}/devices",
    "/api/sites/{site}/latest",
    "/api/sites/{site}/devices/{device}/latest",
    "/api/sites/{site}/devices/{device}/history",
    "/api/alerts",
    "/api/alerts/{alert_id}",
    "/api/alerts/{alert_id}/ack",
    "/api/alerts/{alert_id}/shelve",
    "/api/alerts/{alert_id}/unshelve",
    "/api/alerts/{alert_id}/notes",
    "/api/gates/{site}/{device}/select",
    "/api/gates/{site}/{device}/commands",
    "/api/commands/{command_id}",
    "/api/stream",
    "/api/alerts/{alert_id}/assign",
    "/api/gates/{site}/{device}/limits",
    "/api/profiles/{name}",
    "/api/users",
    "/api/audit",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    district = {
        "title": "Test district",
        "sites": {
            "north-sluices": {"title": "North sluices", "river": "North river", "area": "Upper town", "km": 1.5},
            "south-sluices": {"river": "North river", "km": 12},
        },
    }
    service = ApiService(make_config(tmp_path_factory.mktemp("api-console"), district=district))
    add_users(service)
    with TestClient(create_app(service, connect=False)) as c:
        yield c


class _Page(HTMLParser):
    """The page's references (src and href), its scripts and any attribute a strict CSP would block."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.inline: list[str] = []  # inline handlers (onclick=...) and style attributes
        self.script_text = ""
        self.ids: set[str] = set()
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("src", "href") and value:
                self.refs.append(value)
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}>")
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True
        if tag == "style":
            self.inline.append("<style>")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def _page(client: TestClient) -> _Page:
    page = _Page()
    page.feed(client.get("/console/").text)
    return page


def _js_paths() -> list[str]:
    """Every API path the script names, as written: string literals and template literals (``${...}`` parts
    become ``{}``), without their query strings."""
    text = JS.read_text()
    found = [m.group(2) for m in re.finditer(r"([\"'`])(/api/[^\"'`]*)\1", text)]
    # a path built any other way would escape the check below
    assert len(found) == text.count("/api/"), "every /api/ path in the script is one literal"
    return sorted({re.sub(r"\$\{[^}]*\}", "{}", p).split("?")[0] for p in found})


def _matches(js_path: str, spec_path: str) -> bool:
    """A literal segment must equal the spec's; a ``${...}`` segment must stand where the spec has a parameter."""
    js, spec = js_path.strip("/").split("/"), spec_path.strip("/").split("/")
    if len(js) != len(spec):
        return False
    is_param = [re.fullmatch(r"\{\w+\}", s) is not None for s in spec]
    return all(param if "{}" in j else j == s for j, s, param in zip(js, spec, is_param, strict=True))


def test_root_leads_to_the_page(client: TestClient) -> None:
    r = client.get("/", follow_redirects=False)
    assert r.status_code in (301, 302, 303, 307, 308)
    r = client.get("/")
    assert r.status_code == 200
    assert r.url.path == "/console/"
    assert r.headers["content-type"].startswith("text/html")
    assert "<title>Lifeline console</title>" in r.text


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/console/", "text/html"),
        ("/console/index.html", "text/html"),
        ("/console/console.js", "text/javascript|application/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/favicon.svg", "image/svg+xml"),
    ],
    ids=["page", "page-by-name", "script", "style-sheet", "icon"],
)
def test_console_files_are_served_with_their_content_type(client: TestClient, path: str, content_type: str) -> None:
    r = client.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].split(";")[0].strip() in content_type.split("|")
    csp = r.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_unknown_console_files_are_404(client: TestClient) -> None:
    assert client.get("/console/nothing.js").status_code == 404
    assert client.get("/console/../api/app.py").status_code == 404


def test_the_page_references_only_files_that_exist(client: TestClient) -> None:
    page = _page(client)
    assert page.refs, "the page references its script and style sheet"
    for ref in page.refs:
        assert "//" not in ref, f"{ref}: the console references its own files only"
        assert not ref.startswith("/"), f"{ref}: relative, so that a proxy's path prefix keeps working"
        r = client.get(f"/console/{ref}")
        assert r.status_code == 200, f"{ref}: {r.status_code}"
    assert {"console.js", "console.css"} <= set(page.refs)


def test_the_page_has_nothing_inline(client: TestClient) -> None:
    # what a Content-Security-Policy without 'unsafe-inline' would block
    page = _page(client)
    assert page.scripts
    assert all(s.get("src") for s in page.scripts)
    assert page.script_text == ""
    assert page.inline == []


def test_every_element_the_script_looks_up_is_on_the_page(client: TestClient) -> None:
    wanted = set(re.findall(r"\$\(\"([\w-]+)\"\)", JS.read_text()))
    assert len(wanted) > 20
    assert sorted(wanted - _page(client).ids) == []


def test_every_api_path_of_the_script_is_in_the_openapi_spec(client: TestClient) -> None:
    spec_paths = set(client.get("/openapi.json").json()["paths"])
    used = _js_paths()
    unknown = [p for p in used if not any(_matches(p, s) for s in spec_paths)]
    assert not unknown, f"the console calls paths the API does not have: {unknown}"
    missing = [p for p in sorted(REQUIRED) if p not in spec_paths or not any(_matches(u, p) for u in used)]
    assert not missing, f"the console does not call: {missing}"


def test_the_stream_is_read_with_the_authorization_header() -> None:
    # EventSource cannot send headers, and the stream takes only the bearer token: the script reads it with fetch
    text = JS.read_text()
    assert "new EventSource" not in text
    assert "getReader()" in text


def test_console_files_load_nothing_from_another_host() -> None:
    files = sorted(f for f in CONSOLE_DIR.rglob("*") if f.is_file())
    assert {f.name for f in files} >= {"index.html", "console.js", "console.css", "uPlot.iife.min.js"}
    for f in files:
        # a vendored library's banner names its home page (a comment, never fetched)
        allowed = NAMESPACES | (VENDOR_HOMES if f.parent.name == "vendor" else set())
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}[^\s\"'`)]*", f.read_text())) - allowed
        assert not urls, f"{f.name} names another host: {sorted(urls)}"
        assert "@import" not in f.read_text()


def test_console_files_are_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["api"]
    for f in (f for f in CONSOLE_DIR.rglob("*") if f.is_file()):
        rel = f.relative_to(CONSOLE_DIR.parent).as_posix()
        assert any(fnmatch(rel, p) for p in patterns), f"{rel} would be missing from the wheel"


def test_the_console_is_not_part_of_the_api_spec(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not any(p.startswith("/console") for p in paths)


def test_the_district_layout_names_each_visible_site_with_its_river_and_area(client: TestClient) -> None:
    everyone = client.get("/api/district", headers=login(client, "viewer")).json()
    assert everyone["title"] == "Test district"
    by_site = {s["site"]: s for s in everyone["sites"]}
    assert set(by_site) == {"north-sluices", "north-env", "south-sluices"}
    assert by_site["north-sluices"] | {"devices": 0, "online": 0} == {
        "site": "north-sluices",
        "title": "North sluices",
        "river": "North river",
        "area": "Upper town",
        "km": 1.5,
        "devices": 0,
        "online": 0,
        "states": {"online": 0, "stale": 0, "offline": 0, "unknown": 0},
        "agent": {"online": None, "since_ms": None, "reason": ""},
    }
    # a site the layout leaves out is shown off the rivers, in its access area; one without an area in its own
    assert (by_site["north-env"]["river"], by_site["north-env"]["area"]) == ("", "north")
    assert (by_site["south-sluices"]["area"], by_site["south-sluices"]["km"]) == ("south", 12)
    # scoped to the user's areas, as /api/sites is
    assert USERS["op-south"][1] == ["south"]
    south = client.get("/api/district", headers=login(client, "op-south")).json()
    assert [s["site"] for s in south["sites"]] == ["south-sluices"]


_STRING = r'"(?:[^"\\]|\\.)*"'


def _strings() -> dict[str, tuple[str, str]]:
    """The console's STRINGS table: key -> (English, Chinese)."""
    text = JS.read_text(encoding="utf-8")
    block = text[text.index("const STRINGS = {") : text.index("\n  };", text.index("const STRINGS = {"))]
    entries = re.findall(rf"(\w+):\s*\[\s*({_STRING})\s*,\s*({_STRING})\s*\]", block, re.S)
    assert len(entries) == len(re.findall(r"\w+:\s*\[", block)), "an entry of STRINGS is not [English, Chinese]"
    return {key: (en[1:-1], zh[1:-1]) for key, en, zh in entries}


def test_every_string_of_the_console_is_in_both_languages(client: TestClient) -> None:
    strings = _strings()
    assert len(strings) > 100
    for key, (en, zh) in strings.items():
        assert en.strip(), key
        assert zh.strip(), key
        chinese = re.search(r"[\u4e00-\u9fff]", zh) or zh == en or key == "lang_switch"
        assert chinese, f"{key}: the Chinese is not Chinese: {zh!r}"
        assert sorted(re.findall(r"{\w+}", en)) == sorted(re.findall(r"{\w+}", zh)), f"{key}: placeholders differ"
    js = JS.read_text(encoding="utf-8")
    html = (CONSOLE_DIR / "index.html").read_text(encoding="utf-8")
    used = set(re.findall(r"\bt\(\"(\w+)\"", js)) | set(re.findall(r'data-i18n(?:-ph)?="(\w+)"', html))
    used |= set(re.findall(r'"data-i18n(?:-ph)?":\s*"(\w+)"', js))
    missing = sorted(used - set(strings))
    assert not missing, f"keys the console uses that STRINGS lacks: {missing}"
    for prefix in set(re.findall(r"\bt\(`(\w+)\$\{", js)):  # t(`prio_${w}`): some key has the prefix
        assert any(k.startswith(prefix) for k in strings), prefix


def test_lifeline_up_gives_the_api_the_scenarios_district_layout() -> None:
    from api.config import ApiConfig
    from lifeline.up import _district
    from simulators.scenario import load_scenario

    config = ApiConfig.model_validate({"district": _district(load_scenario("baoshan"))})
    sites = config.district.sites
    assert set(sites) == {"yunzaobang-sluices", "lianqi-sluices", "env-monitoring", "emission-sources", "work-safety"}
    assert (sites["yunzaobang-sluices"].river, sites["yunzaobang-sluices"].area) == ("Yunzaobang", "Wusong")
    assert sites["work-safety"].river == ""  # off the rivers
