"""Send limits: per person, per technician, per destination (across organisations), a global
ceiling and none while locked; each at and just past its boundary, with a cold or broken cache,
under concurrency; and the message and security event when one is hit."""

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import Role
from audit.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory
from tests.validation.factories import technician_for
from validation import services
from validation.models import Action, Challenge, Method, OutboxMessage, PersonVerificationState, SendRecord
from validation.services import limits
from validation.services.limits import SendLimited

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 2, 10, 0, 0, tzinfo=UTC)
LIMITED = "verification.send_limited"


@pytest.fixture
def clock():
    with time_machine.travel(T0, tick=False) as traveller:
        yield traveller


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


def send(technician, person, method=Method.SMS_CODE):
    """A new verification for ``person`` and one challenge that sends a message."""
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-7"
    )
    return services.challenge_start(actor=technician, verification=verification, method=method)


def refused(technician, person, method=Method.SMS_CODE) -> str:
    with pytest.raises(SendLimited) as caught:
        send(technician, person, method)
    return caught.value.message


def limited_events():
    return list(SecurityEvent.objects.filter(event_type=LIMITED).order_by("id"))


# --- Per person: 3 per 10 minutes -------------------------------------------------------


def test_third_send_to_a_person_is_allowed_the_fourth_refused_until_the_window_slides(
    clock, technician, person, outbox
):
    for _ in range(3):
        send(technician, person)
        clock.shift(timedelta(minutes=1))
    message = refused(technician, person, Method.PUSH)
    assert message == (
        "Send limit reached: at most 3 messages to this person per 10 minutes. Try again at 10:10:00 UTC."
    )
    clock.move_to(T0 + timedelta(minutes=10) - timedelta(seconds=1))
    refused(technician, person)
    clock.move_to(T0 + timedelta(minutes=10))
    send(technician, person)  # the first send left the window
    assert "Try again at 10:11:00 UTC" in refused(technician, person)
    assert Challenge.objects.count() == SendRecord.objects.count() == 4


def test_a_refused_send_creates_no_challenge_and_queues_nothing(clock, technician, person, outbox, capture):
    for _ in range(3):
        send(technician, person)
    with capture() as callbacks:
        refused(technician, person)
    assert callbacks == []
    assert Challenge.objects.count() == SendRecord.objects.count() == 3


def test_the_person_limit_can_be_lowered_not_raised(clock, settings, technician, person, outbox):
    settings.VERIFICATION_SEND_LIMIT_PERSON = 2
    send(technician, person)
    send(technician, person)
    assert "at most 2 messages to this person" in refused(technician, person)
    settings.VERIFICATION_SEND_LIMIT_PERSON = 10  # above the design's cap: the cap holds
    assert limits.person_maximum() == 3
    send(technician, person)
    assert "at most 3 messages to this person" in refused(technician, person)


def test_an_enrolment_link_counts_toward_the_person_limit(clock, technician, person, outbox):
    services.enrollment_start(actor=technician, person=person)
    send(technician, person)
    send(technician, person)
    refused(technician, person)
    assert SendRecord.objects.filter(kind=SendRecord.Kind.ENROLLMENT).count() == 1
    with pytest.raises(SendLimited, match="to this person per 10 minutes"):
        services.enrollment_start(actor=technician, person=person)
    assert limited_events()[-1].details["kind"] == "enrollment"


def test_totp_checks_send_nothing_and_are_not_counted(clock, technician, person, outbox):
    from tests.validation.factories import AuthenticatorFactory
    from tests.validation.helpers import totp_code

    authenticator = AuthenticatorFactory(person=person)
    for n in range(5):
        verification = services.verification_request_create(
            actor=technician, person=person, action=Action.OTHER, ticket_reference=f"INC-{n}"
        )
        services.totp_check(actor=technician, verification=verification, code=totp_code(authenticator.raw_key))
        clock.shift(timedelta(seconds=30))
    assert not SendRecord.objects.exists()
    send(technician, person)


# --- Per technician: 30 per hour --------------------------------------------------------


def test_a_technician_sends_30_an_hour_then_is_refused_until_the_first_leaves_the_window(
    clock, org, technician, outbox
):
    people = PersonFactory.create_batch(31, organization=org)
    for person in people[:30]:
        send(technician, person)
        clock.shift(timedelta(seconds=60))
    message = refused(technician, people[30])
    assert message == (
        "Send limit reached: you may send at most 30 verification messages per hour. Try again at 11:00:00 UTC."
    )
    colleague = technician_for(org)
    send(colleague, people[30])  # another technician is not held back
    clock.move_to(T0 + timedelta(hours=1))
    send(technician, people[0])
    assert limited_events()[0].details["limit"] == "technician"


