"""The console in headless Chromium against ``lifeline up --scenario mini`` (tests/browser/conftest.py): the tests
run in file order on one stack, the first one changes the admin's one-time password."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import NEW_PASSWORD, Stack

# one worker runs them all (the module shares one `lifeline up` stack and a browser: two at once crowd 2 cores)
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300), pytest.mark.xdist_group("browser")]

MINI_SITES = ["browser-sources", "mini-safety", "mini-water"]  # district.yaml, with its HJ 212 stations' site


def _page(browser: Any, stack: Stack, *, width: int = 1280, height: int = 800, locale: str = "en-GB") -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.script_errors = errors
    page.goto(stack.console)
    return page


def _login(page: Any, stack: Stack) -> None:
    """Log in as the admin; on a stack whose one-time password is still in force, change it first (so that each
    test stands alone, whichever worker and order it runs in)."""
    page.fill("#login-form input[name=username]", "admin")
    page.fill("#login-form input[name=password]", NEW_PASSWORD if stack.password_changed else stack.admin_password)
    page.click("#login-form button[type=submit]")
    if not stack.password_changed:
        _change_password(page, stack)
    page.wait_for_selector("#schematic .site-tile", timeout=30_000)


def _change_password(page: Any, stack: Stack) -> None:
    page.wait_for_selector("#password-view:not([hidden])", timeout=30_000)
    page.fill("#password-form input[name=old_password]", stack.admin_password)
    page.fill("#password-form input[name=new_password]", NEW_PASSWORD)
    page.fill("#password-form input[name=confirm]", NEW_PASSWORD)
    page.click("#password-form button[type=submit]")
    stack.password_changed = True


def test_first_login_changes_the_password_then_shows_every_site(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack)
    # the first login of this stack must change the one-time password (_login does it, whichever test is first)
    assert not stack.password_changed or page.is_visible("#login-view")
    _login(page, stack)
    tiles = page.locator("#schematic .site-tile")
    deadline = time.monotonic() + 30  # the HJ 212 stations' site is known once they first report
    while tiles.count() < len(MINI_SITES) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(tiles.evaluate_all("els => els.map(e => e.dataset.site)")) == MINI_SITES
    assert "online" in page.inner_text("#overview-totals")
    # the schematic by river and area: every site a dot, mini-water on its river in its area's column
    dots = page.locator("#river-schematic g.sch-site")
    assert sorted(dots.evaluate_all("els => els.map(e => e.dataset.site)")) == MINI_SITES
    drawing = page.inner_text("#river-schematic")
    assert all(word in drawing for word in ("Mini river", "North", "South", "Mini water site", "off the rivers"))
    page.screenshot(path=str(artifacts / "overview-en.png"), full_page=True)
    page.click("#river-schematic g.sch-site[data-site=mini-safety]")  # click through to the site
    page.wait_for_selector("#site-title[data-site='mini-safety']", timeout=10_000)
    assert page.is_visible("#devices-view")
    assert page.script_errors == []


def _publish(stack: Stack, topic: str, payload: dict[str, Any]) -> None:
    """One message as the simulated sensors' account (the one place this module builds an MQTT connection)."""
    import yaml

    from infra.mqtt import BrokerConfig, client
    from lifeline.broker_auth import credential

    doc = yaml.safe_load((stack.data_dir / "bridge.yaml").read_text(encoding="utf-8"))
    broker = credential(stack.data_dir / "credentials", "sim-sensors", BrokerConfig.model_validate(doc["broker"]))
    sensor = client(broker, "browser-test-sensor")
    sensor.connect(broker.host, broker.port)
    sensor.loop_start()
    try:
        info = sensor.publish(topic, json.dumps(payload), qos=1)
        info.wait_for_publish(5)
        assert info.is_published(), f"no PUBACK for {topic}"
    finally:
        sensor.loop_stop()
        sensor.disconnect()


def _open_site(page: Any, site: str) -> None:
    page.click("#tabs button[data-tab=devices-view]")
    page.click(f"#site-list button:has-text('{site}')")
    page.wait_for_selector(f"#site-title[data-site='{site}']")


