"""SMS reply: the person answers ``YES <number>`` (the number on the technician's screen)
or ``NO`` from the phone of record; anything else changes nothing."""

import logging
import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.models import Role
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory
from tests.validation.factories import technician_for
from tests.validation.hardening import events_of, new_sid, other_number, reply_challenge, snapshot
from tests.validation.helpers import last_text
from validation.models import (
    Challenge,
    InboundMessage,
    Method,
    OutboxMessage,
    PersonVerificationState,
    VerificationRequest,
)
from validation.services import replies


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


@pytest.fixture
def challenge(technician, person, outbox, capture):
    return reply_challenge(technician, person, capture)


def receive(phone, body, sid=None):
    return replies.sms_reply_receive(message_sid=sid or new_sid(), from_number=phone, body=body)


def test_the_text_asks_for_yes_and_a_number_it_does_not_contain(db, outbox, capture):
    organization = OrganizationFactory(name="Acme Widgets")
    person = PersonFactory(organization=organization)
    technician = technician_for(organization, full_name="Tess Tech")
    challenge = reply_challenge(technician, person, capture)
    body = last_text(person.phone)
    assert "reply YES and the 2-digit number" in body and "reply NO" in body
    assert str(challenge.match_number) not in re.sub(r"INC-ABC", "", body)
    assert challenge.destination_masked == person.masked_phone


def test_yes_with_the_number_verifies(challenge, person):
    assert receive(person.phone, f"YES {challenge.match_number}") == replies.APPROVED
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.APPROVED
    assert VerificationRequest.objects.get(pk=challenge.request_id).status == VerificationRequest.Status.VERIFIED
    [event] = events_of("verification.challenge_approved")
    assert event.actor_kind == "end_user" and event.details["method"] == Method.SMS_REPLY
    inbound = InboundMessage.objects.get()
    assert inbound.outcome == replies.APPROVED and inbound.challenge_id == challenge.pk


@pytest.mark.parametrize("template", ["yes {n}", " YES  {n} ", "Yes{n}", "yEs\t{n}\n", "YES {n}  "])
def test_the_reply_is_case_and_whitespace_tolerant(challenge, person, template):
    assert receive(person.phone, template.format(n=challenge.match_number)) == replies.APPROVED


@pytest.mark.parametrize(
    "body",
    ["", "YES", "yes please", "Y {n}", "YES {n}{n}", "YES {n}.", "YESS {n}", "ok", "{n}", "YES ٤٢", "YES\u00a0{n}"]
    + ["STOP", "NO NO", "NO {n}{n}"],
)
def test_anything_else_changes_nothing(challenge, person, body):
    before = snapshot()
    outcome = receive(person.phone, body.format(n=challenge.match_number))
    assert outcome in (replies.NOT_UNDERSTOOD, replies.KEYWORD)
    assert snapshot() == before
    assert (replies.reply_text(outcome) == "") == (outcome == replies.KEYWORD)


@pytest.mark.parametrize("sender", ["+12025550999", "{phone}0", "{digits}", "00{digits}", "", "whatsapp:{phone}"])
def test_a_reply_from_another_number_changes_nothing(challenge, person, sender):
    before = snapshot()
    sender = sender.format(phone=person.phone, digits=person.phone[1:])
    assert receive(sender, f"YES {challenge.match_number}") == replies.NO_OPEN_REQUEST
    assert receive(sender, "NO") == replies.NO_OPEN_REQUEST
    assert snapshot() == before
    assert replies.reply_text(replies.NO_OPEN_REQUEST) == ""


def test_a_repeated_message_sid_changes_nothing(challenge, person, technician, capture):
    sid = new_sid()
    assert receive(person.phone, f"YES {challenge.match_number}", sid) == replies.APPROVED
    # A second challenge to the same phone that shows the same number: a replay must not answer it.
    second = reply_challenge(technician, person, capture)
    Challenge.objects.filter(pk=second.pk).update(match_number=challenge.match_number)
    before = snapshot()
    assert receive(person.phone, f"YES {challenge.match_number}", sid) == replies.DUPLICATE
    assert receive(person.phone, "NO", sid) == replies.DUPLICATE
    assert snapshot() == before
    assert InboundMessage.objects.count() == 1


def test_a_reply_to_an_expired_challenge_changes_nothing(challenge, person):
    before = snapshot()
    with time_machine.travel(challenge.expires_at + timedelta(seconds=1)):
        assert receive(person.phone, f"YES {challenge.match_number}") == replies.NO_OPEN_REQUEST
        assert receive(person.phone, "NO") == replies.NO_OPEN_REQUEST
    assert snapshot() == before


