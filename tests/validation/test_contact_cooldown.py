"""A phone or email of record changed within the cooldown cannot serve a verification: every
channel that uses it refuses, the technician's pages say why, and a message queued before the
change is never sent to the new contact."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from accounts.services import person_update
from audit.models import SecurityEvent
from tests.validation.factories import technician_for
from validation import services
from validation.channels import CHANNELS
from validation.channels.base import email_unavailable_reason
from validation.models import Action, Challenge, Method, OutboxMessage

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


@pytest.fixture
def technician(org):
    return technician_for(org, mfa=True)


@pytest.fixture
def tech_client(client, technician):
    client.force_login(technician)
    return client


SENDING_CHANNELS = [method for method, channel in CHANNELS.items() if channel.sends_message]


@pytest.mark.parametrize("method", SENDING_CHANNELS)
def test_every_channel_that_sends_refuses_a_contact_changed_within_the_cooldown(clock, person, method):
    person.contact_changed_at = T0 - timedelta(days=7) + timedelta(seconds=1)
    reason = CHANNELS[method].unavailable_reason(person)
    assert reason.startswith("Contact details changed on 2026-02-23;") and "2026-03-02 10:00 UTC" in reason
    clock.shift(timedelta(seconds=1))
    assert CHANNELS[method].unavailable_reason(person) is None


def test_the_email_of_record_has_the_same_cooldown(clock, person):
    person.contact_changed_at = T0 - timedelta(days=1)
    assert "the email cannot verify until 2026-03-08" in email_unavailable_reason(person)
    person.contact_changed_at = None
    assert email_unavailable_reason(person) is None
    person.email = ""
    assert email_unavailable_reason(person) == "No email of record"


def test_the_live_page_disables_the_phone_methods_and_says_why(clock, tech_client, technician, person):
    person.contact_changed_at = T0 - timedelta(days=2)
    person.save()
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-9"
    )
    page = tech_client.get(reverse("validation:detail", args=[verification.pk])).content.decode()
    reason = "Contact details changed on 2026-02-28; the phone cannot verify until 2026-03-07 10:00 UTC"
    for label in ("SMS code", "Number-matched approval link"):
        assert (
            f'<button type="submit" disabled>Send {label}</button>\n        <span class="hint">{reason}</span>' in page
        )


def test_the_start_page_says_why_no_enrolment_link_can_be_sent(clock, tech_client, person):
    person.contact_changed_at = T0 - timedelta(days=2)
    person.save()
    page = tech_client.get(reverse("validation:start", args=[person.pk])).content.decode()
    assert "Send authenticator enrolment link" not in page
    assert "No authenticator enrolment link can be sent: Contact details changed on 2026-02-28" in page
    assert "SMS code</strong>:\n    cannot verify: Contact details changed" in page


def test_a_phone_changed_after_queueing_a_challenge_gets_no_text(technician, person, outbox, capture):
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-10"
    )
    with capture() as callbacks:
        challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    person_update(actor=None, person=person, data={"phone": "+12025550999"})
    for callback in callbacks:
        callback()
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.FAILED
    assert challenge.failure_reason.startswith("Not sent: Contact details changed on")
    assert not OutboxMessage.objects.exists()


def test_a_phone_changed_after_queueing_an_enrolment_link_gets_no_text(technician, person, outbox, capture):
    with capture() as callbacks:
        services.enrollment_start(actor=technician, person=person)
    person_update(actor=None, person=person, data={"phone": "+12025550999"})
    for callback in callbacks:
        callback()
    assert not OutboxMessage.objects.exists()
    failed = SecurityEvent.objects.get(event_type="verification.enrollment_failed")
    assert failed.details["reason"].startswith("Not sent: Contact details changed on")