def test_open_a_gate_to_40_percent_and_see_it_complete(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack)
    _login(page, stack)
    _open_site(page, "mini-water")
    page.click("#device-rows tr[data-device=gate-1]", timeout=30_000)
    page.wait_for_selector("#gate-panel:not([hidden])")
    page.locator("#gate-range", has_text="6").wait_for(timeout=30_000)  # its limits came (no eval: the CSP forbids it)
    page.fill("#gate-target", "40")
    page.click("[data-gate=set_opening]")
    page.wait_for_selector("#gate-confirm:not([hidden])")
    assert "40 %" in page.inner_text("#gate-confirm-text")
    page.click("#gate-confirm-yes")
    page.wait_for_selector("#gate-progress .cmd-completed", timeout=45_000)
    progress = page.inner_text("#gate-progress")
    after = re.search(r"Opening after: ([\d.]+) m \(([\d.]+) %\)", progress)
    assert after, progress  # the opening after, in m and in % of the gate's full 6 m
    assert abs(float(after.group(1)) - 2.4) <= 0.02 + 0.005, progress  # within the gate's tolerance_m
    assert abs(float(after.group(2)) - 40) <= 0.5, progress
    assert page.locator("#gate-progress #gate-step").count() == 1  # one line, not a growing list
    page.screenshot(path=str(artifacts / "gate.png"), full_page=True)
    assert page.script_errors == []


def test_a_gas_alarm_arrives_live_and_is_acknowledged_in_one_click(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack)
    _login(page, stack)
    _open_site(page, "mini-safety")
    page.select_option("#kind-filter", "safety")
    page.wait_for_selector("#device-rows tr[data-device=gas-1]", timeout=30_000)
    assert page.locator("#device-rows tr[data-device=gas-1].alarm-row").count() == 0
    deadline = time.monotonic() + 45  # the test shares the simulated sensors' account: sent again until it shows
    while True:
        _publish(
            stack,
            "vendor/gasdet/GD-MINI-1/up",
            {"ts": int(time.time() * 1000), "data": {"lel": 62.5, "alarm": "high", "battery": 90}},
        )
        try:
            page.wait_for_selector(
                "#device-rows tr[data-device=gas-1].alarm-row", timeout=5_000
            )  # no reload: the stream
            break
        except PlaywrightTimeout:
            assert time.monotonic() < deadline, "the gas alarm never reached the inspector's view"
    page.wait_for_selector("#critical:not([hidden])", timeout=15_000)  # the visible cue, once the alert is raised
    page.screenshot(path=str(artifacts / "safety.png"), full_page=True)
    page.click("#device-rows tr[data-device=gas-1] .ack-one")
    page.wait_for_selector("#device-rows tr[data-device=gas-1]:not(.alarm-row)", timeout=30_000)
    page.click("#tabs button[data-tab=alerts-view]")
    row = page.locator("#alert-rows tr", has_text="gas-1").first
    assert "unacknowledged" not in row.inner_text()
    page.screenshot(path=str(artifacts / "alerts.png"), full_page=True)
    assert page.script_errors == []


def test_an_environment_station_with_its_hourly_means(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack)
    _login(page, stack)
    _open_site(page, "mini-water")
    page.click("#device-rows tr[data-device=wq-1]", timeout=30_000)
    page.wait_for_selector("#means:not([hidden])", timeout=10_000)
    page.wait_for_selector("#means-rows tr", timeout=15_000)  # the stored means, or why there are none yet
    rows = page.inner_text("#means-rows")
    assert "no stored hourly means yet" in rows or "complies" in rows or "exceeded" in rows, rows
    page.select_option("#chart-range", "3600000")  # a chosen time range
    page.wait_for_selector("#chart canvas, #chart .empty", timeout=15_000)
    # the note says "…" while the chosen range loads (the previous range's chart may still be drawn): wait for it
    deadline, note = time.monotonic() + 15, ""
    while time.monotonic() < deadline:
        note = page.inner_text("#chart-note") or "00:00"
        if re.search(r"\d{2}:\d{2}", note):
            break
        page.wait_for_timeout(200)
    assert re.search(r"\d{2}:\d{2}", note), note  # readable times, no epoch
    assert not re.search(r"\b1\d{12}\b", page.inner_text("#device-panel"))
    page.screenshot(path=str(artifacts / "environment.png"), full_page=True)
    assert page.script_errors == []


