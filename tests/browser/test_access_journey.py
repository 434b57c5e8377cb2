"""Just-In-Time access end to end: a technician requests a role, an approver approves it in a
second browser, the technician activates it through allauth's MFA re-authentication, watches
the countdown, and the grant ends by itself."""

import re
import time
from datetime import timedelta

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from access import services
from access.authorization import grant_allows
from access.models import AccessRequest, Grant
from accounts.models import Role
from tests.access.factories import EligibilityFactory, RoleFactory
from tests.accounts.factories import PASSWORD, OrganizationFactory, UserFactory
from tests.browser.flows import fresh_totp, sign_in, url_path

pytestmark = pytest.mark.browser

GRANT_SECONDS = 12
TOTP_PERIOD = 30


def totp_after(secret: str, used_step: int) -> str:
    """A fresh code from a later time step than ``used_step``: allauth accepts each code once."""
    while int(time.time()) // TOTP_PERIOD <= used_step:
        time.sleep(0.5)
    return fresh_totp(secret)


def test_request_approve_activate_with_mfa_countdown_and_expiry(page: Page, browser, live_server, settings, screenshot):
    settings.PUBLIC_BASE_URL = live_server.url
    # The MFA step of the sign-in is older than this by the time the technician activates,
    # so the activation asks for a fresh one.
    settings.ACCESS_REAUTH_MAX_AGE_SECONDS = 1
    org = OrganizationFactory(name="Contoso")
    role = RoleFactory(
        name="Password resets",
        max_duration=timedelta(seconds=GRANT_SECONDS),
        requires_mfa_reauth=True,
        approvals_required=1,
    )
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org], mfa=True, full_name="Terry Tech")
    approver = UserFactory(roles=[Role.APPROVER], organizations=[org], mfa=True, full_name="Alice Approver")
    EligibilityFactory(technician=technician, role=role, organization=org)

    # The technician asks for the role.
    sign_in(page, email=technician.email, password=PASSWORD, secret=technician.totp_secret)
    signed_in_step = int(time.time()) // TOTP_PERIOD
    page.get_by_role("link", name="My access").click()
    expect(page).to_have_url(url_path("/access/"))
    expect(page.get_by_text("No grant in force.")).to_be_visible()
    screenshot("my-access-before")
    with page.expect_navigation():
        page.get_by_role("link", name="Request", exact=True).click()
    expect(page.get_by_label("Role and organisation")).to_have_value(str(technician.access_eligibilities.get().pk))
    page.get_by_label("Justification").fill("Payroll lead locked out before the monthly run")
    page.get_by_label("Ticket reference").fill("INC-5150")
    screenshot("request-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Send request").click()
    expect(page).to_have_url(re.compile(r"/access/requests/\d+/$"))
    expect(page.get_by_text("Pending approval")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    request_url = page.url
    screenshot("request-pending")

    # The approver, in a second browser, follows the emailed link and approves.
    (notice,) = [m for m in mail.outbox if m.to == [approver.email]]
    link = re.search(r"http://\S+/access/requests/\d+/", notice.body).group(0)
    second = browser.new_context(base_url=live_server.url, locale="en-GB")
    try:
        approver_page = second.new_page()
        sign_in(approver_page, email=approver.email, password=PASSWORD, secret=approver.totp_secret)
        approver_page.goto(link)
        expect(approver_page.get_by_text("Payroll lead locked out before the monthly run")).to_be_visible()
        expect(approver_page.get_by_text("INC-5150")).to_be_visible()
        expect(approver_page.get_by_text("No grant before.")).to_be_visible()  # the technician's history
        approver_page.get_by_label("Comment (optional)").fill("Checked INC-5150 with the payroll lead")
        screenshot("approver-decides", target=approver_page)
        with approver_page.expect_navigation():
            approver_page.get_by_role("button", name="Approve").click()
        expect(approver_page.get_by_text("Approved, not activated").first).to_be_visible()
        approver_page.get_by_role("navigation").get_by_role("link", name="Approvals").click()
        expect(approver_page.get_by_text("Nothing to decide.")).to_be_visible()
    finally:
        second.close()

    # The technician activates: first a fresh MFA step on allauth's page, then the grant.
    page.goto(request_url)
    expect(page.get_by_text("Approved, not activated")).to_be_visible()
    with page.expect_navigation():
        page.get_by_role("button", name="Activate Password resets").click()
    expect(page).to_have_url(url_path("/accounts/2fa/reauthenticate/"))
    assert "next=%2Faccess%2Frequests%2F" in page.url
    assert not Grant.objects.exists()
    screenshot("mfa-reauthentication")
    page.locator('input[name="code"]').fill(totp_after(technician.totp_secret, signed_in_step))
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm").click()

    grant = Grant.objects.get()
    expect(page).to_have_url(url_path(f"/access/grants/{grant.pk}/"))
    assert grant.mfa_reauthenticated_at is not None
    assert grant_allows(technician=technician, organization=org, action="password_reset")
    expect(page.locator(".verdict.ok")).to_contain_text("Active")
    expect(page.locator("#grant-live .countdown")).to_have_text(re.compile(r"^00:(0\d|1[0-2]) left$"))
    screenshot("grant-active")

    # "My access" counts it down and, once it ends, shows it is gone without a reload.
    page.goto("/access/")
    page.evaluate("window.__notReloaded = true")
    row = page.locator(f"#grant-{grant.pk}")
    expect(row.locator(".countdown")).to_have_text(re.compile(r"^00:(0\d|1[0-2]) left$"))
    screenshot("my-access-counting-down")
    expect(page.get_by_text("No grant in force.")).to_be_visible(timeout=(GRANT_SECONDS + 8) * 1000)
    assert page.evaluate("window.__notReloaded") is True
    screenshot("my-access-after-expiry")

    # Ended at expires_at by the database's clock, whatever Celery did (it runs eagerly here,
    # so the exact-time expiry task already ran at activation, found nothing due yet, and the
    # sweep is what cleans the mirror afterwards).
    assert not grant_allows(technician=technician, organization=org, action="password_reset")
    page.goto(f"/access/grants/{grant.pk}/")
    expect(page.locator(".verdict.stop")).to_contain_text("Expired")
    expect(page.locator("[data-expires]")).to_have_count(0)
    screenshot("grant-expired")
    services.access_sweep()
    grant.refresh_from_db()
    assert grant.mirror_cleaned_at is not None
    assert AccessRequest.objects.get().status == AccessRequest.Status.ENDED


def test_break_glass_is_revoked_by_an_org_admin_and_disappears_from_the_technicians_page(
    page: Page, browser, live_server, settings, screenshot
):
    """Break-glass starts at once with a warning and alerts the org admins; an org admin, in
    a second browser, follows the alert, revokes it with a reason and reviews it; the
    technician's open page drops the grant by itself."""
    from tests.access.factories import BreakGlassRoleFactory

    settings.PUBLIC_BASE_URL = live_server.url
    org = OrganizationFactory(name="Contoso")
    role = BreakGlassRoleFactory(name="Emergency reset", requires_mfa_reauth=False)
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org], mfa=True, full_name="Terry Tech")
    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org], mfa=True, full_name="Olga Admin")
    EligibilityFactory(technician=technician, role=role, organization=org)

    sign_in(page, email=technician.email, password=PASSWORD, secret=technician.totp_secret)
    page.goto("/access/")
    with page.expect_navigation():
        page.get_by_role("link", name="Break-glass access").click()
    expect(page.get_by_role("alert")).to_contain_text("Emergency use only.")
    page.get_by_label("Justification").fill("Ransomware on the payroll server, CFO locked out")
    page.get_by_label("Ticket reference").fill("INC-911")
    page.get_by_role("button", name="Activate break-glass access").click()
    expect(page.get_by_text("Confirm that you understand")).to_be_visible()
    assert not Grant.objects.exists()
    page.get_by_label(re.compile("I understand that every org admin is alerted")).check()
    screenshot("break-glass-form")
    with page.expect_navigation():
        page.get_by_role("button", name="Activate break-glass access").click()
    grant = Grant.objects.get()
    expect(page.get_by_text("Every org admin has been alerted.")).to_be_visible()
    page.goto("/access/")
    page.evaluate("window.__notReloaded = true")
    expect(page.locator(f"#grant-{grant.pk} .countdown")).to_have_text(re.compile(r"^\d\d:\d\d left$"))
    screenshot("break-glass-active")

    (alert,) = [m for m in mail.outbox if m.to == [admin.email]]
    assert "BREAK-GLASS" in alert.subject and "INC-911" in alert.body
    link = re.search(r"http://\S+/access/grants/\d+/", alert.body).group(0)
    second = browser.new_context(base_url=live_server.url, locale="en-GB")
    try:
        admin_page = second.new_page()
        sign_in(admin_page, email=admin.email, password=PASSWORD, secret=admin.totp_secret)
        admin_page.goto(link)
        expect(admin_page.get_by_text("pending: an org admin must review this use")).to_be_visible()
        admin_page.get_by_label(re.compile("Reason")).fill("Incident handled by the on-call team")
        screenshot("admin-grant-page", target=admin_page)
        with admin_page.expect_navigation():
            admin_page.get_by_role("button", name="Revoke now").click()
        expect(admin_page.locator(".verdict.stop")).to_contain_text("Revoked")
        admin_page.get_by_label("Review notes").fill("Justified: confirmed ransomware incident INC-911")
        with admin_page.expect_navigation():
            admin_page.get_by_role("button", name="Record the review").click()
        expect(admin_page.get_by_text("reviewed by Olga Admin")).to_be_visible()
        admin_page.goto(f"/access/organisations/{org.slug}/grants/")
        expect(admin_page.get_by_text("No grant in force.")).to_be_visible()
        expect(admin_page.get_by_text("No break-glass use waits for review.")).to_be_visible()
        screenshot("admin-org-grants", target=admin_page)
        admin_page.goto(f"/access/organisations/{org.slug}/eligibilities/")
        screenshot("admin-eligibilities", target=admin_page)
        admin_page.goto(f"/access/organisations/{org.slug}/roles/")
        screenshot("admin-roles", target=admin_page)
    finally:
        second.close()

    # The technician's page, open all along, drops the revoked grant on its next poll.
    expect(page.get_by_text("No grant in force.")).to_be_visible(timeout=10_000)
    expect(page.get_by_text("Incident handled by the on-call team")).to_be_visible()
    assert page.evaluate("window.__notReloaded") is True
    assert not grant_allows(technician=technician, organization=org, action="password_reset")
    screenshot("technician-after-revocation")
