"""Email code: a code emailed to the email of record, checked like an SMS code; low
assurance, so never strong and never sufficient alone; the email's "I didn't request
this" link reports fraud."""

import re
from datetime import timedelta
from smtplib import SMTPRecipientsRefused

import pytest
import time_machine
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.mail.backends.base import BaseEmailBackend
from django.urls import reverse
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.models import Role
from tests.accounts.factories import UserFactory
from tests.validation.factories import AuthenticatorFactory, technician_for
from tests.validation.hardening import allow, events_of, send, snapshot, start
from tests.validation.helpers import totp_code
from validation import services
from validation.channels import channel_for
from validation.models import Action, Challenge, Method, PersonVerificationState, VerificationRequest
from validation.policy import STRONG_METHODS, Requirement, policy_floor_errors, requirement_evaluate
from validation.services import VerificationError


class RefusingBackend(BaseEmailBackend):
    """A mail server that refuses every recipient (the outer boundary, SMTP)."""

    def send_messages(self, email_messages):
        raise SMTPRecipientsRefused({m.to[0]: (550, b"no such user") for m in email_messages})


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def code_in(body: str) -> str:
    return re.search(r"^    ([0-9]{6,8})$", body, re.MULTILINE).group(1)


def fraud_path_in(body: str) -> str:
    return re.search(r"https?://[^/\s]+(/f/[^/\s]+/)", body).group(1)


@pytest.fixture
def emailed(technician, person, capture):
    """An email-code challenge, sent; the policy also allows an SMS code and TOTP."""
    allow(person.organization, [Method.EMAIL_CODE, Method.SMS_CODE, Method.TOTP])
    challenge = send(technician, start(technician, person), Method.EMAIL_CODE, capture)
    assert challenge.status == Challenge.Status.SENT
    return challenge


def test_the_code_is_emailed_and_stored_only_as_an_hmac(emailed, person):
    [message] = mail.outbox
    assert message.to == [person.email]
    assert person.organization.name in message.subject
    code = code_in(message.body)
    assert len(code) == 6 and emailed.code_hmac and code not in emailed.code_hmac
    assert emailed.provider_message_id.startswith("EM")
    assert emailed.destination_masked == f"{person.email[0]}•••@client.example"
    assert "/f/" in message.body and "I didn't request" not in message.subject
    event = events_of("verification.challenge_sent")[0]
    assert code not in str(event.details)


def test_a_privileged_person_gets_eight_digits(technician, person, capture):
    person.privileged = True
    person.save()
    allow(person.organization, [Method.EMAIL_CODE, Method.SMS_CODE])
    send(technician, start(technician, person), Method.EMAIL_CODE, capture)
    assert len(code_in(mail.outbox[0].body)) == 8


def test_the_technician_checks_it_like_an_sms_code(emailed, technician):
    assert not services.sms_code_check(actor=technician, challenge=emailed, code="000000")
    emailed.refresh_from_db()
    assert emailed.attempts == 1
    assert services.sms_code_check(actor=technician, challenge=emailed, code=code_in(mail.outbox[0].body))
    emailed.refresh_from_db()
    assert emailed.status == Challenge.Status.APPROVED


def test_an_email_code_alone_never_verifies_whatever_the_policy_says(emailed, technician, person, capture, outbox):
    assert services.sms_code_check(actor=technician, challenge=emailed, code=code_in(mail.outbox[0].body))
    verification = VerificationRequest.objects.get(pk=emailed.request_id)
    assert verification.policy_snapshot["min_methods"] == 1  # the policy would take one method
    assert verification.status == VerificationRequest.Status.PENDING
    evaluation = requirement_evaluate(services.requests.verification_requirement(verification), [Method.EMAIL_CODE])
    assert not evaluation.met and "An email code never suffices alone" in evaluation.missing[0]

    sms = send(technician, verification, Method.SMS_CODE, capture)
    from tests.validation.helpers import code_in as sms_code_in
    from tests.validation.helpers import last_text

    assert services.sms_code_check(actor=technician, challenge=sms, code=sms_code_in(last_text(person.phone)))
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED


@hypothesis_settings(max_examples=100, deadline=None, database=None)
@given(
    action=st.sampled_from(Action.values),
    others=st.sets(st.sampled_from([m for m in Method.values if m != Method.EMAIL_CODE])),
    min_methods=st.integers(0, 4),
    min_strong=st.integers(0, 4),
    privileged=st.booleans(),
)
def test_no_requirement_is_met_by_an_email_code_alone(action, others, min_methods, min_strong, privileged):
    requirement = Requirement(
        action=action,
        allowed=(Method.EMAIL_CODE, *sorted(others)),
        min_methods=min_methods,
        min_strong=min_strong,
        privileged=privileged,
    )
    assert not requirement_evaluate(requirement, [Method.EMAIL_CODE, Method.EMAIL_CODE]).met


def test_an_email_code_is_never_strong_and_a_policy_of_email_alone_is_refused(db, org, capture):
    assert Method.EMAIL_CODE not in STRONG_METHODS and not channel_for(Method.EMAIL_CODE).strong
    errors = policy_floor_errors(
        action=Action.OTHER, allowed=[Method.EMAIL_CODE], min_methods=1, min_strong=0, required=[], privileged_extra=0
    )
    assert errors["allowed_methods"] == "An email code is never sufficient alone: allow another method too."
    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org])
    policy = services.policy_for(organization=org, action=Action.OTHER)
    with pytest.raises(ValidationError):
        services.policy_update(
            actor=admin, policy=policy, data={"allowed_methods": [Method.EMAIL_CODE], "min_strong_methods": 0}
        )
    errors = policy_floor_errors(
        action=Action.PASSWORD_RESET,
        allowed=[Method.EMAIL_CODE, Method.SMS_CODE],
        min_methods=1,
        min_strong=1,
        required=[],
        privileged_extra=0,
    )
    assert errors["min_strong_methods"] == "Not enough strong methods are allowed."


