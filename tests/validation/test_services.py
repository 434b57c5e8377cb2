"""Caller verification services: the flow, the policy, and the abuse limits."""

from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.models import Role
from audit.events import EventType
from audit.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory
from tests.validation.factories import AuthenticatorFactory, technician_for
from tests.validation.helpers import code_in, last_text, link_token_in, totp_code
from validation import services
from validation.models import Action, Challenge, Method, PersonVerificationState, VerificationRequest
from validation.services import VerificationError, answers


def start(technician, person, action=Action.PASSWORD_RESET):
    return services.verification_request_create(
        actor=technician, person=person, action=action, ticket_reference="INC-1001"
    )


def send(technician, verification, method, capture):
    with capture(execute=True):
        challenge = services.challenge_start(actor=technician, verification=verification, method=method)
    challenge.refresh_from_db()
    return challenge


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def test_request_snapshots_the_policy_and_records_an_event(technician, person):
    verification = start(technician, person)
    assert verification.status == VerificationRequest.Status.PENDING
    assert verification.policy_snapshot["allowed"] == [
        Method.PUSH,
        Method.TOTP,
        Method.MANAGER_APPROVAL,
        Method.PEER_APPROVAL,
    ]
    assert verification.policy_snapshot["approvals"] == 0  # not privileged: no approval needed
    event = SecurityEvent.objects.get(event_type="verification.request_created")
    assert event.target_id == str(verification.pk) and event.details["ticket"] == "INC-1001"


def test_technician_of_another_organisation_cannot_start(person):
    outsider = technician_for(OrganizationFactory())
    with pytest.raises(VerificationError):
        start(outsider, person)
    assert not VerificationRequest.objects.exists()


@pytest.mark.parametrize("ticket", ["", " ", "x" * 65, "<script>", "INC 1"])
def test_bad_ticket_reference_is_refused(technician, person, ticket):
    with pytest.raises(VerificationError):
        services.verification_request_create(
            actor=technician, person=person, action=Action.PASSWORD_RESET, ticket_reference=ticket
        )
    assert not VerificationRequest.objects.exists()


def test_sms_code_round_trip_verifies_an_other_request(technician, person, outbox, capture):
    verification = start(technician, person, Action.OTHER)
    challenge = send(technician, verification, Method.SMS_CODE, capture)
    assert challenge.status == Challenge.Status.SENT
    body = last_text(person.phone)
    code = code_in(body)
    assert len(code) == 6 and code not in challenge.code_hmac
    assert services.sms_code_check(actor=technician, challenge=challenge, code=code)
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED
    assert verification.expires_at == verification.verified_at + timedelta(minutes=15)


def test_verifying_closes_the_challenges_still_open(technician, person, outbox, capture):
    verification = start(technician, person, Action.OTHER)
    push = send(technician, verification, Method.PUSH, capture)
    challenge = send(technician, verification, Method.SMS_CODE, capture)
    assert services.sms_code_check(actor=technician, challenge=challenge, code=code_in(last_text(person.phone)))
    push.refresh_from_db()
    assert (push.status, push.failure_reason) == (Challenge.Status.EXPIRED, "Policy met")
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.APPROVED


def test_privileged_person_gets_an_8_digit_code(technician, org, outbox, capture):
    person = PersonFactory(organization=org, privileged=True)
    verification = start(technician, person, Action.OTHER)
    send(technician, verification, Method.SMS_CODE, capture)
    assert len(code_in(last_text(person.phone))) == 8


def test_sms_code_alone_is_not_allowed_for_password_reset(technician, person):
    verification = start(technician, person)
    with pytest.raises(VerificationError, match="policy does not accept"):
        services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)


def test_code_is_single_use_and_bound_to_its_challenge(technician, person, outbox, capture):
    first = start(technician, person, Action.OTHER)
    challenge = send(technician, first, Method.SMS_CODE, capture)
    code = code_in(last_text(person.phone))
    second = start(technician, person, Action.OTHER)
    other = send(technician, second, Method.SMS_CODE, capture)
    if code_in(last_text(person.phone)) != code:
        assert not services.sms_code_check(actor=technician, challenge=other, code=code)
    assert services.sms_code_check(actor=technician, challenge=challenge, code=code)
    with pytest.raises(VerificationError):
        services.sms_code_check(actor=technician, challenge=challenge, code=code)


