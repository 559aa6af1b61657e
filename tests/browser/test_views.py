"""The console's views in their own scripts (district.js, env.js, charts.js) in headless Chromium against
``lifeline up --scenario mini`` (tests/browser/conftest.py: one stack for this module): the district at a glance,
the environment officer's day, a chart zoomed and exported. Screenshots at 1366 px and 390 px."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import Stack
from tests.browser.test_console import _login, _page, _publish

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300), pytest.mark.xdist_group("browser")]


def _no_sideways_scroll(page: Any, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width + 1


def test_the_district_at_a_glance(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack, width=1366, height=900)
    _login(page, stack)
    view = page.locator("#district-glance")
    page.wait_for_selector("#district-glance .v-figures", timeout=30_000)
    # every gate, station, source and detector drawn with its live state (the simulated district is up: online)
    drawn = {"gate-1": "gate", "wq-1": "station", "air-1": "station", "cems-1": "source", "gas-1": "enterprise"}
    for device, kind in drawn.items():
        glyph = page.locator(f"#district-glance g.v-g-{kind}[data-site^='mini'][data-device='{device}']")
        glyph.wait_for(timeout=30_000)
    page.wait_for_selector(
        "#district-glance g[data-site^='mini'][data-device='gate-1'][data-state=online]", timeout=30_000
    )
    assert "Mini river" in view.inner_text()
    # the duty officer's figures
    online = page.inner_text("[data-fig=online] .v-fig-value")
    up, total = (int(x) for x in online.split("/"))
    assert total >= 7
    assert 0 < up <= total
    for key in ("alarms", "sources", "stations"):
        assert page.locator(f"[data-fig={key}] .v-fig-value").count() == 1
    # all gates of the river in one table with levels, head, opening, flow and mode
    row = page.locator(".v-gates[data-river='Mini river'] tr[data-gate='gate-1']")
    row.wait_for(timeout=10_000)
    deadline = time.monotonic() + 30
    while "remote" not in row.inner_text() and "local" not in row.inner_text() and time.monotonic() < deadline:
        page.wait_for_timeout(500)  # the latest values arrive with the gate's first poll
    cells = row.locator("td").all_inner_texts()
    assert cells[0] == "gate-1"
    assert "online" in cells[1]
    assert all(c != "—" for c in cells[2:5]), cells  # level up, level down, head
    assert cells[7] in {"remote", "local"} or cells[7].startswith(("remote", "local")), cells
    page.screenshot(path=str(artifacts / "district-1366.png"), full_page=True)

    # an alarm: the gas detector's glyph carries it (refreshed within 15 s, without a reload), the figures count it
    deadline = time.monotonic() + 60
    while True:
        _publish(
            stack,
            "vendor/gasdet/GD-MINI-1/up",
            {"ts": int(time.time() * 1000), "data": {"lel": 62.5, "alarm": "high", "battery": 90}},
        )
        try:
            page.wait_for_selector(
                "#district-glance g[data-site^='mini'][data-device='gas-1']:not([data-alarm=''])", timeout=8_000
            )
            break
        except PlaywrightTimeout:
            assert time.monotonic() < deadline, "the gas alarm never reached the district view"
    assert int(page.inner_text("[data-fig=alarms] .v-fig-value")) >= 1
    page.screenshot(path=str(artifacts / "district-alarm-1366.png"), full_page=True)

    # a glyph opens its site in the device view, by keyboard too
    page.focus("#district-glance g[data-site^='mini'][data-device='gate-1']")
    page.keyboard.press("Enter")
    page.wait_for_selector("#site-title[data-site='mini-water']", timeout=10_000)
    assert page.is_visible("#devices-view")

    # a 390 px phone: the figures and the gates' table readable without the page scrolling sideways
    phone = _page(browser, stack, width=390, height=844)
    _login(phone, stack)
    phone.wait_for_selector("#district-glance .v-gates tr[data-gate='gate-1']", timeout=30_000)
    _no_sideways_scroll(phone, 390)
    box = phone.locator("#district-glance .v-gates tr[data-gate='gate-1']").bounding_box()
    assert box is not None
    assert box["x"] >= 0
    assert box["x"] + box["width"] <= 391
    phone.screenshot(path=str(artifacts / "district-390.png"), full_page=True)
    assert page.script_errors == []
    assert phone.script_errors == []


def test_the_environment_officers_day(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack, width=1366, height=900)
    _login(page, stack)
    page.click("#tabs button[data-tab=env-view]")
    page.wait_for_selector("#env-view:not([hidden])")
    assert page.is_hidden("#overview-view")
    assert page.is_hidden("#devices-view")
    # the HJ 633 category colours, text readable on each
    levels = page.evaluate(
        """() => [25, 75, 125, 175, 250, 400].map((a) => {
             const b = window.LifelineViews.aqiBadge(a); document.body.append(b);
             const s = getComputedStyle(b);
             const out = [b.textContent, s.backgroundColor, s.color]; b.remove(); return out; })"""
    )
    assert [bg for _, bg, _ in levels] == [
        "rgb(0, 228, 0)",
        "rgb(255, 255, 0)",
        "rgb(255, 126, 0)",
        "rgb(255, 0, 0)",
        "rgb(153, 0, 76)",
        "rgb(126, 0, 35)",
    ]
    assert levels[0][0] == "25 excellent"
    assert levels[5][0] == "400 severely polluted"
    assert [fg for _, _, fg in levels] == ["rgb(0, 0, 0)"] * 4 + ["rgb(255, 255, 255)"] * 2
    # air and water: their tables, or why there is nothing yet (a fresh stack stores its first hourly AQI at the hour)
    page.wait_for_selector("[data-block=air] table, [data-block=air] p", timeout=30_000)
    page.wait_for_selector("[data-block=water] table, [data-block=water] p", timeout=30_000)
    # a flue-gas source: measured and O2-corrected side by side, the hourly and daily means (or why none)
    page.select_option("#env-station", "mini-water/cems-1")
    row = page.locator("[data-table=means] tr[data-point=so2]")
    row.wait_for(timeout=30_000)
    measured = row.locator("td").nth(1).inner_text()
    corrected = row.locator("td[data-zs=so2_zs]").inner_text()
    assert measured != "—", measured
    assert corrected != "—", corrected
    assert float(corrected.replace(",", "")) != float(measured.replace(",", ""))  # 6 % reference O2, not 21 %
    # the source's permit beside the measured value: SO2 judged on its O2-corrected value (GB 13223-2011, new unit)
    assert "permit ≤ 100 (corrected)" in row.locator("td").nth(5).inner_text()
    page.screenshot(path=str(artifacts / "env-1366.png"), full_page=True)
    # a report as CSV: the file the API gives, through the console (it carries the bearer token)
    page.select_option("[data-block=reports] select[name=kind]", "source")
    with page.expect_download(timeout=60_000) as info:
        page.click("[data-block=reports] button[data-report=csv]")
    text = Path(info.value.path()).read_text(encoding="utf-8-sig")
    assert "污染源" in text
    # Chinese: the tab and the headings follow the language switch
    page.click("#lang")
    page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert page.inner_text("#tabs button[data-tab=env-view]") == "环境"
    page.wait_for_selector("[data-block=station] h3:has-text('小时均值与日均值')")
    page.wait_for_selector("[data-table=means] tr[data-point=so2] td:has-text('许可')", timeout=30_000)
    page.screenshot(path=str(artifacts / "env-zh-1366.png"), full_page=True)
    page.click("#lang")
    # a 390 px phone: the officer's tables become cards, nothing scrolls sideways
    phone = _page(browser, stack, width=390, height=844)
    _login(phone, stack)
    phone.click("#tabs button[data-tab=env-view]")
    phone.select_option("#env-station", "mini-water/cems-1")
    phone.wait_for_selector("[data-table=means] tr[data-point=so2]", timeout=30_000)
    _no_sideways_scroll(phone, 390)
    phone.screenshot(path=str(artifacts / "env-390.png"), full_page=True)
    assert page.script_errors == []
    assert phone.script_errors == []


def test_a_chart_zoomed_and_exported_as_csv(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack, width=1366, height=900)
    _login(page, stack)
    # two series over 48 hours, one with a gap: drawn by charts.js into the page
    page.evaluate(
        """() => {
             const t0 = Date.UTC(2026, 0, 1, 0, 0, 0), times = [], a = [], b = [];
             for (let i = 0; i < 48; i++) {
               times.push(t0 + i * 3600000); a.push(i); b.push(i === 10 ? null : 100 + i);
             }
             const box = window.LifelineViews.chart({ title: "test", times_ms: times, values: [a, b],
               series: [{ label: "SO2", unit: "mg/m³" }, { label: "NOx", unit: "mg/m³" }], file: "test-chart" });
             box.id = "test-chart"; document.querySelector("main").prepend(box);
           }"""
    )
    page.wait_for_selector("#test-chart canvas", timeout=10_000)
    assert "48" in page.inner_text("#test-chart .v-chart-note")

    def export() -> list[list[str]]:
        with page.expect_download() as info:
            page.click("#test-chart button[data-export=csv]")
        assert info.value.suggested_filename == "test-chart.csv"
        return list(csv.reader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8-sig"))))

    rows = export()
    assert rows[0] == ["time (China Standard Time)", "SO2 (mg/m³)", "NOx (mg/m³)"]
    assert len(rows) == 49
    assert rows[1][0] == "2026-01-01 08:00"  # China Standard Time
    assert rows[1][1:] == ["0", "100"]
    assert rows[11][2] == ""  # the gap stays a gap
    # drag across the middle of the plot: zoomed, and the export holds only what is shown
    over = page.locator("#test-chart .u-over").bounding_box()
    assert over is not None
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + over["width"] * 0.25, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.5, y, steps=5)
    page.mouse.up()
    page.wait_for_function("!document.querySelector('#test-chart .v-chart-note').textContent.includes('48')")
    zoomed = export()
    assert 3 < len(zoomed) - 1 < 20, len(zoomed)
    assert zoomed[1][0] > rows[1][0]
    page.screenshot(path=str(artifacts / "chart-zoomed.png"), full_page=True)
    page.click("#test-chart button:has-text('Show all')")
    assert len(export()) == 49

    # a device's panel: several of its points on one chart (a gate: levels up and down and its opening)
    page.click("#tabs button[data-tab=devices-view]")
    page.click("#site-list button:has-text('mini-water')")
    page.click("#device-rows tr[data-device=gate-1]", timeout=30_000)
    page.wait_for_selector("#multi-chart canvas", timeout=30_000)
    ticked = page.locator("#multi-chart .v-points input:checked").evaluate_all("els => els.map(e => e.value)")
    assert ticked == ["gate_opening", "level_down", "level_up"]
    with page.expect_download() as info:
        page.click("#multi-chart button[data-export=csv]")
    lines = list(csv.reader(io.StringIO(Path(info.value.path()).read_text(encoding="utf-8-sig"))))
    assert len(lines[0]) == 4
    assert len(lines) >= 2  # the gate has reported since the stack started
    page.screenshot(path=str(artifacts / "device-chart.png"), full_page=True)
    assert page.script_errors == []
