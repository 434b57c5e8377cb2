"""The action pages (person page "Actions", the action page, the record) and contact changes:
scoped (another organisation's person, verification or record is a 404), each refusal names
what is missing with a link to its fix, the temporary password lives only in one no-store
response, and a contact change tells both contacts without showing either in full."""

import logging
import re

import pytest
from django.core import mail
from django.urls import reverse

from access.action_models import HelpdeskAction
from accounts.models import Person
from tests.access.factories import GrantFactory, RoleFactory, technician_for
from tests.access.test_actions import ALL_ACTIONS, assert_not_in_database, verified
from tests.accounts.factories import OrganizationFactory, PersonFactory
from validation.channels.base import phone_unavailable_reason
from validation.models import OutboxMessage

pytestmark = pytest.mark.django_db


@pytest.fixture
def technician(org):
    return technician_for(org, mfa=True)


@pytest.fixture
def person(org):
    return PersonFactory(
        organization=org, full_name="Ada Quartermain", phone="+12025550142", email="ada@client.example"
    )


@pytest.fixture
def grant(technician, org):
    return GrantFactory(technician=technician, role=RoleFactory(actions=list(ALL_ACTIONS)), organization=org)


@pytest.fixture
def signed_in(client, technician):
    client.force_login(technician)
    return client


def text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def action_url(person, action):
    return reverse("access:action_start", args=[person.pk, action])


def test_the_person_page_lists_the_actions_with_what_each_needs(signed_in, person, grant, technician):
    verified(technician, person, "mfa_reset")

    page = signed_in.get(reverse("person_detail", args=[person.pk]))

    body = page.content.decode()
    assert page.status_code == 200 and "<h2>Actions</h2>" in body
    for action in ALL_ACTIONS:
        assert action_url(person, action) in body
    assert "Perform MFA reset" in text(page) and "Open Password reset" in text(page)
    assert reverse("validation:start", args=[person.pk]) + "?action=password_reset" in body


def test_a_refusal_names_what_is_missing_and_links_to_the_fixes(signed_in, person):
    response = signed_in.post(action_url(person, "mfa_reset"), {})

    assert response.status_code == 403
    page = text(response)
    assert "Refused: nothing was done." in page
    assert "Missing: an active grant." in page and "Missing: a verified caller." in page
    body = response.content.decode()
    assert f'href="{reverse("access:request_create")}"' in body
    assert f'href="{reverse("validation:start", args=[person.pk])}?action=mfa_reset"' in body


def test_a_refusal_for_the_verification_alone_says_the_grant_is_fine(signed_in, person, grant):
    response = signed_in.post(action_url(person, "account_unlock"), {})
    assert response.status_code == 403
    assert "Your grant is fine; only the caller's verification is missing." in text(response)
    assert "Missing: an active grant." not in text(response)


def test_the_verification_start_page_preselects_the_action_of_the_fix(signed_in, person):
    page = signed_in.get(reverse("validation:start", args=[person.pk]) + "?action=contact_change")
    assert re.search(r'<option value="contact_change" selected>', page.content.decode())


def test_performing_redirects_to_the_record(signed_in, person, grant, technician):
    verification = verified(technician, person, "account_unlock")
    page = signed_in.get(action_url(person, "account_unlock"))
    assert f'name="verification" value="{verification.pk}"' in page.content.decode()

    response = signed_in.post(action_url(person, "account_unlock"), {"verification": verification.pk}, follow=True)

    done = HelpdeskAction.objects.get()
    assert response.redirect_chain[-1][0] == reverse("access:action_detail", args=[done.pk])
    assert done.reference in text(response) and "Unlock the account of Ada Quartermain" in text(response)


def test_another_organisations_person_verification_and_record_are_404(signed_in, person, grant, technician):
    elsewhere = OrganizationFactory()
    stranger = PersonFactory(organization=elsewhere)
    assert signed_in.get(action_url(stranger, "mfa_reset")).status_code == 404
    assert signed_in.post(action_url(stranger, "mfa_reset"), {}).status_code == 404

    colleague = technician_for(elsewhere)
    theirs = verified(colleague, stranger, "mfa_reset")
    assert signed_in.post(action_url(person, "mfa_reset"), {"verification": theirs.pk}).status_code == 404

    record = HelpdeskAction.objects.create(
        organization=elsewhere,
        person=stranger,
        technician=colleague,
        action="mfa_reset",
        verification=theirs,
        grant=GrantFactory(technician=colleague, organization=elsewhere),
        connector="record_only",
        reference="HD-OTHERORG1",
    )
    assert signed_in.get(reverse("access:action_detail", args=[record.pk])).status_code == 404


