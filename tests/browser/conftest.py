"""Playwright against Debian's chromium and pytest-django's live server.

The sync Playwright API runs an event loop in this thread, which trips Django's async-unsafe guard on every
ORM call made by the test itself; the test is synchronous code, so the guard is switched off here only.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium) to run browser tests")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshot_dir() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


def logged_in_page(chromium, live_server, user, *, width: int = 1500):
    """A fresh browser context (its own cookies) where ``user`` logged in with the keyboard."""
    context = chromium.new_context(viewport={"width": width, "height": 950})
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{live_server.url}/accounts/login/")
    page.keyboard.type(user.username)  # the username field has autofocus
    page.keyboard.press("Tab")
    page.keyboard.type("pw-for-tests-1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")
    return page
