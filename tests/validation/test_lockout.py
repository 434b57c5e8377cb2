"""Fraud reports and verification locks: one service for every "I didn't request this",
admins emailed at once, a clear stop for the technician, and a lock lifted only by a
second org admin of the organisation, with a reason."""

import pytest
from django.contrib.auth.models import Permission
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.models import Role
from tests.accounts.factories import OrganizationFactory, UserFactory
from tests.validation.hardening import events_of, start
from tests.validation.helpers import last_text, link_token_in
from validation import services
from validation.models import Challenge, Method, PersonVerificationState, VerificationRequest
from validation.services import VerificationError, lockout


@pytest.fixture
def capture(django_capture_on_commit_callbacks):
    return django_capture_on_commit_callbacks


@pytest.fixture
def technician(org):
    """The technician whose verification sets the lock; also an org admin, to show that
    the role does not let them lift their own lock."""
    return UserFactory(roles=[Role.TECHNICIAN, Role.ORG_ADMIN], organizations=[org], mfa=True)


@pytest.fixture
def second_admin(org):
    return UserFactory(roles=[Role.ORG_ADMIN], organizations=[org], mfa=True)


@pytest.fixture
def locked(technician, person, outbox, capture):
    """The person reported fraud on the push page; returns their verification."""
    verification = start(technician, person)
    with capture(execute=True):
        services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
    with capture(execute=True):
        assert services.push_respond(token=link_token_in(last_text(person.phone)), choice="fraud") == "fraud"
    verification.refresh_from_db()
    return verification


def state_of(person):
    return PersonVerificationState.objects.get(person=person)


def test_the_push_page_report_goes_through_the_shared_service(second_admin, locked, person, technician):
    assert locked.status == VerificationRequest.Status.LOCKED
    state = state_of(person)
    assert state.locked_reason == lockout.FRAUD_REASON
    assert (state.locked_technician, state.locked_request_id) == (technician, locked.pk)
    [report] = events_of("verification.fraud_reported")
    assert report.details["via"] == "push_page"
    assert len(events_of("verification.person_locked")) == 1
    # Every org admin of the organisation, each in a message of their own.
    assert sorted(m.to[0] for m in mail.outbox) == sorted([technician.email, second_admin.email])
    assert "did not request" in mail.outbox[0].subject
    assert reverse("validation:start", args=[person.pk]) in mail.outbox[0].body


def test_without_org_admins_the_alert_goes_to_superusers(person, outbox, capture, org):
    from tests.validation.factories import technician_for

    root = UserFactory(is_superuser=True)
    technician = technician_for(org)
    verification = start(technician, person)
    with capture(execute=True):
        services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
    with capture(execute=True):
        services.push_respond(token=link_token_in(last_text(person.phone)), choice="fraud")
    assert [m.to for m in mail.outbox] == [[root.email]]


def test_the_technician_sees_an_unmistakable_stop(client, locked, technician, person):
    client.force_login(technician)
    response = client.get(reverse("validation:detail", args=[locked.pk]))
    page = response.content.decode()
    assert "STOP — do not help this caller" in page and 'role="alert"' in page
    assert "The person reported they did not request this" in page
    assert reverse("validation:start", args=[person.pk]) in page
    assert "hx-get" not in page  # the page stops polling: the outcome is final


def test_a_second_org_admin_lifts_the_lock_with_a_reason(locked, person, second_admin, technician):
    PersonVerificationState.objects.filter(person=person).update(consecutive_failures=7)
    lockout.person_lock_lift(actor=second_admin, person=person, reason="  Called Jo back on the desk phone.  ")
    state = state_of(person)
    assert state.locked_at is None and state.consecutive_failures == 0
    assert (state.lifted_by, state.lift_reason) == (second_admin, "Called Jo back on the desk phone.")
    assert state.locked_technician == technician  # the record of the last lock stays
    [lifted] = events_of("verification.lock_lifted")
    assert lifted.details["reason"] == "Called Jo back on the desk phone."
    assert lifted.details["consecutive_failures"] == 7 and lifted.details["locked_verification"] == locked.pk
    start(technician, person)  # verification works again


def test_the_technician_who_triggered_the_lock_cannot_lift_it(locked, person, technician):
    with pytest.raises(VerificationError, match="your own verification"):
        lockout.person_lock_lift(actor=technician, person=person, reason="I know this caller, it is fine.")
    assert state_of(person).locked_at is not None
    [refused] = events_of("verification.lock_lift_refused")
    assert refused.details == {"person": person.pk}
    assert not events_of("verification.lock_lifted")