def _code_answered_wrongly(technician, person, capture, times: int) -> tuple[Challenge, str]:
    """An SMS code challenge after ``times`` wrong codes, and its right code."""
    verification = start(technician, person, Action.OTHER)
    challenge = send(technician, verification, Method.SMS_CODE, capture)
    code = code_in(last_text(person.phone))
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(times):
        assert not services.sms_code_check(actor=technician, challenge=challenge, code=wrong)
    return challenge, code


def test_five_attempts_per_challenge_then_it_fails(technician, person, outbox, capture):
    challenge, code = _code_answered_wrongly(technician, person, capture, 5)
    with pytest.raises(VerificationError, match="No attempts left|no longer open"):
        services.sms_code_check(actor=technician, challenge=challenge, code=code)
    challenge.refresh_from_db()
    assert challenge.attempts == 5 and challenge.status == Challenge.Status.FAILED


def test_the_right_code_counts_its_attempt_with_the_approval(technician, person, outbox, capture):
    challenge, code = _code_answered_wrongly(technician, person, capture, 4)
    assert services.sms_code_check(actor=technician, challenge=challenge, code=code)  # the fifth and last attempt
    challenge.refresh_from_db()
    assert challenge.attempts == 5 and challenge.status == Challenge.Status.APPROVED
    assert challenge.answered_at is not None


def test_verifying_resets_the_persons_failure_counter_and_no_one_elses(technician, person, outbox, capture):
    other = PersonFactory(organization=person.organization)
    PersonVerificationState.objects.create(person=other, consecutive_failures=2)
    challenge, code = _code_answered_wrongly(technician, person, capture, 2)
    assert PersonVerificationState.objects.get(person=person).consecutive_failures == 2
    assert services.sms_code_check(actor=technician, challenge=challenge, code=code)
    assert VerificationRequest.objects.get(pk=challenge.request_id).status == VerificationRequest.Status.VERIFIED
    assert PersonVerificationState.objects.get(person=person).consecutive_failures == 0
    assert PersonVerificationState.objects.get(person=other).consecutive_failures == 2


def test_code_expires_after_five_minutes(technician, person, outbox, capture):
    verification = start(technician, person, Action.OTHER)
    challenge = send(technician, verification, Method.SMS_CODE, capture)
    code = code_in(last_text(person.phone))
    later = timezone.now() + timedelta(minutes=5, seconds=1)
    with time_machine.travel(later), pytest.raises(VerificationError, match="expired"):
        services.sms_code_check(actor=technician, challenge=challenge, code=code)


def test_push_number_match_approves(technician, person, outbox, capture):
    verification = start(technician, person)
    challenge = send(technician, verification, Method.PUSH, capture)
    assert challenge.match_number in challenge.match_choices and len(set(challenge.match_choices)) == 3
    token = link_token_in(last_text(person.phone))
    assert services.push_respond(token=token, choice=str(challenge.match_number)) == "approved"
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED
    with pytest.raises(Exception, match="answered or has expired"):
        services.push_respond(token=token, choice=str(challenge.match_number))


def test_push_wrong_number_fails_the_challenge_and_counts(technician, person, outbox, capture):
    verification = start(technician, person)
    challenge = send(technician, verification, Method.PUSH, capture)
    wrong = next(n for n in challenge.match_choices if n != challenge.match_number)
    token = link_token_in(last_text(person.phone))
    assert services.push_respond(token=token, choice=str(wrong)) == "wrong_number"
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.FAILED
    assert PersonVerificationState.objects.get(person=person).consecutive_failures == 1


def test_push_link_expires_after_two_minutes(technician, person, outbox, capture):
    verification = start(technician, person)
    challenge = send(technician, verification, Method.PUSH, capture)
    token = link_token_in(last_text(person.phone))
    with time_machine.travel(timezone.now() + timedelta(seconds=121)), pytest.raises(Exception, match="expired"):
        services.push_respond(token=token, choice=str(challenge.match_number))
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.SENT


def test_tampered_link_changes_nothing(technician, person, outbox, capture):
    verification = start(technician, person)
    challenge = send(technician, verification, Method.PUSH, capture)
    token = link_token_in(last_text(person.phone))
    with pytest.raises(Exception, match="not valid"):
        services.push_respond(token=token[:-2] + "xx", choice=str(challenge.match_number))
    with pytest.raises(ValueError):
        services.push_respond(token=token, choice="100")
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.SENT and challenge.attempts == 0


