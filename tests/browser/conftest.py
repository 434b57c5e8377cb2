"""Headless Chromium through Playwright against pytest-django's live server.

Debian's /usr/bin/chromium is driven directly; Playwright never downloads a browser.
Without it the browser tests skip locally; under CI=true tests/conftest.py stops the
run before any test starts, and the fixture below fails rather than skips.
"""

import os
import re
from pathlib import Path

import pytest

from tests.conftest import CHROMIUM, chromium_missing_reason, running_in_ci

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TIMEOUT_MS = 30_000
EXPECT_TIMEOUT_MS = 15_000


@pytest.fixture(scope="package")
def browser():
    reason = chromium_missing_reason()
    if reason:
        if running_in_ci():
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(f"browser tests need Debian's chromium: {reason}")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)

    # Playwright's sync API keeps an event loop running in this thread, and Django
    # refuses ORM calls (factories, flushes) next to a running loop unless told it is
    # safe. It is here: the loop only waits on the browser. Restored after the package.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=60_000)
        try:
            yield chromium
        finally:
            chromium.close()
    finally:
        playwright.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


_CALL_FAILED = pytest.StashKey[bool]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    return report


@pytest.fixture
def screenshot_dir(tmp_path) -> Path:
    directory = Path(os.environ.get("BROWSER_SCREENSHOTS") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def page(browser, live_server, transactional_db, request, screenshot_dir):
    """A fresh browser context per test; a screenshot of the last page when the test fails.
    transactional_db: the live server thread only sees committed rows."""
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    context.set_default_navigation_timeout(TIMEOUT_MS)
    page = context.new_page()
    try:
        yield page
        if request.node.stash.get(_CALL_FAILED, False):
            page.screenshot(path=str(screenshot_dir / f"{_safe_name(request)}-FAILED.png"), full_page=True)
    finally:
        context.close()


def _safe_name(request) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)


@pytest.fixture
def screenshot(page, request, screenshot_dir):
    """``screenshot("step")`` saves a full-page PNG into $BROWSER_SCREENSHOTS (or tmp_path);
    ``target=`` another page (a second browser context) instead of ``page``."""
    test_name = _safe_name(request)
    counter = iter(range(1, 100))

    def take(step: str, target=None) -> Path:
        path = screenshot_dir / f"{test_name}-{next(counter):02d}-{step}.png"
        (target or page).screenshot(path=str(path), full_page=True)
        return path

    return take