@pytest.mark.parametrize("bad", ["other", "../admin", "password_reset2"])
def test_an_unknown_action_is_404(signed_in, person, bad):
    assert signed_in.get(f"/access/people/{person.pk}/actions/{bad}/").status_code == 404


def test_the_temporary_password_is_shown_once_no_store_and_nowhere_else(signed_in, person, grant, technician, caplog):
    verification = verified(technician, person, "password_reset")
    with caplog.at_level(logging.DEBUG):
        response = signed_in.post(action_url(person, "password_reset"), {"verification": verification.pk})

    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    password = re.search(r'<code class="temporary-password">([^<]+)</code>', response.content.decode()).group(1)
    password = password.replace("&amp;", "&").replace("&#x27;", "'").replace("&quot;", '"')
    assert password not in caplog.text
    assert password not in repr(dict(signed_in.session))
    assert_not_in_database(password)
    done = HelpdeskAction.objects.get()
    later = signed_in.get(reverse("access:action_detail", args=[done.pk]))
    assert later.status_code == 200 and "temporary-password" not in later.content.decode()


def test_a_phone_change_notifies_the_old_and_the_new_number_masked(
    signed_in, person, grant, technician, settings, django_capture_on_commit_callbacks
):
    settings.SMS_DEV_OUTBOX = True
    verification = verified(technician, person, "contact_change")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in.post(
            action_url(person, "contact_change"),
            {"verification": verification.pk, "contact_field": "phone", "new_contact": "(202) 555-0199"},
        )

    assert response.status_code == 302
    person.refresh_from_db()
    assert person.phone == "+12025550199" and person.contact_changed_at is not None
    assert "cannot verify until" in phone_unavailable_reason(person)
    old = OutboxMessage.objects.get(to="+12025550142").body
    new = OutboxMessage.objects.get(to="+12025550199").body
    assert "changed to •••• 0199" in old and "+12025550199" not in old and "5550199" not in old
    assert "replacing •••• 0142" in new and "+12025550142" not in new and "5550142" not in new
    done = HelpdeskAction.objects.get()
    assert done.previous_contact_notified_at and done.new_contact_notified_at


def test_an_email_change_emails_the_old_and_the_new_address_masked(
    person, grant, technician, django_capture_on_commit_callbacks
):
    from access.services.actions import helpdesk_action_perform

    verification = verified(technician, person, "contact_change")
    with django_capture_on_commit_callbacks(execute=True):
        helpdesk_action_perform(
            actor=technician,
            person=person,
            action="contact_change",
            verification=verification,
            contact_field="email",
            new_contact="Ada.Q@Client.example",
        )

    assert Person.objects.get(pk=person.pk).email == "ada.q@client.example"
    (to_old,) = [m for m in mail.outbox if m.to == ["ada@client.example"]]
    (to_new,) = [m for m in mail.outbox if m.to == ["ada.q@client.example"]]
    assert "a•••@client.example" in to_old.body and "ada.q@client.example" not in to_old.body
    assert "a•••@client.example" in to_new.body and "ada@client.example" not in to_new.body


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("phone", "12", "Enter a complete phone number"),
        ("phone", "+12025550142", "already the phone of record"),
        ("email", "not-an-address", "valid email"),
        ("fax", "+12025550100", "Select a valid choice"),
    ],
)
def test_a_bad_new_contact_changes_nothing_and_keeps_the_verification(
    signed_in, person, grant, technician, field, value, says
):
    verification = verified(technician, person, "contact_change")
    response = signed_in.post(
        action_url(person, "contact_change"),
        {"verification": verification.pk, "contact_field": field, "new_contact": value},
    )
    assert response.status_code == 200 and says in text(response)
    verification.refresh_from_db()
    assert verification.consumed_at is None and not HelpdeskAction.objects.exists()
    assert Person.objects.get(pk=person.pk).phone == "+12025550142"


def test_an_email_another_person_has_is_refused(person, grant, technician, org):
    from access.services import AccessError
    from access.services.actions import helpdesk_action_perform

    PersonFactory(organization=org, email="taken@client.example")
    with pytest.raises(AccessError, match="Another person"):
        helpdesk_action_perform(
            actor=technician,
            person=person,
            action="contact_change",
            verification=verified(technician, person, "contact_change"),
            contact_field="email",
            new_contact="TAKEN@client.example",
        )