def test_a_reply_to_an_answered_challenge_changes_nothing(challenge, person):
    assert receive(person.phone, f"YES {challenge.match_number}") == replies.APPROVED
    before = snapshot()
    assert receive(person.phone, "NO") == replies.NO_OPEN_REQUEST
    assert receive(person.phone, f"YES {other_number(challenge.match_number)}") == replies.NO_OPEN_REQUEST
    assert snapshot() == before
    assert not PersonVerificationState.objects.filter(locked_at__isnull=False).exists()


def test_a_reply_after_the_phone_of_record_changed_changes_nothing(challenge, person):
    person.contact_changed_at = timezone.now()
    person.save()
    before = snapshot()
    assert receive(person.phone, f"YES {challenge.match_number}") == replies.NO_OPEN_REQUEST
    assert snapshot() == before


def test_the_wrong_number_fails_the_challenge_and_counts_a_failure(challenge, person):
    assert receive(person.phone, f"YES {other_number(challenge.match_number)}") == replies.WRONG_NUMBER
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.FAILED
    assert PersonVerificationState.objects.get(person=person).consecutive_failures == 1
    # It was the one answer the challenge takes.
    assert receive(person.phone, f"YES {challenge.match_number}") == replies.NO_OPEN_REQUEST


def test_no_reports_fraud_locks_the_person_and_emails_the_org_admins(challenge, person, org, technician, capture):
    admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org])
    UserFactory(roles=[Role.TECHNICIAN], organizations=[org])  # not an admin: not emailed
    UserFactory(roles=[Role.ORG_ADMIN], organizations=[OrganizationFactory()])  # another organisation's
    with capture(execute=True):
        assert receive(person.phone, " no ") == replies.FRAUD
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.DENIED
    assert VerificationRequest.objects.get(pk=challenge.request_id).status == VerificationRequest.Status.LOCKED
    state = PersonVerificationState.objects.get(person=person)
    assert state.locked_at is not None and state.locked_technician == technician
    assert state.locked_request_id == challenge.request_id
    [event] = events_of("verification.fraud_reported")
    assert event.details["via"] == "sms_reply" and event.actor_kind == "end_user"
    assert [m.to for m in mail.outbox] == [[admin.email]]
    assert person.full_name in mail.outbox[0].subject


def test_one_phone_in_two_organisations_answers_only_the_challenge_it_names(db, outbox, capture):
    phone = "+12025550142"
    people = [PersonFactory(organization=OrganizationFactory(), phone=phone) for _ in range(2)]
    technicians = [technician_for(p.organization) for p in people]
    first, second = (reply_challenge(t, p, capture) for t, p in zip(technicians, people, strict=True))
    assert first.match_number != second.match_number  # numbers are unique per phone

    neither = next(n for n in range(10, 100) if n not in (first.match_number, second.match_number))
    before = snapshot()
    assert receive(phone, f"YES {neither}") == replies.AMBIGUOUS
    assert snapshot() == before

    assert receive(phone, f"YES {second.match_number}") == replies.APPROVED
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (Challenge.Status.SENT, Challenge.Status.APPROVED)


def test_no_with_a_number_reports_only_that_challenge_and_no_alone_reports_all(db, outbox, capture):
    phone = "+12025550143"
    people = [PersonFactory(organization=OrganizationFactory(), phone=phone) for _ in range(3)]
    challenges = [reply_challenge(technician_for(p.organization), p, capture) for p in people]
    assert receive(phone, f"NO {challenges[0].match_number}") == replies.FRAUD
    locked = set(PersonVerificationState.objects.filter(locked_at__isnull=False).values_list("person_id", flat=True))
    assert locked == {people[0].pk}
    assert receive(phone, "NO") == replies.FRAUD
    locked = set(PersonVerificationState.objects.filter(locked_at__isnull=False).values_list("person_id", flat=True))
    assert locked == {p.pk for p in people}


def test_the_body_is_never_logged_stored_or_recorded(challenge, person, caplog):
    caplog.set_level(logging.DEBUG)
    receive(person.phone, "canary-zebra-8841")
    receive(person.phone, f"YES {challenge.match_number}")
    assert "canary-zebra-8841" not in caplog.text
    assert f"YES {challenge.match_number}" not in caplog.text
    assert not any("canary" in str(e.details) for e in events_of("verification.challenge_approved"))


# --- The technician's page and the development outbox -------------------------------------


def test_the_technician_sees_the_number_to_give(client, person, org, outbox, capture):
    technician = technician_for(org, mfa=True)
    challenge = reply_challenge(technician, person, capture)
    client.force_login(technician)
    page = client.get(reverse("validation:detail", args=[challenge.request_id])).content.decode()
    assert f'reply <strong>YES <span class="match-number">{challenge.match_number}</span></strong>' in page