def test_chinese_where_the_browser_asks_for_it_and_switchable(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack, locale="zh-CN")
    assert page.get_attribute("html", "lang") == "zh-CN"
    assert page.inner_text("#login-view h2") == "登录"
    _login(page, stack)
    assert page.inner_text("#tabs button[data-tab=overview-view]") == "总览"
    page.locator("#overview-totals", has_text="台在线").wait_for(timeout=30_000)
    assert page.locator("#river-schematic g.sch-site").count() == len(MINI_SITES)  # every site, in Chinese too
    assert "非沿河站点" in page.inner_text("#river-schematic")
    page.screenshot(path=str(artifacts / "overview-zh.png"), full_page=True)
    page.click("#lang")
    assert page.get_attribute("html", "lang") == "en"
    assert page.inner_text("#tabs button[data-tab=overview-view]") == "Overview"
    page.locator("#overview-totals", has_text="devices online").wait_for(timeout=30_000)
    assert page.script_errors == []


def test_the_api_killed_and_restarted(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack)
    _login(page, stack)
    page.wait_for_selector("#live.on", timeout=30_000)
    _open_site(page, "mini-water")
    pid = stack.api_pid_now()
    began = time.monotonic()
    os.kill(pid, signal.SIGTERM)  # a normal stop, with the page's stream open
    while Path(f"/proc/{pid}").exists() and _alive(pid) and time.monotonic() - began < 20:
        time.sleep(0.05)
    stopped_s = time.monotonic() - began
    assert stopped_s < 5, f"the API took {stopped_s:.1f} s to stop with a stream open"
    print(f"the API stopped {stopped_s:.2f} s after SIGTERM, with the page's stream open")
    page.wait_for_selector("#banner:not([hidden])", timeout=5_000)
    assert page.get_attribute("#banner", "data-kind") == "offline", page.inner_text("#banner")
    assert page.evaluate("document.body.classList.contains('disconnected')")
    assert page.locator("#device-rows [data-state=online]").count() == 0  # nothing said online while unheard
    assert page.locator("#device-rows [data-state=unconfirmed]").count() > 0
    page.screenshot(path=str(artifacts / "disconnected.png"), full_page=True)
    page.wait_for_selector("#live.on", timeout=40_000)  # lifeline up restarts the API after 5 s
    try:
        page.wait_for_selector("#banner", state="hidden", timeout=5_000)
    except Exception:
        raise AssertionError("still shown: " + page.inner_text("#banner")) from None
    assert not page.evaluate("document.body.classList.contains('disconnected')")


def test_a_390_px_phone(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack, width=390, height=844)
    _login(page, stack)
    assert page.evaluate("document.documentElement.scrollWidth") <= 391  # nothing off-screen sideways
    _open_site(page, "mini-water")
    page.click("#device-rows tr[data-device=gate-1]", timeout=30_000)
    panel = page.locator("#device-panel").bounding_box()
    rows = page.locator("#device-rows").bounding_box()
    assert panel is not None
    assert rows is not None
    assert panel["y"] < rows["y"]  # a tapped device opens at the top, not below the list
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    page.screenshot(path=str(artifacts / "phone.png"), full_page=True)
    assert page.script_errors == []


def _alive(pid: int) -> bool:
    """False for a process that ended (a zombie waiting for lifeline up to reap it counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# -- issue 23: honest state, stalled stream, escalation, shelved apart, admin, Chinese, keyboard, contrast, phone --


def _knobs(page: Any, **seconds: float) -> None:
    """The console's test knobs (localStorage, read at load): the stream watchdog and the request timeout."""
    page.evaluate(
        "k => { for (const [n, v] of Object.entries(k)) localStorage.setItem('lifeline.' + n, String(v)); }", seconds
    )
    page.reload()


