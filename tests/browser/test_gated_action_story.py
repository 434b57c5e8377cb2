"""The whole story of a gated action, in the browser: from the person page a technician finds
the MFA reset refused (no grant, no verified caller), follows the link to request the role; an
approver approves in a second browser; the technician activates it through allauth's MFA
re-authentication, verifies the caller (the person, on the development outbox as their phone,
picks the matched number), performs the MFA reset, and the grant then expires by itself. An
auditor finds the action on the person's timeline."""

import re
import time
from datetime import timedelta

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from access import services
from access.action_models import HelpdeskAction
from access.authorization import grant_allows
from access.models import AccessRequest, Grant
from accounts.models import Role
from tests.access.factories import EligibilityFactory, RoleFactory
from tests.accounts.factories import PASSWORD, OrganizationFactory, PersonFactory, UserFactory
from tests.browser.flows import sign_in, url_path
from tests.browser.test_access_journey import TOTP_PERIOD, totp_after
from validation.models import Challenge, VerificationPolicy, VerificationRequest

pytestmark = pytest.mark.browser

GRANT_SECONDS = 75


def push_only_mfa_reset_policy(org) -> None:
    """Set explicitly: the defaults for an MFA reset may change; this story needs one push."""
    VerificationPolicy.objects.update_or_create(
        organization=org,
        action="mfa_reset",
        defaults={
            "allowed_methods": ["push"],
            "min_methods": 1,
            "min_strong_methods": 1,
            "required_methods": ["push"],
            "privileged_extra_methods": 0,
        },
    )


def approve_in_second_browser(browser, live_server, approver, screenshot) -> None:
    (notice,) = [m for m in mail.outbox if m.to == [approver.email]]
    link = re.search(r"http://\S+/access/requests/\d+/", notice.body).group(0)
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
    try:
        approver_page = context.new_page()
        sign_in(approver_page, email=approver.email, password=PASSWORD, secret=approver.totp_secret)
        approver_page.goto(link)
        expect(approver_page.get_by_text("INC-8080")).to_be_visible()
        with approver_page.expect_navigation():
            approver_page.get_by_role("button", name="Approve").click()
        expect(approver_page.get_by_text("Approved, not activated").first).to_be_visible()
        screenshot("approved", target=approver_page)
    finally:
        context.close()


def answer_on_the_phone(browser, live_server, number: str, screenshot) -> None:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 360, "height": 740})
    try:
        handset = context.new_page()
        handset.goto("/dev/outbox/")
        link = handset.locator('a[href*="/r/"]')
        expect(link).to_have_count(1)
        link.click()
        handset.get_by_role("button", name=number, exact=True).click()
        expect(handset.get_by_role("heading", name="Thank you, you confirmed it")).to_be_visible()
        screenshot("phone-confirmed", target=handset)
    finally:
        context.close()