# --- Per destination: 5 per hour across organisations -----------------------------------


def test_one_number_in_two_organisations_gets_5_messages_an_hour_in_all(clock, outbox):
    org_a, org_b = OrganizationFactory(), OrganizationFactory()
    shared = "+447700900123"
    ada = PersonFactory(organization=org_a, phone=shared)
    ada_elsewhere = PersonFactory(organization=org_b, phone=shared)
    tech_a, tech_b = technician_for(org_a), technician_for(org_b)
    for technician, person in [(tech_a, ada), (tech_b, ada_elsewhere)] * 2 + [(tech_b, ada_elsewhere)]:
        send(technician, person)
        clock.shift(timedelta(minutes=1))
    assert SendRecord.objects.filter(person=ada_elsewhere).count() == 3
    clock.move_to(T0 + timedelta(minutes=20))  # both people are clear of the person limit
    message = refused(tech_a, ada)
    assert message == (
        "Send limit reached: at most 5 messages to •••• 0123 per hour, counted across every organisation. "
        "Try again at 11:00:00 UTC."
    )
    event = limited_events()[0]
    assert event.organization_id == org_a.pk and event.details["limit"] == "destination"
    assert event.details["destination"] == "•••• 0123"
    clock.move_to(T0 + timedelta(hours=1))
    send(tech_a, ada)


def test_the_destination_is_stored_only_as_a_keyed_hash(clock, technician, person, outbox):
    send(technician, person)
    record = SendRecord.objects.get()
    assert person.phone not in record.destination_hash and len(record.destination_hash) == 64
    assert record.destination_hash != hashlib.sha256(person.phone.encode()).hexdigest()


# --- Global ceiling ---------------------------------------------------------------------


def test_the_global_ceiling_per_minute_holds_across_people_and_technicians(clock, settings, outbox):
    settings.VERIFICATION_SEND_LIMIT_GLOBAL_MINUTE = 4
    org = OrganizationFactory()
    people = PersonFactory.create_batch(5, organization=org)
    for n, person in enumerate(people[:4]):
        send(technician_for(org), person)
        clock.move_to(T0 + timedelta(seconds=10 * (n + 1)))
    message = refused(technician_for(org), people[4])
    assert message == (
        "Send limit reached: the portal sends at most 4 messages per minute in all. Try again at 10:01:00 UTC."
    )
    clock.move_to(T0 + timedelta(seconds=59))
    refused(technician_for(org), people[4])
    clock.move_to(T0 + timedelta(seconds=60))
    send(technician_for(org), people[4])


def test_the_global_ceiling_per_hour(clock, settings, outbox):
    settings.VERIFICATION_SEND_LIMIT_GLOBAL_HOUR = 3
    org = OrganizationFactory()
    people = PersonFactory.create_batch(4, organization=org)
    for person in people[:3]:
        send(technician_for(org), person)
        clock.shift(timedelta(minutes=5))
    assert "at most 3 messages per hour in all. Try again at 11:00:00 UTC" in refused(technician_for(org), people[3])
    assert limited_events()[0].details["limit"] == "global_hour"
    clock.move_to(T0 + timedelta(hours=1))
    send(technician_for(org), people[3])


def test_each_send_gets_the_next_number_in_the_count_of_all_sends(clock, settings, outbox):
    org = OrganizationFactory()
    for n, person in enumerate(PersonFactory.create_batch(4, organization=org)):
        send(technician_for(org), person)
        clock.shift(timedelta(seconds=n))  # also two sends in the same instant
    records = list(SendRecord.objects.order_by("sequence").values_list("sequence", "created_at"))
    assert [sequence for sequence, _ in records] == [1, 2, 3, 4]
    assert [at for _, at in records] == sorted(at for _, at in records)


def ledger_rows(count, *, start, step):
    """``count`` sends already in the ledger, one every ``step`` from ``start``, numbered 1 up."""
    SendRecord.objects.bulk_create(
        SendRecord(kind="challenge", destination_hash="0" * 64, created_at=start + n * step, sequence=n + 1)
        for n in range(count)
    )