def _pid_of(stack: Stack, *words: bytes) -> int:
    """A child of lifeline up whose command line holds every one of ``words``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == stack.proc.pid and all(w in cmd for w in words):
            return int(entry.name)
    raise LookupError(f"no child of lifeline up with {words}")


def test_a_frozen_edge_agent_shows_its_devices_stale_then_online_again(
    browser: Any, stack: Stack, artifacts: Path
) -> None:
    page = _page(browser, stack)
    _login(page, stack)
    _open_site(page, "mini-water")
    gate = page.locator("#device-rows tr[data-device=gate-1] .dev-state")
    gate.and_(page.locator("[data-state=online]")).wait_for(timeout=30_000)
    page.click("#device-rows tr[data-device=gate-1] button.rowlink")
    agent = _pid_of(stack, b"edge", b"mini-water")
    os.kill(agent, signal.SIGSTOP)  # frozen: no death message, nothing arriving
    try:
        page.wait_for_selector("#device-rows tr[data-device=gate-1] [data-state=stale]", timeout=45_000)
        page.wait_for_selector("#device-meta [data-state=stale]", timeout=5_000)  # the panel says the same
        before = page.inner_text("#device-rows tr[data-device=gate-1] .dev-state")
        page.wait_for_timeout(2_100)
        assert page.inner_text("#device-rows tr[data-device=gate-1] .dev-state") != before  # its age ticks
        # a command now would be refused for stale data: the dialog says so before it is sent
        page.fill("#gate-target", "30")
        page.click("[data-gate=set_opening]")
        page.wait_for_selector("#gate-confirm-warning:not([hidden])", timeout=10_000)
        assert "stale" in page.inner_text("#gate-confirm-warning")
        page.click("#gate-confirm-no")
        page.screenshot(path=str(artifacts / "frozen-agent.png"), full_page=True)
    finally:
        os.kill(agent, signal.SIGCONT)
    page.wait_for_selector("#device-rows tr[data-device=gate-1] [data-state=online]", timeout=45_000)
    assert page.script_errors == []


def test_a_frozen_api_stops_live_shows_a_banner_and_never_says_no_devices(
    browser: Any, stack: Stack, artifacts: Path
) -> None:
    page = _page(browser, stack)
    _knobs(page, watchdog_s=4, request_s=4)
    _login(page, stack)
    page.wait_for_selector("#live.on", timeout=30_000)
    _open_site(page, "mini-water")
    page.wait_for_selector("#device-rows tr[data-device=gate-1]", timeout=30_000)
    api = stack.api_pid_now()
    os.kill(api, signal.SIGSTOP)  # frozen: its sockets stay open, nothing comes
    try:
        page.wait_for_selector("#live[data-state=stalled]", timeout=20_000)
        assert page.get_attribute("#banner", "data-kind") == "stalled"
        assert "Live data stalled since" in page.inner_text("#banner-text")
        assert page.locator("#device-rows [data-state=online]").count() == 0
        page.click("#site-list button:has-text('mini-safety')")
        page.wait_for_selector("#devices-empty[data-kind=error]", timeout=20_000)
        text = page.inner_text("#devices-empty")
        assert "could not be read" in text, text
        assert "No devices" not in text, text
        page.screenshot(path=str(artifacts / "frozen-api.png"), full_page=True)
    finally:
        os.kill(api, signal.SIGCONT)
    page.wait_for_selector("#live.on", timeout=40_000)
    page.wait_for_selector("#banner", state="hidden", timeout=10_000)
    page.click("#site-list button:has-text('mini-safety')")
    page.wait_for_selector("#device-rows tr[data-device=gas-1]", timeout=30_000)


def _alert(id_: int, severity: str, **extra: Any) -> dict[str, Any]:
    now = int(time.time() * 1000)
    row = {
        "id": id_, "rule": "gas.lel", "title": "Combustible gas concentration", "severity": severity,
        "audience": "safety", "state": "active_unack", "site": "mini-safety", "device": "gas-1", "point": "lel",
        "area": "", "value": 30.0, "reason": "", "first_ms": now - 60_000, "last_ms": now, "count": 1,
        "assignee": None, "shelved_until_ms": None, "shelve_reason": None, "out_of_service": False,
        "chattering": False, "escalation_level": 0, "current_value": 31.5,
    }  # fmt: skip
    row.update(extra)
    return row


def test_a_raise_of_severity_re_alerts_and_shelved_alerts_stay_apart(
    browser: Any, stack: Stack, artifacts: Path
) -> None:
    """The alert list and the stream as the API would send them (page.route): a warning the page knows, then the
    same alert raised to critical on the stream; a shelved critical one beside it."""
    page = _page(browser, stack)
    shelved = _alert(902, "critical", device="gas-2", shelved_until_ms=int(time.time() * 1000) + 3_600_000)
    rows = [_alert(901, "warning"), shelved]
    listing: dict[str, Any] = {"alerts": rows, "total": 2}
    streams: list[int] = []

    def alerts(route: Any) -> None:
        if "/api/alerts?" in route.request.url:
            route.fulfill(status=200, content_type="application/json", body=json.dumps(listing))
        else:
            route.continue_()

    def stream(route: Any) -> None:
        streams.append(1)
        body = "retry: 500\n: connected\n\n"
        if len(streams) >= 2:  # the page has the list by now: the same alert, raised
            raised = _alert(901, "critical", value=55.0, current_value=61.0)
            rows[0] = raised  # what the API lists from now on
            body += "event: alert\ndata: " + json.dumps(raised) + "\n\n"
        route.fulfill(status=200, content_type="text/event-stream", body=body)

    page.route("**/api/alerts?*", alerts)
    page.route("**/api/stream*", stream)
    _login(page, stack)
    page.click("#tabs button[data-tab=alerts-view]")
    page.wait_for_selector("#alert-rows tr[data-alert='901']", timeout=15_000)
    page.wait_for_selector("#critical:not([hidden])", timeout=30_000)
    assert "raised to critical" in page.inner_text("#critical-text")
    assert page.title().startswith("⚠")
    # shelved: listed apart, not counted in the badge, not at the top
    assert page.locator("#alert-rows tr[data-alert='902']").count() == 0
    assert page.locator("#shelved-rows tr[data-alert='902']").count() == 1
    assert page.inner_text("#alert-count") == "1"
    # the value at the last change and the value now
    assert "now 61" in page.inner_text("#alert-rows tr[data-alert='901'] .alert-value")
    page.screenshot(path=str(artifacts / "escalation.png"), full_page=True)
    page.click("#critical-close")
    assert not page.title().startswith("⚠")


def _visible_english(page: Any) -> list[str]:
    """Identifiers and English state words in the page's visible text (names marked translate=no excepted)."""
    text = page.evaluate(
        """() => {
        const out = [];
        const walk = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let n = walk.nextNode(); n; n = walk.nextNode()) {
          const el = n.parentElement;
          if (!el || el.closest('[translate=no], script, style, [hidden], option')) continue;
          if (!el.getClientRects().length || getComputedStyle(el).visibility === 'hidden') continue;
          out.push(n.textContent);
        }
        return out.join(' \\n ');
    }"""
    )
    words = re.findall(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", text)
    words += re.findall(
        r"\b(?:online|offline|stale|unknown|good|uncertain|completed|failed|pending|live|normal|none)\b", text
    )
    return sorted(set(words))


def test_zh_cn_shows_no_untranslated_string(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack, locale="zh-CN")
    _login(page, stack)
    found: dict[str, list[str]] = {}
    found["overview"] = _visible_english(page)
    for site, device in (("mini-water", "gate-1"), ("mini-water", "wq-1"), ("mini-safety", "gas-1")):
        _open_site(page, site)
        page.click(f"#device-rows tr[data-device={device}] button.rowlink", timeout=30_000)
        page.wait_for_selector("#device-values tr", timeout=30_000)
        found[device] = _visible_english(page)
    page.screenshot(path=str(artifacts / "device-zh.png"), full_page=True)
    page.click("#tabs button[data-tab=alerts-view]")
    page.wait_for_timeout(1_000)
    if page.locator("#alert-rows tr button.rowlink").count():
        page.locator("#alert-rows tr button.rowlink").first.click()
        page.wait_for_selector("#alert-facts dt", timeout=10_000)
    found["alerts"] = _visible_english(page)
    page.click("#tabs button[data-tab=admin-view]")
    page.wait_for_selector("#user-rows tr", timeout=10_000)
    found["admin"] = _visible_english(page)
    page.click("#tabs button[data-tab=notify-view]")
    page.wait_for_selector("#notify-sent tr", timeout=10_000)
    found["notifications"] = _visible_english(page)
    page.screenshot(path=str(artifacts / "notifications-zh.png"), full_page=True)
    assert {k: v for k, v in found.items() if v} == {}
    assert page.script_errors == []


def test_keyboard_only_opens_a_device_and_an_alert(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack)
    _login(page, stack)
    assert page.locator("#tabs[role=tablist] [role=tab]").count() >= 4
    page.focus("#tabs [aria-selected=true]")
    page.keyboard.press("ArrowRight")  # the ARIA tabs pattern
    assert page.get_attribute("#tabs [data-tab=devices-view]", "aria-selected") == "true"
    assert page.is_visible("#devices-view")
    page.click("#site-list button:has-text('mini-water')")
    page.wait_for_selector("#device-rows tr[data-device=gate-1] button.rowlink", timeout=30_000)
    page.focus("#device-rows tr[data-device=gate-1] button.rowlink")
    page.keyboard.press("Enter")
    page.wait_for_selector("#device-panel:not([hidden])", timeout=10_000)
    assert page.inner_text("#device-title").endswith("gate-1")
    page.keyboard.press("Escape")  # closes the panel, focus back on the row
    page.wait_for_selector("#device-panel", state="hidden", timeout=5_000)
    assert page.evaluate("document.activeElement.closest('tr').dataset.device") == "gate-1"
    page.keyboard.press("Enter")
    page.wait_for_selector("#device-panel:not([hidden])", timeout=10_000)
    page.keyboard.press("Tab")  # focus moves on from the row: nothing traps it
    one = _alert(903, "warning")

    def alerts(route: Any) -> None:  # one alert to open, whatever the earlier tests left
        if "/api/alerts?" in route.request.url:
            body = {"alerts": [one], "total": 1}
        else:
            body = {**one, "history": [], "notes": []}
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    page.route("**/api/alerts?*", alerts)
    page.route("**/api/alerts/903", alerts)
    page.click("#tabs button[data-tab=alerts-view]")
    page.click("#alerts-refresh")
    link = page.locator("#alert-rows tr button.rowlink").first
    link.wait_for(timeout=30_000)
    link.focus()
    page.keyboard.press("Space")
    page.wait_for_selector("#alert-panel:not([hidden]) #alert-facts dt", timeout=10_000)
    assert page.script_errors == []


CONTRAST_JS = """() => {
  const lum = (c) => {
    const [r, g, b] = c.map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const rgba = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const bgOf = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgba(getComputedStyle(e).backgroundColor);
      if (c.length >= 3 && (c.length < 4 || c[3] > 0.5)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const bad = [];
  for (const el of document.querySelectorAll('body *')) {
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    if (!el.getClientRects().length || el.closest('[hidden], svg, option, :disabled')) continue;
    const st = getComputedStyle(el);
    if (st.visibility === 'hidden' || Number(st.opacity) < 0.6) continue;
    const fg = rgba(st.color).slice(0, 3), bg = bgOf(el);
    const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    const large = parseFloat(st.fontSize) >= 24 || (parseFloat(st.fontSize) >= 18.66 && Number(st.fontWeight) >= 700);
    if (ratio < (large ? 3 : 4.5)) {
      bad.push(`${el.tagName}.${el.className} "${el.textContent.trim().slice(0, 30)}" ${ratio.toFixed(2)}`);
    }
  }
  return bad;
}"""


def test_contrast_at_least_4_5_to_1_in_every_view(browser: Any, stack: Stack, artifacts: Path) -> None:
    """WCAG AA for every visible text (computed in the page: no axe-core download)."""
    page = _page(browser, stack)
    _login(page, stack)
    bad: list[str] = list(page.evaluate(CONTRAST_JS))
    _open_site(page, "mini-safety")
    page.wait_for_selector("#device-rows tr", timeout=30_000)
    bad += page.evaluate(CONTRAST_JS)
    page.click("#tabs button[data-tab=alerts-view]")
    page.wait_for_timeout(1_000)
    bad += page.evaluate(CONTRAST_JS)
    page.click("#tabs button[data-tab=admin-view]")
    page.wait_for_selector("#user-rows tr", timeout=10_000)
    bad += page.evaluate(CONTRAST_JS)
    assert sorted(set(bad)) == []


def test_the_admin_creates_disables_and_resets_a_user(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack)
    _login(page, stack)
    page.click("#tabs button[data-tab=admin-view]")
    page.wait_for_selector("#user-rows tr[data-user=admin]", timeout=10_000)
    page.fill("#user-form input[name=username]", "inspector1")
    page.fill("#user-form input[name=password]", "Gas at the Baoshan works 9")
    page.select_option("#user-form select[name=role]", "safety_inspector")
    page.click("#user-form button[type=submit]")
    row = page.locator("#user-rows tr[data-user=inspector1]")
    row.wait_for(timeout=10_000)
    assert row.locator("select[name=role]").input_value() == "safety_inspector"
    row.locator("button[data-act=disable]").click()
    page.locator("#user-rows tr[data-user=inspector1]", has_text="disabled").wait_for(timeout=10_000)
    page.locator("#user-rows tr[data-user=inspector1] button[data-act=disable]").click()  # enable again
    page.locator("#user-rows tr[data-user=inspector1]", has_text="enabled").wait_for(timeout=10_000)
    page.fill("#user-rows tr[data-user=inspector1] input[name=password]", "short")
    page.click("#user-rows tr[data-user=inspector1] button[data-act=reset]")
    page.wait_for_selector("#admin-error:not([hidden])", timeout=10_000)  # the password rules, said
    page.fill("#user-rows tr[data-user=inspector1] input[name=password]", "Sluice number four at dawn 3")
    page.click("#user-rows tr[data-user=inspector1] button[data-act=reset]")
    page.locator("#admin-done", has_text="reset").wait_for(timeout=10_000)
    page.fill("#token-form input[name=name]", "scada-link")
    page.click("#token-form button[type=submit]")
    page.wait_for_selector("#token-secret:not([hidden])", timeout=10_000)
    assert page.locator("#token-rows tr", has_text="scada-link").count() == 1
    assert page.locator("#audit-rows tr", has_text="inspector1").count() >= 3
    page.screenshot(path=str(artifacts / "admin.png"), full_page=True)
    assert page.script_errors == []


def test_an_inspector_on_a_390_px_phone_sees_value_state_and_acknowledge(
    browser: Any, stack: Stack, artifacts: Path
) -> None:
    page = _page(browser, stack, width=390, height=844)
    listing = {  # three alarms as the API lists them (whatever the earlier tests left), one with a long title
        "alerts": [
            _alert(911, "critical", value=62.5, current_value=64.0),
            _alert(912, "warning", device="gas-2", title="Combustible gas concentration at the far end of the works"),
            _alert(913, "info", device="fire-1", point="smoke", value=0.12),
        ],
        "total": 3,
    }
    page.route(
        "**/api/alerts?*",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(listing)),
    )
    _login(page, stack)
    page.click("#tabs button[data-tab=alerts-view]")
    page.wait_for_selector("#alert-rows tr[data-alert='913']", timeout=15_000)
    assert page.evaluate("document.documentElement.scrollWidth") <= 391
    assert page.locator("#alert-rows tr").count() == 3
    assert page.locator("#alert-rows tr button.ack-one").count() == 3
    for row in page.locator("#alert-rows tr").all():
        for part in ("td:nth-child(2)", "td.alert-value", "td:nth-child(3)"):
            box = row.locator(part).bounding_box()
            assert box is not None, part
            assert box["x"] >= 0, part
            assert box["x"] + box["width"] <= 391, part
        ack = row.locator("button.ack-one")
        if ack.count():
            box = ack.bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= 391
            assert box["height"] >= 44
    page.screenshot(path=str(artifacts / "phone-alerts.png"), full_page=True)
    # a gate operator's controls within one screen of the tap on the gate
    _open_site(page, "mini-water")
    page.click("#device-rows tr[data-device=gate-1] button.rowlink", timeout=30_000)
    page.wait_for_selector("#gate-panel:not([hidden])")
    page.locator("[data-gate=open]").scroll_into_view_if_needed()
    top = page.evaluate("document.querySelector('#device-panel').getBoundingClientRect().top + window.scrollY")
    button = page.evaluate("document.querySelector('[data-gate=stop]').getBoundingClientRect().bottom + window.scrollY")
    assert button - top <= 844, (top, button)
    heights = page.locator(".gate-actions button").evaluate_all("els => els.map(e => e.getBoundingClientRect().height)")
    assert min(heights) >= 44, heights
    page.screenshot(path=str(artifacts / "phone-gate.png"), full_page=True)
    assert page.script_errors == []


