"""Access hygiene: eligibilities end at their end date, the locked-staff page of org admins,
the daily digest, and the beat schedule."""

import re
from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from access import tasks
from access.hygiene_forms import UnlockForm
from access.models import AccessRequest, Eligibility, Grant
from access.services import hygiene, reviews
from accounts import services as account_services
from accounts.models import User
from audit.events import EventType
from audit.models import SecurityEvent
from audit.recorder import security_event_record
from tests.access.factories import (
    AccessRequestFactory,
    EligibilityFactory,
    GrantFactory,
    org_admin_for,
    technician_for,
)
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PROPERTY = hypothesis_settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def text(response) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


# --- Eligibilities past their end date ---------------------------------------------------------


def test_eligibility_ends_at_its_end_date_not_a_second_before(technician, role, org):
    start = timezone.now().replace(microsecond=0)
    with time_machine.travel(start, tick=False) as clock:
        until = start + timedelta(days=3)
        eligibility = EligibilityFactory(technician=technician, role=role, organization=org, valid_until=until)
        clock.move_to(until - timedelta(seconds=1))
        assert hygiene.eligibility_expire_due() == 0
        eligibility.refresh_from_db()
        assert eligibility.ended_at is None and eligibility.is_current(timezone.now())
        clock.move_to(until)
        assert not eligibility.is_current(timezone.now())  # what requests see, sweep or not
        assert hygiene.eligibility_expire_due() == 1
    eligibility.refresh_from_db()
    assert eligibility.ended_at == until and eligibility.ended_by is None
    event = SecurityEvent.objects.get(event_type="access.eligibility_ended")
    assert event.actor_kind == "system" and event.organization_id == org.pk
    assert event.details["valid_until"] == until.isoformat()
    assert hygiene.eligibility_expire_due() == 0  # once


def test_ending_at_the_end_date_revokes_grants_and_cancels_requests(technician, role, org):
    until = timezone.now() - timedelta(seconds=1)
    EligibilityFactory(technician=technician, role=role, organization=org, valid_until=until)
    grant = GrantFactory(technician=technician, role=role, organization=org)
    pending = AccessRequestFactory(technician=technician, role=role, organization=org, status="pending")
    assert hygiene.eligibility_expire_due() == 1
    grant.refresh_from_db()
    pending.refresh_from_db()
    assert grant.revoked_at is not None and grant.revoked_by is None
    assert pending.status == AccessRequest.Status.CANCELLED
    event = SecurityEvent.objects.get(event_type="access.eligibility_ended")
    assert event.details["grants_revoked"] == [grant.pk] and event.details["requests_cancelled"] == 1


def test_eligibilities_without_end_date_or_already_ended_are_left_alone(technician, role, org):
    EligibilityFactory(technician=technician, role=role, organization=org)
    EligibilityFactory(
        technician=technician,
        organization=org,
        valid_until=timezone.now() - timedelta(days=1),
        ended_at=timezone.now() - timedelta(days=2),
    )
    assert hygiene.eligibility_expire_due() == 0
    assert not SecurityEvent.objects.filter(event_type="access.eligibility_ended").exists()


# --- Locked staff: the org admins' page -------------------------------------------------------


def _lock(user: User) -> User:
    User.objects.filter(pk=user.pk).update(date_joined=timezone.now() - timedelta(days=60), last_login=None)
    assert account_services.user_lock_inactive(user_id=user.pk)
    user.refresh_from_db()
    return user


@pytest.fixture
def admin_client(client, org):
    admin = org_admin_for(org, mfa=True)
    client.force_login(admin)
    client.admin = admin
    return client


@pytest.fixture
def locked(org):
    return _lock(technician_for(org))


def test_org_admin_sees_the_locked_staff_of_their_organisation_only(admin_client, org, other_org, locked):
    elsewhere = _lock(technician_for(other_org))
    page = admin_client.get(reverse("access:locked_staff", args=[org.slug]))
    assert page.status_code == 200
    assert locked.email in text(page) and elsewhere.email not in text(page)