def test_a_global_ceiling_of_thousands_reads_two_rows_not_thousands(clock, settings, outbox):
    """The maximum-th newest send is found by its number: the global branches read one row
    each (and the newest one), not every send of the window (as ORDER BY ... OFFSET did)."""
    if connection.vendor != "postgresql":
        pytest.skip("EXPLAIN ANALYZE's row counts are PostgreSQL's")
    settings.VERIFICATION_SEND_LIMIT_GLOBAL_MINUTE = 10000
    settings.VERIFICATION_SEND_LIMIT_GLOBAL_HOUR = 100000
    ledger_rows(3000, start=T0 - timedelta(seconds=50), step=timedelta(milliseconds=10))
    person = PersonFactory()
    technician = technician_for(person.organization)
    global_limits = [
        limit
        for limit in limits.limits_for(person=person, technician=technician, destination_hash="1" * 64)
        if limit.column is None
    ]
    with CaptureQueriesContext(connection) as queries:
        ledger = limits._ledger(global_limits, T0)
    captured = [q["sql"] for q in queries.captured_queries]
    assert ledger.full_until == {} and ledger.newest_sequence == 3000
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + captured[0])
        plan = cursor.fetchone()[0]

    def rows_read(node):
        own = node.get("Actual Rows", 0) * node.get("Actual Loops", 1) if node.get("Relation Name") else 0
        return own + sum(rows_read(child) for child in node.get("Plans", []))

    assert rows_read(plan[0]["Plan"]) <= 3  # the newest, then one row per ceiling


def test_a_global_ceiling_refuses_with_a_row_missing_from_the_count(clock, settings, outbox):
    """Should a numbered row ever go (deleted by hand), the ceiling errs towards refusing: it
    takes the nearest row below the number it looked for, whose time is no later."""
    settings.VERIFICATION_SEND_LIMIT_GLOBAL_HOUR = 3
    ledger_rows(5, start=T0 - timedelta(minutes=50), step=timedelta(minutes=1))
    SendRecord.objects.filter(sequence=3).delete()  # 1, 2, 4, 5 left: four in the hour
    person = PersonFactory()
    message = refused(technician_for(person.organization), person)
    assert "at most 3 messages per hour in all. Try again at 10:11:00 UTC" in message  # when 2 leaves


# --- Locked person ----------------------------------------------------------------------


def test_nothing_is_sent_while_the_person_is_locked(clock, technician, person, outbox):
    PersonVerificationState.objects.create(person=person, locked_at=T0, locked_reason="Fraud reported")
    with pytest.raises(SendLimited) as caught:
        services.enrollment_start(actor=technician, person=person)
    assert caught.value.message == (
        "No message sent: verification is locked for this person (Fraud reported). An org admin must lift the lock."
    )
    assert not SendRecord.objects.exists() and not OutboxMessage.objects.exists()
    event = limited_events()[0]
    assert event.details["limit"] == "person_locked" and event.actor_id == technician.pk


@pytest.mark.parametrize(("reason", "shown"), [("Fraud reported", "Fraud reported"), ("", "Verification is locked")])
def test_a_lock_after_the_request_started_stops_its_challenges(technician, person, outbox, reason, shown):
    """A challenge's send reads the person's lock with the request's locked row, in the
    transaction that would queue the text: a lock set after the request began refuses it."""
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-1"
    )
    PersonVerificationState.objects.filter(person=person).update(locked_at=T0, locked_reason=reason)
    with pytest.raises(SendLimited) as caught:
        services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    assert caught.value.message.startswith(f"No message sent: verification is locked for this person ({shown}")
    assert not SendRecord.objects.exists() and not Challenge.objects.exists() and not OutboxMessage.objects.exists()
    assert limited_events()[0].details["limit"] == "person_locked"


def test_a_lock_after_queueing_an_enrolment_link_stops_it(technician, person, outbox, capture):
    with capture() as callbacks:
        services.enrollment_start(actor=technician, person=person)
    PersonVerificationState.objects.create(person=person, locked_at=T0, locked_reason="Fraud reported")
    for callback in callbacks:
        callback()
    assert not OutboxMessage.objects.exists()
    assert SecurityEvent.objects.filter(event_type="verification.enrollment_failed").exists()


# --- Cache cold, cache down, cache fast path --------------------------------------------


