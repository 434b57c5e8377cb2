"""Limits that must hold under concurrent requests, with real transactions (PostgreSQL in CI)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from accounts.models import Role
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory
from tests.validation.factories import AuthenticatorFactory
from tests.validation.helpers import code_in, last_text, totp_code
from validation import services
from validation.models import Action, Challenge, Method, PersonVerificationState
from validation.services import VerificationError

pytestmark = pytest.mark.django_db(transaction=True)
CALLERS = 32


def all_at_once(work, count=CALLERS):
    """Run ``work()`` in ``count`` threads released together; each thread closes its connection."""
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        try:
            return work()
        except VerificationError:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def side_by_side(*work, timeout: float = 10) -> None:
    """Run each function in a thread of its own, all started before any is waited for."""
    threads = [threading.Thread(target=target) for target in work]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)


@pytest.fixture
def setup(settings):
    settings.SMS_DEV_OUTBOX = True
    org = OrganizationFactory()
    person = PersonFactory(organization=org)
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org])
    return technician, person


def test_32_concurrent_wrong_codes_use_at_most_5_attempts(setup):
    technician, person = setup
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-1"
    )
    challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    code = code_in(last_text(person.phone))
    wrong = str((int(code) + 1) % 10**6).zfill(6)

    results = all_at_once(lambda: services.sms_code_check(actor=technician, challenge=challenge, code=wrong))

    challenge.refresh_from_db()
    assert challenge.attempts == 5 and challenge.status == Challenge.Status.FAILED
    assert results.count(False) == 5 and results.count("refused") == CALLERS - 5
    assert PersonVerificationState.objects.get(person=person).consecutive_failures == 5


def test_a_verification_is_consumed_once_under_concurrent_use(setup):
    technician, person = setup
    authenticator = AuthenticatorFactory(person=person)
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.PASSWORD_RESET, ticket_reference="INC-2"
    )
    assert services.totp_check(actor=technician, verification=verification, code=totp_code(authenticator.raw_key))

    results = all_at_once(
        lambda: services.verification_consume(
            actor=technician, verification=verification, person=person, action=Action.PASSWORD_RESET
        ),
        count=8,
    )

    assert sum(r != "refused" for r in results) == 1


def test_one_totp_code_given_twice_at_once_is_accepted_once(setup):
    technician, person = setup
    authenticator = AuthenticatorFactory(person=person)
    requests = [
        services.verification_request_create(
            actor=technician, person=person, action=Action.OTHER, ticket_reference=f"INC-{n}"
        )
        for n in range(2)
    ]
    code = totp_code(authenticator.raw_key)
    turn = iter(requests)
    lock = threading.Lock()

    def check():
        with lock:
            verification = next(turn)
        return services.totp_check(actor=technician, verification=verification, code=code)

    results = all_at_once(check, count=2)
    assert sorted(results, key=str) == [False, True]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_a_delivery_receipt_and_the_code_check_at_the_same_moment_both_complete(setup, monkeypatch):
    """The receipt's path takes the request's row before the challenge's, as the code check
    does. Paused while holding its first lock, it makes the check wait instead of the two
    waiting for each other (which PostgreSQL ends by failing one of them: a 500)."""
    from validation.services import challenges

    technician, person = setup
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-1"
    )
    challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    challenge.refresh_from_db()
    code = code_in(last_text(person.phone))
    holding, go_on = threading.Event(), threading.Event()
    real_lock = challenges.request_lock

    def paused_lock(**lookup):
        locked = real_lock(**lookup)
        if threading.current_thread().name == "receipt":
            holding.set()
            go_on.wait(10)
        return locked

    monkeypatch.setattr(challenges, "request_lock", paused_lock)
    outcome = {}

    def receipt():
        try:
            outcome["receipt"] = services.challenge_delivery_update(
                message_id=challenge.provider_message_id, message_status="delivered"
            )
        finally:
            connection.close()

    def check():
        try:
            outcome["check"] = services.sms_code_check(actor=technician, challenge=challenge, code=code)
        finally:
            connection.close()

    first = threading.Thread(target=receipt, name="receipt")
    first.start()
    assert holding.wait(10)
    second = threading.Thread(target=check, name="check")
    second.start()
    second.join(0.5)  # the check waits for the request's row
    go_on.set()
    first.join(10)
    second.join(10)
    assert outcome == {"receipt": True, "check": True}
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.APPROVED and challenge.delivered_at is not None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_the_workers_sent_statement_waits_for_the_request_before_locking_the_challenge(setup):
    """Marking a text sent bumps the request's version, updates the challenge and records
    the event in one statement; it must take the request's row first (request_lock's
    order). While another transaction holds the request, the statement waits without
    holding the challenge, which that transaction can still lock (as an answer does next);
    then it goes through."""
    import time

    from django.db import transaction

    from audit.models import SecurityEvent
    from validation.models import VerificationRequest
    from validation.services.challenges import _sent_record

    technician, person = setup
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-1"
    )
    challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    Challenge.objects.filter(pk=challenge.pk).update(status=Challenge.Status.QUEUED)
    version = VerificationRequest.objects.get(pk=verification.pk).version
    holding, outcome = threading.Event(), {}

    def answer_holding_the_request():
        try:
            with transaction.atomic():
                VerificationRequest.objects.select_for_update().get(pk=verification.pk)
                holding.set()
                time.sleep(0.5)  # the worker's statement is waiting by now
                outcome["challenge_free"] = bool(
                    Challenge.objects.select_for_update(nowait=True).filter(pk=challenge.pk).exists()
                )
        finally:
            connection.close()

    def worker_marks_sent():
        holding.wait(10)
        try:
            _sent_record(Challenge.objects.select_related("request__organization").get(pk=challenge.pk), "SM1")
            outcome["sent"] = 1
        finally:
            connection.close()

    side_by_side(answer_holding_the_request, worker_marks_sent)
    assert outcome == {"challenge_free": True, "sent": 1}
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.SENT and challenge.provider_message_id == "SM1"
    assert VerificationRequest.objects.get(pk=verification.pk).version == version + 1
    assert SecurityEvent.objects.filter(event_type="verification.challenge_sent").count() == 2  # the first send's too


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks: PostgreSQL")
def test_a_fraud_report_and_a_wrong_code_on_another_request_of_the_person_both_land(
    technician, person, outbox, django_capture_on_commit_callbacks, monkeypatch
):
    """The person texts NO on request A while the technician types a wrong code on request B.
    Both paths take the person's state row first, so the report waits for the wrong code
    (instead of the two deadlocking, which would drop the report): the failure is counted,
    then the person is locked and B ends as locked."""
    import time

    from tests.validation.hardening import allow, new_sid, send, start
    from validation.models import VerificationRequest
    from validation.services import answers, replies

    capture = django_capture_on_commit_callbacks
    allow(person.organization, [Method.SMS_REPLY, Method.SMS_CODE])
    send(technician, start(technician, person, ticket="INC-A"), Method.SMS_REPLY, capture)
    request_b = start(technician, person, ticket="INC-B")
    challenge_b = send(technician, request_b, Method.SMS_CODE, capture)
    counting, real_failure_count = threading.Event(), answers.failure_count

    def slow_failure_count(verification, **kwargs):
        counting.set()
        time.sleep(0.6)  # the report arrives while B's wrong code is being counted
        return real_failure_count(verification, **kwargs)

    monkeypatch.setattr(answers, "failure_count", slow_failure_count)
    outcome = {}

    def wrong_code():
        try:
            outcome["check"] = services.sms_code_check(actor=technician, challenge=challenge_b, code="000000")
        finally:
            connection.close()

    def report():
        counting.wait(5)
        try:
            outcome["report"] = replies.sms_reply_receive(message_sid=new_sid(), from_number=person.phone, body="NO")
        finally:
            connection.close()

    side_by_side(wrong_code, report, timeout=20)
    assert outcome["check"] is False and outcome["report"]
    state = PersonVerificationState.objects.get(person=person)
    assert state.locked_at is not None and state.consecutive_failures == 1
    request_b.refresh_from_db()
    assert request_b.status == VerificationRequest.Status.LOCKED