def test_fraud_report_locks_the_person(technician, person, outbox, capture):
    verification = start(technician, person)
    send(technician, verification, Method.PUSH, capture)
    assert services.push_respond(token=link_token_in(last_text(person.phone)), choice="fraud") == "fraud"
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.LOCKED
    assert SecurityEvent.objects.filter(event_type="verification.fraud_reported").exists()
    with pytest.raises(VerificationError, match="locked"):
        start(technician, person)


def test_deny_fails_the_request(technician, person, outbox, capture):
    verification = start(technician, person)
    send(technician, verification, Method.PUSH, capture)
    assert services.push_respond(token=link_token_in(last_text(person.phone)), choice="deny") == "denied"
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.FAILED


def test_totp_verifies_and_never_accepts_a_code_twice(technician, person):
    authenticator = AuthenticatorFactory(person=person)
    first = start(technician, person)
    code = totp_code(authenticator.raw_key)
    assert services.totp_check(actor=technician, verification=first, code=code)
    second = start(technician, person)
    assert not services.totp_check(actor=technician, verification=second, code=code)


def test_totp_accepts_one_step_of_drift_not_two(technician, person):
    authenticator = AuthenticatorFactory(person=person)
    verification = start(technician, person)
    assert not services.totp_check(
        actor=technician, verification=verification, code=totp_code(authenticator.raw_key, offset_steps=-2)
    )
    assert services.totp_check(
        actor=technician, verification=verification, code=totp_code(authenticator.raw_key, offset_steps=-1)
    )


def test_totp_unavailable_without_enrolment(technician, person):
    verification = start(technician, person)
    with pytest.raises(VerificationError, match="No authenticator enrolled"):
        services.totp_check(actor=technician, verification=verification, code="123456")


def test_mfa_reset_needs_two_methods_one_strong_where_the_org_requires_no_approval(technician, person, outbox, capture):
    # By default an MFA reset also needs a manager or peer approval (tests/validation/test_approvals.py).
    policy = services.policy_for(organization=person.organization, action=Action.MFA_RESET)
    services.policy_update(actor=UserFactory(is_superuser=True), policy=policy, data={"approval_required": "never"})
    authenticator = AuthenticatorFactory(person=person)
    verification = start(technician, person, Action.MFA_RESET)
    challenge = send(technician, verification, Method.SMS_CODE, capture)
    assert services.sms_code_check(actor=technician, challenge=challenge, code=code_in(last_text(person.phone)))
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.PENDING
    assert services.totp_check(actor=technician, verification=verification, code=totp_code(authenticator.raw_key))
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED


def test_a_challenge_that_expired_in_the_queue_is_not_sent(technician, person, outbox, capture):
    """The worker finds the challenge past its expiry: nothing is texted, it ends expired
    with its event, and the live view's version moves."""
    from validation.models import OutboxMessage

    verification = start(technician, person, Action.OTHER)
    with capture() as queued:
        challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    Challenge.objects.filter(pk=challenge.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    version = VerificationRequest.objects.get(pk=verification.pk).version
    for callback in queued:
        callback()
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.EXPIRED
    assert challenge.failure_reason == "Expired before it could be sent"
    assert not OutboxMessage.objects.exists() and not challenge.code_hmac
    assert VerificationRequest.objects.get(pk=verification.pk).version == version + 1
    assert SecurityEvent.objects.filter(event_type=EventType.VERIFICATION_CHALLENGE_EXPIRED).count() == 1


def test_the_policy_counts_the_methods_answered_in_answer_order(technician, person, outbox, capture):
    """A code and a push answer re-evaluate the policy from the request's challenges read
    under its lock: a wrong code's challenge counts for nothing, the approved ones count in
    the order they were answered, and the second approval verifies."""
    policy = services.policy_for(organization=person.organization, action=Action.MFA_RESET)
    services.policy_update(actor=UserFactory(is_superuser=True), policy=policy, data={"approval_required": "never"})
    verification = start(technician, person, Action.MFA_RESET)
    wrong = send(technician, verification, Method.SMS_CODE, capture)
    code = code_in(last_text(person.phone))
    for _ in range(wrong.max_attempts):
        assert not services.sms_code_check(actor=technician, challenge=wrong, code=str(int(code) ^ 1).zfill(6))
    push = send(technician, verification, Method.PUSH, capture)  # sent first, answered last
    token = link_token_in(last_text(person.phone))
    right = send(technician, verification, Method.SMS_CODE, capture)
    assert services.sms_code_check(actor=technician, challenge=right, code=code_in(last_text(person.phone)))
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.PENDING
    assert services.push_respond(token=token, choice=str(push.match_number)) == "approved"
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.VERIFIED
    verified = SecurityEvent.objects.get(event_type=EventType.VERIFICATION_REQUEST_VERIFIED)
    assert verified.details["methods"] == [Method.SMS_CODE, Method.PUSH]


def test_contact_changed_recently_makes_the_phone_unavailable(technician, person):
    person.contact_changed_at = timezone.now() - timedelta(days=6)
    person.save()
    verification = start(technician, person)
    with pytest.raises(VerificationError, match="changed"):
        services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)