def test_org_admin_unlocks_with_a_reason_on_the_page(admin_client, org, locked):
    url = reverse("access:staff_unlock", args=[org.slug, locked.pk])
    response = admin_client.post(url, {"reason": "Back from secondment"})
    assert response.status_code == 302
    locked.refresh_from_db()
    assert locked.is_active and not locked.is_locked
    event = SecurityEvent.objects.get(event_type="auth.staff_unlocked")
    assert event.actor_id == admin_client.admin.pk and event.details["reason"] == "Back from secondment"


def test_unlock_without_a_reason_changes_nothing(admin_client, org, locked):
    response = admin_client.post(
        reverse("access:staff_unlock", args=[org.slug, locked.pk]), {"reason": ""}, follow=True
    )
    assert "Give the reason for unlocking" in text(response)
    locked.refresh_from_db()
    assert locked.is_locked


def test_org_admin_closes_the_account_of_someone_who_left_and_nobody_can_unlock_it(admin_client, org, locked):
    response = admin_client.post(
        reverse("access:staff_close", args=[org.slug, locked.pk]), {"reason": "Left the company on Friday"}, follow=True
    )
    assert "account is closed" in text(response)
    locked.refresh_from_db()
    assert not locked.is_active and not locked.is_locked  # inactive for good, not an inactivity lock
    assert locked.email not in text(admin_client.get(reverse("access:locked_staff", args=[org.slug])))
    event = SecurityEvent.objects.get(event_type="auth.staff_closed")
    assert event.actor_id == admin_client.admin.pk and event.details["reason"] == "Left the company on Friday"
    # The unlock path is gone: no longer locked, so the page's URL is a 404 and the service refuses.
    assert (
        admin_client.post(
            reverse("access:staff_unlock", args=[org.slug, locked.pk]), {"reason": "Came back"}
        ).status_code
        == 404
    )
    with pytest.raises(account_services.UnlockError, match="not locked"):
        account_services.user_unlock(actor=admin_client.admin, user=locked, reason="Came back after all")
    locked.refresh_from_db()
    assert not locked.is_active
    # A superuser reopens it by editing the account (no inactivity lock stands in the way).
    root = UserFactory(is_staff=True, is_superuser=True)
    account_services.user_update(actor=root, user=locked, data={"is_active": True})
    locked.refresh_from_db()
    assert locked.is_active


def test_an_org_admin_closes_only_someone_all_of_whose_organisations_are_theirs(admin_client, org, other_org):
    shared = _lock(technician_for(org))
    account_services.organization_assign_staff(actor=None, organization=other_org, user=shared)
    response = admin_client.post(
        reverse("access:staff_close", args=[org.slug, shared.pk]), {"reason": "Left this client"}, follow=True
    )
    assert "You may not close" in text(response)
    shared.refresh_from_db()
    assert shared.is_locked  # still unlockable by other_org's admins
    root = UserFactory(is_staff=True, is_superuser=True)
    account_services.user_close(actor=root, user=shared, reason="Left the company")
    shared.refresh_from_db()
    assert not shared.is_locked and not shared.is_active


def test_a_reopened_account_is_not_locked_again_by_the_next_sweep(admin_client, org, locked):
    account_services.user_close(actor=admin_client.admin, user=locked, reason="Left the company")
    root = UserFactory(is_staff=True, is_superuser=True)
    account_services.user_update(actor=root, user=locked, data={"is_active": True})
    assert account_services.staff_lock_inactive_due() == 0
    locked.refresh_from_db()
    assert locked.is_active and not locked.is_locked and locked.unlocked_at is not None


def test_closing_needs_a_reason_and_never_ones_own_account(admin_client, org, locked):
    admin_client.post(reverse("access:staff_close", args=[org.slug, locked.pk]), {"reason": " "})
    locked.refresh_from_db()
    assert locked.is_locked
    with pytest.raises(account_services.UnlockError, match="own account"):
        account_services.user_close(actor=locked, user=locked, reason="Closing myself out")
    assert SecurityEvent.objects.filter(event_type="auth.staff_unlock_refused", actor_id=locked.pk).exists()
    locked.refresh_from_db()
    assert locked.is_locked and not SecurityEvent.objects.filter(event_type="auth.staff_closed").exists()