def test_no_email_of_record_or_a_recent_change_makes_it_unavailable(db, person):
    channel = channel_for(Method.EMAIL_CODE)
    assert channel.unavailable_reason(person) is None
    person.contact_changed_at = timezone.now() - timedelta(days=2)
    assert "the email cannot verify until" in channel.unavailable_reason(person)
    person.email = ""
    assert channel.unavailable_reason(person) == "No email of record"


def test_a_refused_recipient_fails_the_challenge(technician, person, capture, settings):
    settings.EMAIL_BACKEND = "tests.validation.test_email_code.RefusingBackend"
    allow(person.organization, [Method.EMAIL_CODE, Method.SMS_CODE])
    challenge = send(technician, start(technician, person), Method.EMAIL_CODE, capture)
    assert challenge.status == Challenge.Status.FAILED
    assert challenge.failure_reason == "The mail server refused the email of record"
    assert not PersonVerificationState.objects.filter(consecutive_failures__gt=0).exists()


def test_the_technician_page_checks_an_email_code(client, org, person, capture):
    technician = technician_for(org, mfa=True)
    allow(org, [Method.EMAIL_CODE, Method.SMS_CODE])
    verification = start(technician, person)
    client.force_login(technician)
    assert b'value="email_code"' in client.get(reverse("validation:detail", args=[verification.pk])).content
    with capture(execute=True):
        client.post(reverse("validation:send", args=[verification.pk]), {"method": "email_code"})
    challenge = Challenge.objects.get(request=verification)
    response = client.post(
        reverse("validation:code_check", args=[verification.pk, challenge.pk]),
        {"code": code_in(mail.outbox[0].body)},
        follow=True,
    )
    assert b"Code accepted." in response.content
    assert b"An email code never suffices alone" in response.content


# --- "I didn't request this" from the email ------------------------------------------------


def test_the_fraud_page_shows_the_request_and_get_changes_nothing(client, emailed, technician):
    before = snapshot()
    response = client.get(fraud_path_in(mail.outbox[0].body))
    assert response.status_code == 200
    page = response.content.decode()
    assert "I didn't request this" in page and "INC-ABC" in page and technician.full_name in page
    assert emailed.request.person.email not in page and emailed.request.person.phone not in page
    assert response["Cache-Control"].startswith("max-age=0") and response["Referrer-Policy"] == "no-referrer"
    assert snapshot() == before


def test_the_fraud_link_locks_emails_the_admins_and_works_once(client, emailed, org, technician, person, capture):
    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org])
    path = fraud_path_in(mail.outbox[0].body)
    mail.outbox.clear()
    with capture(execute=True):
        response = client.post(path)
    assert response.status_code == 200 and b"Thank you for reporting this" in response.content
    state = PersonVerificationState.objects.get(person=person)
    assert state.locked_at is not None and state.locked_technician == technician
    assert VerificationRequest.objects.get(pk=emailed.request_id).status == VerificationRequest.Status.LOCKED
    [report] = events_of("verification.fraud_reported")
    assert report.details["via"] == "email_link"
    assert [m.to for m in mail.outbox] == [[admin.email]]

    before = snapshot()
    again = client.post(path)
    assert again.status_code == 410
    assert events_of("verification.link_rejected")[0].details["page"] == "fraud_report"
    assert snapshot()[:3] == before[:3]


def test_the_fraud_link_outlives_the_code_but_not_a_day(client, emailed, person):
    path = fraud_path_in(mail.outbox[0].body)
    with time_machine.travel(timezone.now() + timedelta(hours=25)):
        assert client.post(path).status_code == 410
    assert not PersonVerificationState.objects.filter(locked_at__isnull=False).exists()
    with time_machine.travel(emailed.expires_at + timedelta(minutes=30)):
        assert client.post(path).status_code == 200
    assert PersonVerificationState.objects.get(person=person).locked_at is not None


def test_a_tampered_fraud_link_is_not_found_and_changes_nothing(client, emailed):
    path = fraud_path_in(mail.outbox[0].body)
    before = snapshot()
    assert client.post(path[:-3] + "xx/").status_code == 404
    assert snapshot()[:3] == before[:3]


def test_a_fraud_report_withdraws_a_verified_result_not_yet_used(client, technician, person, capture):
    authenticator = AuthenticatorFactory(person=person)
    allow(person.organization, [Method.EMAIL_CODE, Method.TOTP], min_methods=2, min_strong=1)
    verification = start(technician, person)
    challenge = send(technician, verification, Method.EMAIL_CODE, capture)
    assert services.sms_code_check(actor=technician, challenge=challenge, code=code_in(mail.outbox[0].body))
    assert services.totp_check(actor=technician, verification=verification, code=totp_code(authenticator.raw_key))
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED

    assert client.post(fraud_path_in(mail.outbox[0].body)).status_code == 200
    with pytest.raises(VerificationError, match="not verified"):
        services.verification_consume(actor=technician, verification=verification, person=person, action=Action.OTHER)
