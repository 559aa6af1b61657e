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
            page.wait_for_selector("#device-rows tr[data-device=gas-1].alarm-row", timeout=5_000)  # no reload: the stream
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