def test_closing_another_organisations_staff_is_a_404_and_a_superuser_is_refused(admin_client, org, other_org):
    elsewhere = _lock(technician_for(other_org))
    url = reverse("access:staff_close", args=[org.slug, elsewhere.pk])
    assert admin_client.post(url, {"reason": "Looks fine"}).status_code == 404
    UserFactory(is_staff=True, is_superuser=True)  # another superuser stays active
    root = _lock(UserFactory(is_staff=True, is_superuser=True, organizations=[org]))
    response = admin_client.post(
        reverse("access:staff_close", args=[org.slug, root.pk]), {"reason": "Not needed"}, follow=True
    )
    assert "You may not close" in text(response)
    for user in (elsewhere, root):
        user.refresh_from_db()
        assert user.is_locked


def test_another_organisations_staff_is_a_404(admin_client, org, other_org):
    elsewhere = _lock(technician_for(other_org))
    assert (
        admin_client.post(
            reverse("access:staff_unlock", args=[org.slug, elsewhere.pk]), {"reason": "Looks fine"}
        ).status_code
        == 404
    )
    assert (
        admin_client.post(
            reverse("access:staff_unlock", args=[other_org.slug, elsewhere.pk]), {"reason": "Looks fine"}
        ).status_code
        == 404
    )
    assert admin_client.get(reverse("access:locked_staff", args=[other_org.slug])).status_code == 404
    elsewhere.refresh_from_db()
    assert elsewhere.is_locked


def test_staff_who_are_not_org_admins_get_403(client, org, locked):
    client.force_login(technician_for(org, mfa=True))
    assert client.get(reverse("access:locked_staff", args=[org.slug])).status_code == 403
    assert (
        client.post(reverse("access:staff_unlock", args=[org.slug, locked.pk]), {"reason": "Looks fine"}).status_code
        == 403
    )
    locked.refresh_from_db()
    assert locked.is_locked


def test_the_page_offers_no_unlock_of_a_superuser_to_an_org_admin(admin_client, org):
    UserFactory(is_staff=True, is_superuser=True)  # another superuser stays active
    root = _lock(UserFactory(is_staff=True, is_superuser=True, organizations=[org]))
    page = admin_client.get(reverse("access:locked_staff", args=[org.slug]))
    assert "Only a superuser unlocks a superuser" in text(page)
    response = admin_client.post(
        reverse("access:staff_unlock", args=[org.slug, root.pk]), {"reason": "Needed today"}, follow=True
    )
    assert "You may not unlock" in text(response)
    root.refresh_from_db()
    assert root.is_locked


@given(reason=st.text(max_size=300), pk=st.one_of(st.none(), st.integers(min_value=0, max_value=2**31)))
@PROPERTY
def test_arbitrary_unlock_posts_never_fail_and_bad_ones_change_nothing(admin_client, org, locked, reason, pk):
    User.objects.filter(pk=locked.pk).update(is_active=False, locked_at=timezone.now())  # locked again
    target = locked.pk if pk is None else pk
    response = admin_client.post(f"/access/organisations/{org.slug}/locked-staff/{target}/unlock/", {"reason": reason})
    locked.refresh_from_db()
    form = UnlockForm({"reason": reason})
    acceptable = form.is_valid() and 5 <= len(" ".join(form.cleaned_data["reason"].split())) <= 200
    if target != locked.pk:
        assert response.status_code == 404
        assert locked.is_locked
    else:
        assert response.status_code == 302
        assert locked.is_locked != acceptable


# --- The daily digest -------------------------------------------------------------------------


def _event(event_type, organization, at):
    with time_machine.travel(at, tick=False):
        security_event_record(event_type=event_type, organization=organization)