def test_the_send_button_offers_sms_reply(client, org, person, outbox):
    from tests.validation.hardening import allow, start

    technician = technician_for(org, mfa=True)
    allow(person.organization, [Method.SMS_REPLY, Method.PUSH])
    verification = start(technician, person)
    client.force_login(technician)
    page = client.get(reverse("validation:detail", args=[verification.pk])).content.decode()
    assert 'value="sms_reply"' in page
    response = client.post(reverse("validation:send", args=[verification.pk]), {"method": "sms_reply"})
    assert response.status_code == 302
    assert Challenge.objects.get(request=verification).method == Method.SMS_REPLY


def test_the_outbox_phone_can_reply_and_reads_the_answer(client, challenge, person):
    page = client.get(reverse("validation:outbox")).content.decode()
    assert f"Reply from {person.phone}" in page
    form = client.get(reverse("validation:outbox_reply"), {"to": person.phone})
    assert form.status_code == 200 and b"Send reply" in form.content

    reply = {"to": person.phone, "body": f"yes {challenge.match_number}"}
    response = client.post(reverse("validation:outbox_reply"), reply)
    assert response.status_code == 302 and response["Location"] == reverse("validation:outbox")
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.APPROVED
    assert last_text(person.phone) == replies.reply_text(replies.APPROVED)


def test_the_outbox_reply_refuses_a_number_it_never_texted(client, challenge):
    before = snapshot()
    response = client.post(reverse("validation:outbox_reply"), {"to": "+12025550999", "body": "NO"})
    assert response.status_code == 400 and b"No text was sent to this number." in response.content
    assert snapshot() == before


@pytest.mark.parametrize("method", ["get", "post"])
def test_the_outbox_reply_does_not_exist_in_production_mode(client, challenge, person, settings, method):
    settings.SMS_DEV_OUTBOX = False
    before = snapshot()
    response = getattr(client, method)(reverse("validation:outbox_reply"), {"to": person.phone, "body": "NO"})
    assert response.status_code == 404
    assert snapshot() == before
    assert not OutboxMessage.objects.filter(body=replies.reply_text(replies.FRAUD)).exists()


# --- Concurrency: real transactions, one connection per thread ------------------------------


def all_at_once(work, count):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    barrier = threading.Barrier(count)

    def one(index):
        barrier.wait()
        try:
            return work(index)
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.fixture
def live_challenge(transactional_db, settings):
    from tests.validation.hardening import allow, start
    from validation import services

    settings.SMS_DEV_OUTBOX = True
    person = PersonFactory()
    technician = technician_for(person.organization)
    allow(person.organization, [Method.SMS_REPLY, Method.PUSH])
    verification = start(technician, person)
    challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_REPLY)
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.SENT
    return challenge


def test_a_message_sid_delivered_concurrently_is_applied_once(live_challenge):
    phone, sid = live_challenge.request.person.phone, new_sid()
    results = all_at_once(lambda _: receive(phone, f"YES {live_challenge.match_number}", sid), 16)
    assert results.count(replies.APPROVED) == 1 and results.count(replies.DUPLICATE) == 15
    assert InboundMessage.objects.get().message_sid == sid
    assert len(events_of("verification.challenge_approved")) == 1


def test_concurrent_yes_and_no_replies_have_one_consistent_winner(live_challenge):
    phone = live_challenge.request.person.phone
    bodies = [f"YES {live_challenge.match_number}", "NO"]
    results = all_at_once(lambda i: receive(phone, bodies[i % 2]), 16)
    winners = [r for r in results if r in (replies.APPROVED, replies.FRAUD)]
    assert len(winners) == 1 and results.count(replies.NO_OPEN_REQUEST) == 15
    live_challenge.refresh_from_db()
    locked = PersonVerificationState.objects.filter(locked_at__isnull=False).exists()
    if winners == [replies.APPROVED]:
        assert live_challenge.status == Challenge.Status.APPROVED and not locked
    else:
        assert live_challenge.status == Challenge.Status.DENIED and locked


@pytest.mark.django_db
def test_the_demo_allows_sms_reply_and_email_code_for_other_requests(settings):
    from django.core.management import call_command

    from audit.models import SecurityEvent
    from validation.models import Action, VerificationPolicy

    settings.DEBUG = True
    call_command("seed_demo", stdout=None)
    call_command("seed_demo_verification", stdout=None)
    policies = VerificationPolicy.objects.filter(action=Action.OTHER)
    assert policies.exists()
    assert all({Method.SMS_REPLY, Method.EMAIL_CODE} <= set(p.allowed_methods) for p in policies)
    changes = SecurityEvent.objects.filter(event_type="verification.policy_changed").count()
    call_command("seed_demo_verification", stdout=None)
    assert SecurityEvent.objects.filter(event_type="verification.policy_changed").count() == changes