def test_the_notification_log_says_what_was_sent_to_whom_and_what_waits(
    browser: Any, stack: Stack, artifacts: Path
) -> None:
    page = _page(browser, stack)
    now = int(time.time() * 1000)
    outbox = {
        "channels": [{"channel": "sms-duty", "pending": 1, "failed": 1, "oldest_pending_ms": now - 60_000}],
        "notifications": [
            {"id": 1, "channel": "sms-duty", "alert_id": 901, "kind": "raise", "status": "pending",
             "title": "Combustible gas concentration", "created_ms": now - 60_000, "attempts": 2,
             "next_ms": now + 30_000, "last_try_ms": now - 5_000, "last_error": "gateway timeout"},
            {"id": 2, "channel": "sms-duty", "alert_id": 902, "kind": "raise", "status": "failed",
             "title": "Fire alarm", "created_ms": now - 600_000, "attempts": 8, "next_ms": None,
             "last_try_ms": now - 100_000, "last_error": "number refused"},
        ],
        "sent": [
            {"id": 7, "ts_ms": now - 120_000, "alert_id": 900, "kind": "raise", "audience": "safety",
             "channel": "sms-duty", "channel_type": "sms", "target": "+86 138 0000 0000", "ok": True, "attempts": 1,
             "error": "", "text": "mini-safety gas-1 62.5 %LEL"},
        ],
    }  # fmt: skip
    page.route(
        "**/api/alerts/notifications*",
        lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps(outbox)),
    )
    _login(page, stack)
    page.click("#tabs button[data-tab=notify-view]")
    page.wait_for_selector("#notify-queue tr[data-status=failed]", timeout=10_000)
    assert "sms-duty: 1 pending, 1 failed" in page.inner_text("#notify-channels")
    assert "gateway timeout" in page.inner_text("#notify-queue tr[data-status=pending]")
    sent = page.inner_text("#notify-sent")
    assert "+86 138 0000 0000" in sent
    assert "sent" in sent
    page.click("#notify-sent button.rowlink")  # to the alert the message was about
    assert page.is_visible("#alerts-view")
    page.screenshot(path=str(artifacts / "notifications.png"), full_page=True)
