"""Steps a staff member takes in the browser, shared by the browser tests."""

import re
import time

from playwright.sync_api import Page, expect

from tests.helpers import totp_now

LOGIN = "/accounts/login/"
MFA_AUTHENTICATE = "/accounts/2fa/authenticate/"
TOTP_ACTIVATE = "/accounts/2fa/totp/activate/"
RECOVERY_CODES = "/accounts/2fa/recovery-codes/"
REAUTHENTICATE = "/accounts/reauthenticate/"


def url_path(pattern: str) -> re.Pattern[str]:
    """A URL regex for ``expect(page).to_have_url`` that matches one path, any query string."""
    return re.compile(rf"^https?://[^/]+{re.escape(pattern)}(\?.*)?$")


def fresh_totp(secret: str, *, margin: float = 8.0) -> str:
    """A code with at least ``margin`` seconds of its time step left, so typing, submitting
    and a slow server cannot carry it past the boundary (the server allows no drift)."""
    remaining = 30 - (time.time() % 30)
    if remaining < margin:
        time.sleep(remaining + 0.2)
    return totp_now(secret)


def sign_in_with_password(page: Page, *, email: str, password: str, next_url: str | None = None) -> None:
    """Fill allauth's login form and submit; leaves the page wherever the server sends it."""
    page.goto(LOGIN + (f"?next={next_url}" if next_url else ""))
    page.locator('input[name="login"]').fill(email)
    page.locator('input[name="password"]').fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign In", exact=True).click()


def complete_totp_step(page: Page, *, secret: str) -> None:
    """Answer the "Two-Factor Authentication" stage of the login with a current code."""
    expect(page).to_have_url(url_path(MFA_AUTHENTICATE))
    page.locator('input[name="code"]').fill(fresh_totp(secret))
    with page.expect_navigation():
        page.get_by_role("button", name="Sign In", exact=True).click()
    expect(page).not_to_have_url(url_path(MFA_AUTHENTICATE))


def sign_in(page: Page, *, email: str, password: str, secret: str, next_url: str | None = None) -> None:
    sign_in_with_password(page, email=email, password=password, next_url=next_url)
    complete_totp_step(page, secret=secret)


def search_people(page: Page, query: str) -> None:
    """Search from the dashboard's search box, as a technician on a call would."""
    page.goto("/")
    box = page.get_by_role("searchbox")
    box.fill(query)
    with page.expect_navigation():
        box.press("Enter")
    expect(page).to_have_url(url_path("/people/"))
