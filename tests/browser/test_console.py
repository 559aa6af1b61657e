"""The console in headless Chromium against ``lifeline up --scenario mini`` (tests/browser/conftest.py): the tests
run in file order on one stack, the first one changes the admin's one-time password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import NEW_PASSWORD, Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MINI_SITES = ["mini-safety", "mini-sources", "mini-water"]  # mini.yaml, with its HJ 212 stations


def _page(browser: Any, stack: Stack, *, width: int = 1280, height: int = 800, locale: str = "en-GB") -> Any:
    context = browser.new_context(viewport={"width": width, "height": height}, locale=locale)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.script_errors = errors
    page.goto(stack.console)
    return page


def _login(page: Any, stack: Stack) -> None:
    page.fill("#login-form input[name=username]", "admin")
    page.fill("#login-form input[name=password]", NEW_PASSWORD)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#schematic .site-tile", timeout=10_000)


def test_first_login_changes_the_password_then_shows_every_site(browser: Any, stack: Stack, artifacts: Path) -> None:
    page = _page(browser, stack)
    page.fill("#login-form input[name=username]", "admin")
    page.fill("#login-form input[name=password]", stack.admin_password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#password-view:not([hidden])", timeout=10_000)
    page.screenshot(path=str(artifacts / "password.png"))
    page.fill("#password-form input[name=old_password]", stack.admin_password)
    page.fill("#password-form input[name=new_password]", NEW_PASSWORD)
    page.fill("#password-form input[name=confirm]", NEW_PASSWORD)
    page.click("#password-form button[type=submit]")
    page.wait_for_selector("#schematic .site-tile", timeout=10_000)
    tiles = page.locator("#schematic .site-tile")
    assert sorted(tiles.evaluate_all("els => els.map(e => e.dataset.site)")) == MINI_SITES
    assert "online" in page.inner_text("#overview-totals")
    page.screenshot(path=str(artifacts / "overview-en.png"), full_page=True)
    assert page.script_errors == []