def test_failure_cap_locks_and_new_challenges_do_not_reset_it(technician, person, outbox, capture, settings):
    settings.VERIFICATION_FAILURE_CAP = 6
    verification = start(technician, person, Action.OTHER)
    for _ in range(2):
        challenge = send(technician, verification, Method.SMS_CODE, capture)
        code = code_in(last_text(person.phone))
        for _ in range(3):
            assert not services.sms_code_check(actor=technician, challenge=challenge, code=str(int(code) ^ 1).zfill(6))
        Challenge.objects.filter(pk=challenge.pk).update(status=Challenge.Status.EXPIRED)
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.LOCKED
    assert PersonVerificationState.objects.get(person=person).locked_at is not None


def test_consume_once_only_by_the_same_technician_for_the_same_action(technician, person):
    authenticator = AuthenticatorFactory(person=person)
    verification = start(technician, person)
    services.totp_check(actor=technician, verification=verification, code=totp_code(authenticator.raw_key))
    other = technician_for(person.organization)
    with pytest.raises(VerificationError, match="another technician"):
        services.verification_consume(
            actor=other, verification=verification, person=person, action=Action.PASSWORD_RESET
        )
    with pytest.raises(VerificationError, match="covers a password reset"):
        services.verification_consume(
            actor=technician, verification=verification, person=person, action=Action.MFA_RESET
        )
    services.verification_consume(
        actor=technician, verification=verification, person=person, action=Action.PASSWORD_RESET
    )
    with pytest.raises(VerificationError, match="already been used"):
        services.verification_consume(
            actor=technician, verification=verification, person=person, action=Action.PASSWORD_RESET
        )


def test_verified_result_is_unusable_after_15_minutes_and_expires(technician, person):
    authenticator = AuthenticatorFactory(person=person)
    verification = start(technician, person)
    services.totp_check(actor=technician, verification=verification, code=totp_code(authenticator.raw_key))
    with time_machine.travel(timezone.now() + timedelta(minutes=15, seconds=1)):
        with pytest.raises(VerificationError, match="15 minutes"):
            services.verification_consume(
                actor=technician, verification=verification, person=person, action=Action.PASSWORD_RESET
            )
        assert services.verification_expire_stale() == 1
    verification.refresh_from_db()
    assert verification.status == VerificationRequest.Status.EXPIRED


def test_no_secret_reaches_security_events(technician, person, outbox, capture):
    verification = start(technician, person, Action.OTHER)
    challenge = send(technician, verification, Method.SMS_CODE, capture)
    body = last_text(person.phone)
    code = code_in(body)
    services.sms_code_check(actor=technician, challenge=challenge, code=code)
    for event in SecurityEvent.objects.all():
        text = repr(event.details) + event.target_label
        assert code not in text and body not in text


def test_policy_floors_refuse_weakening(org):
    org_admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org])
    policy = services.policy_for(organization=org, action=Action.PASSWORD_RESET)
    with pytest.raises(ValidationError):
        services.policy_update(
            actor=org_admin, policy=policy, data={"allowed_methods": [Method.SMS_CODE], "min_strong_methods": 0}
        )
    policy.refresh_from_db()
    assert policy.allowed_methods == [Method.PUSH, Method.TOTP, Method.MANAGER_APPROVAL, Method.PEER_APPROVAL]