def test_limits_hold_when_the_cache_is_flushed_between_sends(clock, technician, person, outbox, capture):
    for _ in range(3):
        with capture(execute=True):
            send(technician, person)
        cache.clear()
    assert cache.get(limits.CACHE_PREFIX + f"person:{person.pk}:3") is None
    refused(technician, person)
    cache.clear()
    refused(technician, person)


class BrokenCache:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("cache is down")

        return fail


def test_with_the_cache_down_the_database_keeps_the_limits(clock, monkeypatch, technician, person, outbox, caplog):
    monkeypatch.setattr(limits, "cache", BrokenCache())
    for _ in range(3):
        send(technician, person)
    assert "Try again at 10:10:00 UTC" in refused(technician, person)
    assert "Send-limit cache unreadable (ConnectionError)" in caplog.text
    assert person.phone not in caplog.text
    clock.move_to(T0 + timedelta(minutes=10))
    send(technician, person)


def test_a_full_limit_is_refused_from_the_cache_without_counting_again(clock, technician, person, outbox, capture):
    for _ in range(3):
        with capture(execute=True):
            send(technician, person)
    refused(technician, person)  # the database finds the limit full; the cache remembers until when
    assert cache.get(limits.CACHE_PREFIX + f"person:{person.pk}:3") == (T0 + timedelta(minutes=10)).timestamp()
    with CaptureQueriesContext(connection) as queries:
        assert "Try again at 10:10:00 UTC" in refused(technician, person)
    sql = " ".join(q["sql"] for q in queries.captured_queries)
    assert "validation_sendrecord" not in sql and "pg_advisory" not in sql
    assert len(limited_events()) == 2


def test_a_stale_cache_never_lets_a_send_through(clock, technician, person, outbox, capture):
    """The cache only ever refuses; an entry that has run out (or was never written) hands
    the question to the database, which still counts every committed send."""
    for _ in range(3):
        send(technician, person)
    cache.set(limits.CACHE_PREFIX + f"person:{person.pk}:3", (T0 - timedelta(minutes=1)).timestamp())
    refused(technician, person)


# --- What the technician sees, and the event ------------------------------------------


@pytest.fixture
def technician(org):
    return technician_for(org, mfa=True)


@pytest.fixture
def tech_client(client, technician):
    client.force_login(technician)
    return client


def test_the_live_page_says_which_limit_and_when_to_try_again(clock, tech_client, technician, person, outbox):
    for _ in range(3):
        send(technician, person)
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-8"
    )
    url = reverse("validation:send", args=[verification.pk])
    fragment = tech_client.post(url, {"method": "sms_code"}, headers={"HX-Request": "true"})
    assert fragment.status_code == 200 and fragment["X-Portal-Fragment"] == "verification-status"
    expected = "Send limit reached: at most 3 messages to this person per 10 minutes. Try again at 10:10:00 UTC."
    assert expected in fragment.content.decode()
    page = tech_client.post(url, {"method": "push"}, follow=True)
    assert expected in page.content.decode()
    assert not Challenge.objects.filter(request=verification).exists()


def test_the_start_page_shows_a_refused_enrolment_link(clock, tech_client, technician, person, outbox):
    for _ in range(3):
        send(technician, person)
    response = tech_client.post(reverse("validation:enrollment_start", args=[person.pk]), follow=True)
    assert "Send limit reached: at most 3 messages to this person per 10 minutes" in response.content.decode()


def test_the_event_names_the_limit_and_masks_the_number(clock, technician, person, outbox):
    for _ in range(3):
        send(technician, person)
    refused(technician, person, Method.PUSH)
    (event,) = limited_events()
    assert event.actor_id == technician.pk and event.organization_id == person.organization_id
    assert event.target_type == "validation.verificationrequest"
    assert event.details | {"verification": 0} == {
        "verification": 0,
        "person": person.pk,
        "kind": "challenge",
        "limit": "person",
        "maximum": 3,
        "window_seconds": 600,
        "retry_at": "2026-03-02T10:10:00+00:00",
        "destination": person.masked_phone,
        "method": "push",
    }
    everything = " ".join(str(v) for v in SecurityEvent.objects.values_list("details", "target_label", "actor_label"))
    assert person.phone not in everything and person.phone[1:] not in everything


# --- Housekeeping and start-up ----------------------------------------------------------


