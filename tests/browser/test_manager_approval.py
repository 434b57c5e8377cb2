"""A manager approves a privileged person's MFA reset from the texted link, on a phone-sized
screen with JavaScript off, while the technician's page follows along without a reload."""

import re

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Role
from tests.accounts.factories import PASSWORD, OrganizationFactory, PersonFactory, UserFactory
from tests.browser.flows import sign_in
from tests.validation.factories import AuthenticatorFactory
from tests.validation.helpers import last_text, link_token_in, totp_code
from validation import services
from validation.models import Challenge

pytestmark = pytest.mark.browser

PHONE = {"width": 360, "height": 740}


def fits_the_screen(handset) -> bool:
    return handset.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_manager_approves_a_privileged_mfa_reset_from_the_link_on_a_phone(
    page: Page, browser, live_server, settings, screenshot
):
    settings.SMS_DEV_OUTBOX = True
    settings.PUBLIC_BASE_URL = live_server.url
    org = OrganizationFactory(name="Contoso")
    manager = PersonFactory(organization=org, full_name="Morgan Manager", phone="+12025550199")
    person = PersonFactory(
        organization=org, full_name="Grace Hopper", privileged=True, manager=manager, phone="+12025550123"
    )
    authenticator = AuthenticatorFactory(person=person)
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org], mfa=True, full_name="Terry Tech")
    sign_in(page, email=technician.email, password=PASSWORD, secret=technician.totp_secret)

    page.goto(f"/people/{person.pk}/verify/")
    page.get_by_label("What does the caller want?").select_option("mfa_reset")
    page.get_by_label("Ticket reference").fill("INC-77")
    with page.expect_navigation():
        page.get_by_role("button", name="Verify caller").click()
    expect(page.locator(".missing")).to_contain_text("A manager or peer approval is required")
    detail_url = page.url
    page.evaluate("window.__notReloaded = true")

    # The caller proves they hold the person's phone and authenticator (push, then TOTP).
    page.get_by_role("button", name="Send Number-matched approval link").click()
    expect(page.locator(".match-number")).to_be_visible()
    push = Challenge.objects.get(method="push")
    services.push_respond(token=link_token_in(last_text(person.phone)), choice=str(push.match_number))
    page.get_by_label("Code from the caller's authenticator app").fill(totp_code(authenticator.raw_key))
    page.get_by_role("button", name="Check authenticator code").click()
    expect(page.locator(".missing")).to_have_text("A manager or peer approval is required", timeout=5_000)

    # The technician asks the manager; the live view shows the link going out.
    page.get_by_role("button", name="Ask manager Morgan Manager to approve").click()
    expect(page.get_by_text("Waiting for them to open the link")).to_be_visible(timeout=5_000)
    screenshot("technician-approval-sent")

    # The manager's phone: the messages app (the development outbox) and a browser, no JavaScript.
    phone = browser.new_context(base_url=live_server.url, viewport=PHONE, java_script_enabled=False, locale="en-GB")
    try:
        messages = phone.new_page()
        messages.goto("/dev/outbox/")
        link = messages.locator('a[href*="/a/"]')
        expect(link).to_have_count(1)
        handset = phone.new_page()
        handset.goto(link.get_attribute("href"))
        expect(handset.get_by_role("heading", name="Your approval is needed")).to_be_visible()
        expect(handset.get_by_text("Grace Hopper")).to_have_count(0)  # nothing before they prove who they are
        assert fits_the_screen(handset)
        screenshot("phone-identify", target=handset)
        with handset.expect_navigation():
            handset.get_by_role("button", name="Send me a code").click()

        messages.reload()
        code = re.search(
            r"code to confirm it is you is (\d{6,8})", messages.locator(".text-message").first.inner_text()
        )
        handset.get_by_label("Enter the code we sent to •••• 0199").fill(code.group(1))
        screenshot("phone-code", target=handset)
        with handset.expect_navigation():
            handset.get_by_role("button", name="Confirm it is me").click()
        expect(page.get_by_text("Confirmed who they are at")).to_be_visible(timeout=5_000)

        expect(handset.get_by_role("heading", name="Do you approve this request?")).to_be_visible()
        for fact in ("Terry Tech", "MFA reset", "INC-77", "Grace Hopper", "•••• 0123"):
            expect(handset.get_by_text(fact).first).to_be_visible()
        content = handset.content()
        assert person.phone not in content and person.email not in content and manager.phone not in content
        assert fits_the_screen(handset)
        screenshot("phone-decide", target=handset)
        with handset.expect_navigation():
            handset.get_by_role("button", name="Approve", exact=True).click()
        expect(handset.get_by_role("heading", name="Thank you, you approved it")).to_be_visible()
        assert fits_the_screen(handset)
        screenshot("phone-approved", target=handset)
    finally:
        phone.close()

    expect(page.get_by_text(re.compile(r"Verified until \d\d:\d\d UTC"))).to_be_visible(timeout=5_000)
    expect(page.get_by_text("covers one action: MFA reset for Grace Hopper.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"approved at \d\d:\d\d:\d\d UTC"))).to_be_visible()
    assert page.url == detail_url and page.evaluate("window.__notReloaded") is True
    screenshot("technician-verified")