def test_staff_without_the_org_admin_role_cannot_lift_it(locked, person, org):
    for user in (
        UserFactory(roles=[Role.TECHNICIAN], organizations=[org]),
        UserFactory(roles=[Role.APPROVER, Role.AUDITOR], organizations=[org]),
        UserFactory(is_superuser=True),
        UserFactory(roles=[Role.ORG_ADMIN], organizations=[org], is_active=False),
        UserFactory(roles=[Role.ORG_ADMIN], organizations=[OrganizationFactory()]),
    ):
        with pytest.raises(VerificationError, match="Only an org admin of this organisation"):
            lockout.person_lock_lift(actor=user, person=person, reason="Checked with the person.")
    assert state_of(person).locked_at is not None
    assert not events_of("verification.lock_lifted")


@pytest.mark.parametrize("reason", ["", "   ", "too short", "x" * 501])
def test_a_reason_is_required(locked, person, second_admin, reason):
    with pytest.raises(VerificationError, match="reason"):
        lockout.person_lock_lift(actor=second_admin, person=person, reason=reason)
    assert state_of(person).locked_at is not None


def test_nothing_to_lift_when_not_locked(db, person, second_admin):
    with pytest.raises(VerificationError, match="not locked"):
        lockout.person_lock_lift(actor=second_admin, person=person, reason="Checked with the person.")


def test_a_failure_cap_lock_is_lifted_the_same_way(technician, person, outbox, capture, settings, second_admin):
    settings.VERIFICATION_FAILURE_CAP = 3
    verification = start(technician, person)
    PersonVerificationState.objects.filter(person=person).update(consecutive_failures=2)  # made at the start
    with capture(execute=True):
        challenge = services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
    challenge.refresh_from_db()
    wrong = next(n for n in challenge.match_choices if n != challenge.match_number)
    mail.outbox.clear()
    with capture(execute=True):
        services.push_respond(token=link_token_in(last_text(person.phone)), choice=str(wrong))
    state = state_of(person)
    assert state.locked_at is not None and state.locked_technician == technician
    # The org admins hear of it at once, as of a fraud report, with why and where to lift it.
    assert sorted(m.to[0] for m in mail.outbox) == sorted([technician.email, second_admin.email])
    alert = mail.outbox[0]
    assert "Verification locked" in alert.subject and "repeated failed attempts" in alert.subject
    assert "3 consecutive failed verification attempts" in alert.body
    assert reverse("validation:start", args=[person.pk]) in alert.body
    with pytest.raises(VerificationError):
        lockout.person_lock_lift(actor=technician, person=person, reason="It was me testing the phone.")
    lockout.person_lock_lift(actor=second_admin, person=person, reason="Person mistyped the numbers.")
    assert state_of(person).consecutive_failures == 0


# --- The lift form on the person's verify page -----------------------------------------------


def lift_url(person):
    return reverse("validation:lock_lift", args=[person.pk])


def test_the_verify_page_offers_the_form_only_to_a_second_org_admin(client, locked, person, technician, second_admin):
    client.force_login(second_admin)
    page = client.get(reverse("validation:start", args=[person.pk])).content.decode()
    assert f'action="{lift_url(person)}"' in page and 'name="reason"' in page
    client.force_login(technician)
    page = client.get(reverse("validation:start", args=[person.pk])).content.decode()
    assert f'action="{lift_url(person)}"' not in page
    assert "It was set during your own verification, so another org admin must lift it." in page


def test_the_form_lifts_the_lock(client, locked, person, second_admin):
    client.force_login(second_admin)
    response = client.post(lift_url(person), {"reason": "Called back on the number of record."}, follow=True)
    assert response.status_code == 200
    assert f"Verification is unlocked for {person.full_name}" in response.content.decode()
    assert state_of(person).locked_at is None


def test_the_form_refuses_the_triggering_technician(client, locked, person, technician):
    client.force_login(technician)
    response = client.post(lift_url(person), {"reason": "I know this caller, it is fine."}, follow=True)
    assert "another org admin of this organisation must lift it" in response.content.decode()
    assert state_of(person).locked_at is not None


def test_another_organisations_admin_gets_a_404(client, locked, person):
    outsider = UserFactory(roles=[Role.ORG_ADMIN], organizations=[OrganizationFactory()], mfa=True)
    client.force_login(outsider)
    assert client.post(lift_url(person), {"reason": "Checked with the person."}).status_code == 404
    assert state_of(person).locked_at is not None