def test_old_ledger_rows_are_pruned_by_the_expiry_sweep(clock, technician, person, outbox):
    send(technician, person)
    clock.move_to(T0 + limits.RECORDS_KEPT - timedelta(seconds=1))
    services.verification_expire_stale()
    assert SendRecord.objects.count() == 1
    clock.move_to(T0 + limits.RECORDS_KEPT + timedelta(seconds=1))
    services.verification_expire_stale()
    assert not SendRecord.objects.exists()
    send(technician, PersonFactory(organization=person.organization))
    assert SendRecord.objects.get().sequence == 1  # an empty ledger counts from one again


@pytest.mark.django_db(transaction=True)
def test_send_reserve_refuses_to_run_outside_a_transaction():
    person = PersonFactory()
    with pytest.raises(RuntimeError, match="inside the transaction"):
        limits.send_reserve(
            person=person,
            technician=technician_for(person.organization),
            destination=person.phone,
            destination_masked=person.masked_phone,
            kind=SendRecord.Kind.CHALLENGE,
            target=person,
        )


def test_a_person_limit_above_the_design_cap_stops_start_up(tmp_path):
    from tests.config.test_settings import run_manage

    result = run_manage(tmp_path, "check", VERIFICATION_SEND_LIMIT_PERSON="4")
    assert result.returncode != 0
    assert "Configuration error: VERIFICATION_SEND_LIMIT_PERSON: must be at most 3" in result.stderr


# --- Concurrency (PostgreSQL, real transactions) ----------------------------------------


def handed_out(items):
    """A function giving each calling thread the next item, one each."""
    remaining, lock = iter(list(items)), threading.Lock()

    def take():
        with lock:
            return next(remaining)

    return take


def sent_all_at_once(senders, method=Method.SMS_CODE):
    """A new verification for each (technician, person) in ``senders``, then every one of them
    sends ``method`` at once, each in its own thread. Each thread's result, "refused" for a
    refusal."""
    from tests.validation.test_concurrency import all_at_once

    take = handed_out(
        (
            technician,
            services.verification_request_create(
                actor=technician, person=person, action=Action.OTHER, ticket_reference=f"INC-{n}"
            ),
        )
        for n, (technician, person) in enumerate(senders)
    )

    def one():
        technician, verification = take()
        return services.challenge_start(actor=technician, verification=verification, method=method)

    return all_at_once(one, count=len(senders))


@pytest.mark.django_db(transaction=True)
def test_32_concurrent_sends_to_one_person_queue_exactly_3(settings):
    from tests.validation.test_concurrency import CALLERS

    settings.SMS_DEV_OUTBOX = True
    org = OrganizationFactory()
    person = PersonFactory(organization=org)
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org])

    results = sent_all_at_once([(technician, person)] * CALLERS)

    assert CALLERS - results.count("refused") == 3
    assert Challenge.objects.count() == SendRecord.objects.count() == 3
    assert SecurityEvent.objects.filter(event_type=LIMITED).count() == CALLERS - 3


@pytest.mark.django_db(transaction=True)
def test_concurrent_sends_to_one_number_in_two_organisations_queue_exactly_5(settings):
    settings.SMS_DEV_OUTBOX = True
    people = [PersonFactory(organization=OrganizationFactory(), phone="+447700900555") for _ in range(2)]
    senders = [(technician, person) for person in people for technician in [technician_for(person.organization)] * 8]

    results = sent_all_at_once(senders, Method.PUSH)

    assert len(senders) - results.count("refused") == 5
    assert SendRecord.objects.count() == 5
    assert all(SendRecord.objects.filter(person=p).count() <= 3 for p in people)


@pytest.mark.django_db(transaction=True)
def test_32_concurrent_sends_to_different_people_are_numbered_1_to_32(settings):
    """The global lock serialises every send, so each takes the next number of the count of
    all sends: none twice (the unique index would refuse it), none skipped, in time order."""
    from tests.validation.test_concurrency import CALLERS

    settings.SMS_DEV_OUTBOX = True
    org = OrganizationFactory()
    technicians = [technician_for(org) for _ in range(2)]  # 16 each: under the technician limit
    people = PersonFactory.create_batch(CALLERS, organization=org)

    results = sent_all_at_once([(technicians[n % 2], person) for n, person in enumerate(people)])

    assert "refused" not in results
    numbered = list(SendRecord.objects.order_by("sequence").values_list("sequence", "created_at"))
    assert [sequence for sequence, _ in numbered] == list(range(1, CALLERS + 1))
    assert [at for _, at in numbered] == sorted(at for _, at in numbered)
