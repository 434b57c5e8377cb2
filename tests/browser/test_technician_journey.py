import re
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, expect

from accounts.models import Role
from tests.accounts.factories import PASSWORD, OrganizationFactory, PersonFactory, UserFactory
from tests.browser.flows import (
    REAUTHENTICATE,
    RECOVERY_CODES,
    TOTP_ACTIVATE,
    fresh_totp,
    search_people,
    sign_in,
    sign_in_with_password,
    url_path,
)

pytestmark = pytest.mark.browser


def test_new_technician_enrols_totp_then_finds_a_caller(page: Page, screenshot):
    org = OrganizationFactory(name="Contoso")
    person = PersonFactory(organization=org, full_name="Ada Quartermain", employee_id="E424242")
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org])

    sign_in_with_password(page, email=technician.email, password=PASSWORD)
    # No authenticator yet: every page sends them to enrol first. allauth guards
    # enrolment with "Confirm Access" (a sign-in is not a reauthentication), so the
    # password is asked once more on the way.
    expect(page).to_have_url(url_path(REAUTHENTICATE))
    assert parse_qs(urlsplit(page.url).query)["next"] == [TOTP_ACTIVATE]
    page.locator('input[name="password"]').fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Confirm").click()
    expect(page).to_have_url(url_path(TOTP_ACTIVATE))
    expect(page.get_by_role("heading", name="Activate Authenticator App")).to_be_visible()
    screenshot("totp-enrolment")

    secret = page.locator("#authenticator_secret").input_value()
    assert re.fullmatch(r"[A-Z2-7]{16,}", secret), secret
    page.locator('input[name="code"]').fill(fresh_totp(secret))
    with page.expect_navigation():
        page.get_by_role("button", name="Activate").click()

    expect(page).to_have_url(url_path(RECOVERY_CODES))
    expect(page.get_by_text("Authenticator app activated.")).to_be_visible()
    codes = page.locator("#recovery_codes").input_value().split()
    assert len(codes) >= 8 and len(set(codes)) == len(codes)
    screenshot("recovery-codes")

    search_people(page, "quartermain")
    screenshot("search-results")
    with page.expect_navigation():
        page.get_by_role("link", name="Ada Quartermain", exact=True).click()

    expect(page).to_have_url(url_path(f"/people/{person.pk}/"))
    expect(page.get_by_role("heading", name="Ada Quartermain")).to_be_visible()
    expect(page.get_by_text("E424242")).to_be_visible()
    screenshot("person")


def test_technician_of_another_organisation_cannot_see_the_person(page: Page, screenshot):
    contoso = OrganizationFactory(name="Contoso")
    fabrikam = OrganizationFactory(name="Fabrikam")
    outsider_target = PersonFactory(organization=contoso, full_name="Grace Underhill", employee_id="E777001")
    PersonFactory(organization=fabrikam, full_name="Grace Overton", employee_id="E777002")
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[fabrikam], mfa=True)

    sign_in(page, email=technician.email, password=PASSWORD, secret=technician.totp_secret)
    expect(page).to_have_url(url_path("/"))

    response = page.goto(f"/people/{outsider_target.pk}/")
    assert response is not None and response.status == 404
    expect(page.get_by_text("Grace Underhill")).to_have_count(0)
    screenshot("other-org-person-404")

    # Their own organisation's Grace is found, the other organisation's is not.
    search_people(page, "grace")
    expect(page.get_by_role("link", name="Grace Overton", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Grace Underhill", exact=True)).to_have_count(0)
    search_people(page, "E777001")
    expect(page.get_by_text("Nobody matches")).to_be_visible()
    screenshot("other-org-search-empty")