def test_request_approve_activate_verify_reset_mfa_and_the_grant_expires(
    page: Page, browser, live_server, settings, screenshot
):
    settings.PUBLIC_BASE_URL = live_server.url
    settings.SMS_DEV_OUTBOX = True
    settings.ACCESS_REAUTH_MAX_AGE_SECONDS = 1  # the sign-in's MFA step is too old to activate with
    org = OrganizationFactory(name="Contoso")
    push_only_mfa_reset_policy(org)
    person = PersonFactory(organization=org, full_name="Grace Hopper")
    role = RoleFactory(
        name="Helpdesk MFA resets",
        actions=["mfa_reset"],
        max_duration=timedelta(seconds=GRANT_SECONDS),
        requires_mfa_reauth=True,
    )
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org], mfa=True, full_name="Terry Tech")
    approver = UserFactory(roles=[Role.APPROVER], organizations=[org], mfa=True, full_name="Alice Approver")
    auditor = UserFactory(roles=[Role.AUDITOR], organizations=[org], mfa=True, full_name="Aude Auditor")
    eligibility = EligibilityFactory(technician=technician, role=role, organization=org)

    # The person page: an MFA reset is refused for now, and says what fixes it.
    sign_in(page, email=technician.email, password=PASSWORD, secret=technician.totp_secret)
    signed_in_step = int(time.time()) // TOTP_PERIOD
    page.goto(f"/people/{person.pk}/")
    row = page.locator("#action-mfa_reset")
    expect(row).to_contain_text("missing")
    screenshot("person-page-before")
    with page.expect_navigation():
        row.get_by_role("link", name="Open MFA reset").click()
    expect(page.locator("#condition-grant")).to_contain_text("No active grant covers an MFA reset")
    expect(page.locator("#condition-verification")).to_contain_text("The caller is not verified")
    expect(page.get_by_role("button", name="Perform MFA reset")).to_have_count(0)
    screenshot("action-refused-conditions")

    # The fix for the grant: request the role.
    with page.expect_navigation():
        page.get_by_role("link", name="Request Helpdesk MFA resets").click()
    expect(page.get_by_label("Role and organisation")).to_have_value(str(eligibility.pk))
    page.get_by_label("Justification").fill("Grace lost the phone with her authenticator app")
    page.get_by_label("Ticket reference").fill("INC-8080")
    with page.expect_navigation():
        page.get_by_role("button", name="Send request").click()
    expect(page.get_by_text("Pending approval")).to_be_visible()
    request_url = page.url

    approve_in_second_browser(browser, live_server, approver, screenshot)

    # Activation, through a fresh MFA step.
    page.goto(request_url)
    with page.expect_navigation():
        page.get_by_role("button", name="Activate Helpdesk MFA resets").click()
    expect(page).to_have_url(url_path("/accounts/2fa/reauthenticate/"))
    page.locator('input[name="code"]').fill(totp_after(technician.totp_secret, signed_in_step))
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm").click()
    grant = Grant.objects.get()
    expect(page).to_have_url(url_path(f"/access/grants/{grant.pk}/"))
    screenshot("grant-active")

    # The grant is there; the caller is not verified yet: follow that fix.
    page.goto(f"/access/people/{person.pk}/actions/mfa_reset/")
    expect(page.locator("#condition-grant")).to_contain_text("Yes: Helpdesk MFA resets")
    with page.expect_navigation():
        page.get_by_role("link", name="Verify the caller for an MFA reset").click()
    expect(page.get_by_label("What does the caller want?")).to_have_value("mfa_reset")
    page.get_by_label("Ticket reference").fill("INC-8080")
    with page.expect_navigation():
        page.get_by_role("button", name="Verify caller").click()
    page.get_by_role("button", name="Send Number-matched approval link").click()
    number = page.locator(".match-number").inner_text(timeout=10_000)
    assert number == str(Challenge.objects.get().match_number)
    screenshot("ask-the-caller")

    answer_on_the_phone(browser, live_server, number, screenshot)
    expect(page.get_by_text(re.compile(r"Verified until \d\d:\d\d UTC"))).to_be_visible(timeout=5_000)

    # Both conditions hold: perform the MFA reset from the person page.
    page.goto(f"/people/{person.pk}/")
    with page.expect_navigation():
        page.locator("#action-mfa_reset").get_by_role("link", name="Perform MFA reset").click()
    expect(page.locator("#condition-verification")).to_contain_text("Yes: ticket INC-8080")
    screenshot("action-ready")
    with page.expect_navigation():
        page.get_by_role("button", name="Perform MFA reset").click()
    done = HelpdeskAction.objects.get()
    expect(page).to_have_url(url_path(f"/access/actions/{done.pk}/"))
    expect(page.locator(".reference")).to_have_text(done.reference)
    expect(page.locator(".connector-message")).to_contain_text("Remove every MFA factor of Grace Hopper")
    assert VerificationRequest.objects.get().consumed_at is not None
    assert done.grant == grant
    screenshot("mfa-reset-recorded")

    # The grant runs out by itself; the action is refused again, for want of a grant.
    page.goto(f"/access/grants/{grant.pk}/")
    expect(page.locator(".verdict.stop")).to_contain_text("Expired", timeout=(GRANT_SECONDS + 10) * 1000)
    assert not grant_allows(technician=technician, organization=org, action="mfa_reset")
    services.access_sweep()  # what the beat runs: the expiry task's work, missed or not
    grant.refresh_from_db()
    assert grant.mirror_cleaned_at is not None
    assert AccessRequest.objects.get().status == AccessRequest.Status.ENDED
    page.goto(f"/access/people/{person.pk}/actions/mfa_reset/")
    expect(page.locator("#condition-grant")).to_contain_text("No active grant covers an MFA reset")
    screenshot("after-expiry")

    # The auditor finds it on the person's timeline.
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
    try:
        audit_page = context.new_page()
        sign_in(audit_page, email=auditor.email, password=PASSWORD, secret=auditor.totp_secret)
        audit_page.goto(f"/audit/people/{person.pk}/")
        expect(audit_page.get_by_role("heading", name="Timeline of Grace Hopper")).to_be_visible()
        expect(audit_page.locator("table.events code", has_text="action.performed")).to_be_visible()
        expect(audit_page.locator("table.events code", has_text="verification.request_consumed")).to_be_visible()
        expect(audit_page.locator("table.events code", has_text="verification.request_verified")).to_be_visible()
        screenshot("person-timeline", target=audit_page)
    finally:
        context.close()