def test_only_an_org_admin_of_the_organisation_changes_policies(technician, org):
    policy = services.policy_for(organization=org, action=Action.PASSWORD_RESET)
    other_admin = UserFactory(roles=[Role.ORG_ADMIN], organizations=[OrganizationFactory()])
    for actor in (technician, other_admin):
        with pytest.raises(PermissionDenied):
            services.policy_update(actor=actor, policy=policy, data={"min_methods": 2})
    policy.refresh_from_db()
    assert policy.min_methods == 1


def test_only_technicians_start_verifications(org, person):
    auditor = UserFactory(roles=[Role.AUDITOR], organizations=[org])
    with pytest.raises(VerificationError, match="Only technicians"):
        start(auditor, person)
    assert not VerificationRequest.objects.exists()


def test_enrolment_link_request_and_wrong_codes_are_recorded(technician, person, outbox, capture):
    with capture(execute=True):
        services.enrollment_start(actor=technician, person=person)
    requested = SecurityEvent.objects.get(event_type="verification.enrollment_requested")
    assert requested.actor_id == technician.pk and requested.target_id == str(person.pk)
    token = link_token_in(last_text(person.phone))
    assert not services.enrollment_confirm(token=token, code="000000")
    wrong = SecurityEvent.objects.get(event_type="verification.enrollment_wrong_code")
    assert wrong.actor_kind == "end_user" and wrong.details == {"attempts": 1}


def test_code_check_before_the_text_left_costs_nothing(technician, person):
    verification = start(technician, person, Action.OTHER)
    challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    with pytest.raises(VerificationError, match="still being sent"):
        services.sms_code_check(actor=technician, challenge=challenge, code="123456")
    challenge.refresh_from_db()
    assert challenge.attempts == 0
    assert PersonVerificationState.objects.get(person=person).consecutive_failures == 0


def test_only_technicians_send_enrolment_links(org, person, outbox):
    from validation.models import PersonAuthenticator

    auditor = UserFactory(roles=[Role.AUDITOR], organizations=[org])
    with pytest.raises(VerificationError, match="Only technicians"):
        services.enrollment_start(actor=auditor, person=person)
    assert not PersonAuthenticator.objects.filter(person=person).exists()


@pytest.mark.django_db
def test_an_attempt_on_a_challenge_expiring_now_is_refused(technician, person):
    """The written-out attempt compares the expiry as the database stores it (SQLite's text
    times included): a challenge that expired a moment ago takes no attempt."""
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-9001"
    )
    now = timezone.now()
    open_one, expired = (
        Challenge.objects.create(request=verification, method=Method.SMS_CODE, status="sent", expires_at=at)
        for at in (now + timedelta(seconds=5), now - timedelta(microseconds=1))
    )
    assert answers.attempt_take(open_one.pk) is True
    assert answers.attempt_take(expired.pk) is False
    open_one.refresh_from_db()
    expired.refresh_from_db()
    assert (open_one.attempts, expired.attempts) == (1, 0)


@pytest.mark.django_db
def test_an_approvers_attempt_needs_the_challenge_sent(technician, person):
    """``sent_only`` (the approver's code): a queued challenge takes no attempt, a sent one
    does, and an expired one does not; without it a queued one does (the services refuse
    a code for a queued text before they take an attempt)."""
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-9002"
    )
    now = timezone.now()
    queued, sent, expired = (
        Challenge.objects.create(request=verification, method=Method.MANAGER_APPROVAL, status=status, expires_at=at)
        for status, at in (
            ("queued", now + timedelta(minutes=5)),
            ("sent", now + timedelta(minutes=5)),
            ("sent", now - timedelta(microseconds=1)),
        )
    )
    assert answers.attempt_take(queued.pk, sent_only=True) is False
    assert answers.attempt_take(sent.pk, sent_only=True) is True
    assert answers.attempt_take(expired.pk, sent_only=True) is False
    assert answers.attempt_take(queued.pk) is True
    assert [c.attempts for c in Challenge.objects.filter(pk__in=[queued.pk, sent.pk, expired.pk]).order_by("pk")] == [
        1,
        1,
        0,
    ]