@pytest.fixture
def digest_org(org, other_org, technician, role, django_capture_on_commit_callbacks):
    """org: two org admins, and in the last 24 hours 2 grants, 1 break-glass, 1 verification
    lock, 1 fraud report, 1 staff account locked, and a review with 1 of 2 items pending.
    Around it: an older grant and other_org's events, which must not count."""
    now = timezone.now()
    admins = [org_admin_for(org), org_admin_for(org)]
    other_admin = org_admin_for(other_org)
    for hours in (1, 23):
        _event(EventType.ACCESS_GRANT_ACTIVATED, org, now - timedelta(hours=hours))
    _event(EventType.ACCESS_GRANT_ACTIVATED, org, now - timedelta(hours=24, seconds=1))
    _event(EventType.ACCESS_BREAK_GLASS_ACTIVATED, org, now - timedelta(hours=2))
    _event(EventType.VERIFICATION_PERSON_LOCKED, org, now - timedelta(hours=3))
    _event(EventType.VERIFICATION_FRAUD_REPORTED, org, now - timedelta(hours=3))
    _event(EventType.ACCESS_GRANT_ACTIVATED, other_org, now - timedelta(hours=1))
    _event(EventType.VERIFICATION_FRAUD_REPORTED, other_org, now - timedelta(hours=1))
    _lock(technician_for(org))
    EligibilityFactory(technician=technician, role=role, organization=org)
    EligibilityFactory(technician=technician_for(org), role=role, organization=org)
    campaign = reviews.review_campaign_start(actor=admins[0], organization=org)
    reviews.review_item_decide(actor=admins[0], item=campaign.items.first(), decision="recertified")
    mail.outbox.clear()
    return admins, other_admin


def test_digest_counts_the_last_24_hours_of_the_organisation(org, digest_org, django_assert_max_num_queries):
    now = timezone.now()
    with django_assert_max_num_queries(4):
        counts = hygiene.digest_counts(organization=org, since=now - timedelta(hours=24), until=now)
    assert counts == {
        "grants_used": 2,
        "break_glass": 1,
        "person_locks": 1,
        "fraud_reports": 1,
        "staff_locked": 1,
        "pending_reviews": 1,
    }


def test_digest_goes_to_that_organisations_admins_only(org, digest_org):
    admins, _ = digest_org
    sent = hygiene.access_digest_send(organization_id=org.pk, until=timezone.now())
    assert sent == 2
    assert sorted(m.to[0] for m in mail.outbox) == sorted(a.email for a in admins)
    message = mail.outbox[0]
    assert org.name in message.subject
    assert re.search(r"Grants activated:\s+2\b", message.body)
    assert re.search(r"Break-glass activations:\s+1\b", message.body)
    assert re.search(r"Verification lockouts \(people\):\s+1\b", message.body)
    assert re.search(r"reports:\s+1\b", message.body)
    assert re.search(r"locked for inactivity:\s+1\b", message.body)
    assert re.search(r"review items pending:\s+1\b", message.body)
    [(html, mimetype)] = message.alternatives
    assert mimetype == "text/html" and "<strong>2</strong>" in html
    event = SecurityEvent.objects.get(event_type="access.digest_sent")
    assert event.organization_id == org.pk and event.details["recipients"] == 2


def test_the_beat_task_sends_one_digest_per_organisation(org, other_org, digest_org):
    admins, other_admin = digest_org
    assert tasks.access_digest() == 2
    bodies = {m.to[0]: m.body for m in mail.outbox}
    assert sorted(bodies) == sorted([a.email for a in admins] + [other_admin.email])
    assert re.search(r"Grants activated:\s+2\b", bodies[admins[0].email])
    assert re.search(r"Grants activated:\s+1\b", bodies[other_admin.email])
    assert re.search(r"review items pending:\s+0\b", bodies[other_admin.email])


def test_no_digest_on_a_quiet_day(org):
    org_admin_for(org)
    assert hygiene.access_digest_send(organization_id=org.pk, until=timezone.now()) == 0
    assert mail.outbox == []


# --- The beat schedule ------------------------------------------------------------------------


def test_beat_schedule_runs_the_hygiene_tasks():
    import accounts.tasks  # noqa: F401  (registers the tasks, like the worker's autodiscovery)
    from config.celery import app

    scheduled = {entry["task"] for entry in app.conf.beat_schedule.values()}
    hygiene_tasks = {
        "accounts.tasks.staff_lock_inactive",
        "access.tasks.eligibility_expire_due",
        "access.tasks.review_campaigns_close_due",
        "access.tasks.review_campaigns_start_due",
        "access.tasks.access_digest",
    }
    assert hygiene_tasks <= scheduled
    assert hygiene_tasks <= set(app.tasks)


def test_beat_tasks_run_their_services(org, technician, role):
    EligibilityFactory(
        technician=technician, role=role, organization=org, valid_until=timezone.now() - timedelta(seconds=1)
    )
    assert tasks.eligibility_expire_due() == 1
    assert Eligibility.objects.get().ended_at is not None
    assert Grant.objects.count() == 0