def test_the_form_is_post_only_and_csrf_checked(locked, person, second_admin):
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(second_admin)
    assert csrf_client.get(lift_url(person)).status_code == 405
    assert csrf_client.post(lift_url(person), {"reason": "Checked with the person."}).status_code == 403
    assert state_of(person).locked_at is not None


def test_signed_out_users_are_sent_to_sign_in(client, locked, person):
    response = client.post(lift_url(person), {"reason": "Checked with the person."})
    assert response.status_code == 302 and "login" in response["Location"]
    assert state_of(person).locked_at is not None


@hypothesis_settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    reason=st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=520)
    | st.sampled_from(["", " " * 20, "a" * 10, " " + "b" * 500 + " "]),
    extra=st.dictionaries(st.text(min_size=1, max_size=10), st.text(max_size=20), max_size=3),
)
def test_any_lift_form_input_gives_a_clear_answer_and_lifts_only_with_a_valid_reason(
    client, locked, person, second_admin, reason, extra
):
    from django.db import transaction

    client.force_login(second_admin)
    with transaction.atomic():
        data = {**{k: v for k, v in extra.items() if k != "reason"}, "reason": reason}
        response = client.post(lift_url(person), data, follow=True)
        lifted = state_of(person).locked_at is None
        events = len(events_of("verification.lock_lifted"))
        transaction.set_rollback(True)
    assert response.status_code == 200
    valid = "\x00" not in reason and 10 <= len(reason.strip()) <= 500
    assert lifted == valid and events == int(valid)
    page = response.content.decode()
    assert ("is unlocked" in page) == valid
    if not valid:
        assert "reason" in page.lower() or "null characters" in page.lower()


def test_the_admin_shows_the_lock_and_lift_read_only(client, locked, person, second_admin):
    second_admin.is_staff = True
    second_admin.save()
    second_admin.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_personverificationstate", "change_personverificationstate"])
    )
    lockout.person_lock_lift(actor=second_admin, person=person, reason="Called back on the number of record.")
    client.force_login(second_admin)
    state = state_of(person)
    url = f"/admin/validation/personverificationstate/{state.pk}/change/"
    page = client.get(url).content.decode()
    assert "Called back on the number of record." in page and "Locked technician" in page
    assert client.post(url, {"locked_at": "2020-01-01"}).status_code == 403


def test_nothing_is_sent_on_a_locked_person(technician, person, outbox, capture):
    """After a lock no new request starts and the locked request sends nothing more."""
    verification = start(technician, person)
    with capture(execute=True):
        sms = services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
    services.push_respond(token=link_token_in(last_text(person.phone)), choice="fraud")
    with pytest.raises(VerificationError, match="locked"):
        start(technician, person)
    assert Challenge.objects.get(pk=sms.pk).status == Challenge.Status.DENIED
    with pytest.raises(VerificationError, match="locked"):
        services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)


def test_an_alert_queued_under_the_earlier_task_name_still_reaches_the_admins(technician, second_admin, locked):
    from validation.tasks import fraud_alert

    mail.outbox.clear()
    fraud_alert.delay(locked.pk)  # as a message queued before the upgrade would run
    assert sorted(m.to[0] for m in mail.outbox) == sorted([technician.email, second_admin.email])
    assert "did not request" in mail.outbox[0].subject


def test_ensuring_the_state_row_makes_it_once_and_tells_the_lock(person, django_assert_max_num_queries):
    """``person_state_ensure`` makes the row the answers lock (one statement on PostgreSQL,
    with the read of the lock), and never a second one; it reports a lock set earlier."""
    from django.utils import timezone

    from validation.services.requests import person_state_ensure

    with django_assert_max_num_queries(1 if connection.vendor == "postgresql" else 2):
        assert person_state_ensure(person) is None
    assert person_state_ensure(person) is None
    assert PersonVerificationState.objects.filter(person=person).count() == 1
    PersonVerificationState.objects.filter(person=person).update(locked_at=timezone.now(), locked_reason="Fraud")
    assert person_state_ensure(person) == "Fraud"
    PersonVerificationState.objects.filter(person=person).update(locked_reason="")
    assert person_state_ensure(person) == "Verification is locked for this person"
    assert PersonVerificationState.objects.filter(person=person).count() == 1
