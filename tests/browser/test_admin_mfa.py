from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.accounts.factories import PASSWORD, UserFactory
from tests.browser.flows import LOGIN, MFA_AUTHENTICATE, complete_totp_step, sign_in_with_password, url_path

pytestmark = pytest.mark.browser


def test_admin_needs_the_totp_step_not_just_a_password(page: Page, screenshot):
    admin = UserFactory(is_staff=True, is_superuser=True, mfa=True)

    # The admin's own login page hands over to allauth's.
    page.goto("/admin/")
    expect(page).to_have_url(url_path(LOGIN))
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/admin/"]

    sign_in_with_password(page, email=admin.email, password=PASSWORD, next_url="/admin/")
    expect(page).to_have_url(url_path(MFA_AUTHENTICATE))
    screenshot("admin-totp-step")

    # Password accepted, TOTP step pending: the admin still does not open; the
    # browser is sent back (through the admin's login) to the pending TOTP step.
    response = page.goto("/admin/")
    assert response is not None and response.status == 200
    expect(page).to_have_url(url_path(MFA_AUTHENTICATE))
    expect(page.get_by_role("heading", name="Site administration")).to_have_count(0)
    screenshot("admin-refused-with-password-only")

    complete_totp_step(page, secret=admin.totp_secret)
    expect(page).to_have_url(url_path("/admin/"))
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()
    screenshot("admin-after-totp")
