"""Activation, the guardian mirror, release, revocation, expiry and extensions."""

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from guardian.shortcuts import get_perms

from access import services
from access.authorization import grant_allows
from access.models import AccessRequest, Grant
from access.services import AccessError, Outcome, ReauthenticationRequired
from audit.models import SecurityEvent
from tests.access.factories import EligibilityFactory, RoleFactory, org_admin_for

pytestmark = pytest.mark.django_db


def jit_perms(user, org):
    return sorted(p for p in get_perms(user, org) if p != "work_on_organization")


def test_the_clock_starts_at_activation_not_at_approval(approved, activate):
    access_request = approved(duration=timedelta(minutes=45))
    later = timezone.now() + timedelta(hours=3)
    with time_machine.travel(later, tick=False):
        grant = activate(access_request)
    assert grant.starts_at == later and grant.expires_at == later + timedelta(minutes=45)
    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.ACTIVE
    assert SecurityEvent.objects.get(event_type="access.grant_activated").details["duration_s"] == 45 * 60


def test_activation_mirrors_the_role_as_object_permissions(approved, activate, technician, org):
    activate(approved())
    assert jit_perms(technician, org) == ["jit_account_unlock", "jit_password_reset"]
    assert technician.has_perm("accounts.jit_password_reset", org)


def test_only_the_requester_activates_and_only_once(approved, activate, approvers):
    access_request = approved()
    with pytest.raises(AccessError, match="Only the technician"):
        services.grant_activate(actor=approvers[0], access_request=access_request)
    activate(access_request)
    with pytest.raises(AccessError, match="only an approved one"):
        activate(access_request)
    assert Grant.objects.count() == 1


def test_a_pending_request_does_not_activate(ask, activate):
    with pytest.raises(AccessError):
        activate(ask())


def test_a_role_requiring_mfa_needs_a_fresh_reauthentication(org, technician, approvers, settings):
    settings.ACCESS_REAUTH_MAX_AGE_SECONDS = 300
    role = RoleFactory(requires_mfa_reauth=True)
    EligibilityFactory(technician=technician, role=role, organization=org)
    access_request = services.access_request_create(
        actor=technician, role=role, organization=org, justification="Reset with MFA", ticket_reference="I-5"
    )
    services.access_request_approve(actor=approvers[0], access_request=access_request)
    now = timezone.now()
    for stale in (None, now - timedelta(seconds=301)):
        with pytest.raises(ReauthenticationRequired):
            services.grant_activate(actor=technician, access_request=access_request, reauthenticated_at=stale)
    grant = services.grant_activate(
        actor=technician, access_request=access_request, reauthenticated_at=now - timedelta(seconds=30)
    )
    assert grant.mfa_reauthenticated_at == now - timedelta(seconds=30)


def test_a_scheduled_start_does_not_allow_early(approved, activate, technician, org):
    start = timezone.now() + timedelta(minutes=20)
    grant = activate(approved(scheduled_start=start, duration=timedelta(minutes=30)))
    assert grant.starts_at == start and grant.expires_at == start + timedelta(minutes=30)
    assert not grant_allows(technician=technician, organization=org, action="password_reset")
    assert grant_allows(technician=technician, organization=org, action="password_reset", at=start)
    assert jit_perms(technician, org) == []  # mirrored only once it starts
    assert services.grant_mirror_apply(grant_id=grant.pk) == Outcome.NOT_DUE
    with time_machine.travel(start + timedelta(seconds=1), tick=False):
        assert services.access_sweep()["grants_started"] == 1
    assert jit_perms(technician, org) == ["jit_account_unlock", "jit_password_reset"]


def test_expiry_is_idempotent_and_records_the_lag(approved, activate, technician, org):
    grant = activate(approved(duration=timedelta(minutes=30)))
    assert services.grant_expire(grant_id=grant.pk) == Outcome.NOT_DUE
    with time_machine.travel(grant.expires_at + timedelta(milliseconds=250), tick=False):
        assert services.grant_expire(grant_id=grant.pk) == Outcome.DONE
        assert services.grant_expire(grant_id=grant.pk) == Outcome.ALREADY
        assert services.access_sweep()["grants_expired"] == 0
    grant.refresh_from_db()
    assert grant.cleanup_lag == timedelta(milliseconds=250)
    assert grant.mirror_cleaned_at == grant.expires_at + timedelta(milliseconds=250)
    assert jit_perms(technician, org) == []
    assert grant.request.status == AccessRequest.Status.ENDED
    [event] = SecurityEvent.objects.filter(event_type="access.grant_expired")
    assert event.details["lag_ms"] == 250 and event.actor_kind == "system"


def test_the_sweep_expires_what_the_task_missed(approved, activate, technician, org):
    grant = activate(approved(duration=timedelta(minutes=30)))
    with time_machine.travel(grant.expires_at + timedelta(seconds=20), tick=False):
        assert services.access_sweep()["grants_expired"] == 1
    grant.refresh_from_db()
    assert grant.cleanup_lag == timedelta(seconds=20) and jit_perms(technician, org) == []


def test_with_the_worker_stopped_an_expired_grant_allows_nothing(approved, technician, org):
    """No task and no sweep ever runs: the mirror still holds the permissions, the check refuses."""
    import time

    access_request = approved(duration=timedelta(seconds=1))
    grant = services.grant_activate(actor=technician, access_request=access_request)  # on_commit never runs here
    assert grant_allows(technician=technician, organization=org, action="password_reset")
    time.sleep(max((grant.expires_at - timezone.now()).total_seconds(), 0) + 0.05)
    assert not grant_allows(technician=technician, organization=org, action="password_reset")
    assert "jit_password_reset" in jit_perms(technician, org)  # the mirror lags; it is not the check
    grant.refresh_from_db()
    assert grant.mirror_cleaned_at is None


def test_overlapping_grants_of_two_roles_keep_what_the_other_still_covers(org, technician, approvers, org_admin):
    resets = RoleFactory(actions=["password_reset", "account_unlock"])
    mfa = RoleFactory(actions=["mfa_reset", "account_unlock"])
    grants = []
    for role in (resets, mfa):
        EligibilityFactory(technician=technician, role=role, organization=org)
        access_request = services.access_request_create(
            actor=technician, role=role, organization=org, justification="Two roles today", ticket_reference="I-3"
        )
        services.access_request_approve(actor=approvers[0], access_request=access_request)
        grants.append(services.grant_activate(actor=technician, access_request=access_request))
    assert jit_perms(technician, org) == ["jit_account_unlock", "jit_mfa_reset", "jit_password_reset"]

    services.grant_revoke(actor=org_admin, grant=grants[0], reason="Ticket closed")

    assert jit_perms(technician, org) == ["jit_account_unlock", "jit_mfa_reset"]
    assert grant_allows(technician=technician, organization=org, action="account_unlock")
    assert not grant_allows(technician=technician, organization=org, action="password_reset")


def test_the_mirror_leaves_the_organization_assignment_alone(approved, activate, technician, org):
    grant = services.grant_release(actor=technician, grant=activate(approved()))
    assert "work_on_organization" in get_perms(technician, org)
    assert grant.cleanup_lag == timedelta(0)


def test_release_ends_the_grant_early(approved, activate, technician, org):
    grant = activate(approved())
    released = services.grant_release(actor=technician, grant=grant)
    assert released.revoked_at is not None and released.revoked_by == technician
    assert not grant_allows(technician=technician, organization=org, action="password_reset")
    assert released.request.status == AccessRequest.Status.ENDED
    assert SecurityEvent.objects.filter(event_type="access.grant_released").exists()
    with pytest.raises(AccessError, match="already ended"):
        services.grant_release(actor=technician, grant=grant)


def test_only_org_admins_of_the_organization_revoke_with_a_reason(approved, activate, approvers, other_org, org_admin):
    grant = activate(approved())
    for outsider in (approvers[0], org_admin_for(other_org)):
        with pytest.raises(AccessError, match="Only org admins"):
            services.grant_revoke(actor=outsider, grant=grant, reason="no")
    with pytest.raises(AccessError, match="reason"):
        services.grant_revoke(actor=org_admin, grant=grant, reason=" ")
    revoked = services.grant_revoke(actor=org_admin, grant=grant, reason="Caller was not who they said")
    assert revoked.request.status == AccessRequest.Status.REVOKED
    event = SecurityEvent.objects.get(event_type="access.grant_revoked")
    assert event.details["reason"] == "Caller was not who they said"


def test_nothing_brings_an_expired_or_revoked_grant_back(approved, activate, technician, org, org_admin):
    grant = activate(approved())
    stored = Grant.objects.get(pk=grant.pk)
    stored.expires_at += timedelta(hours=1)
    with pytest.raises(ValueError, match="never changes"):
        stored.save()
    services.grant_revoke(actor=org_admin, grant=grant, reason="done")
    stored = Grant.objects.get(pk=grant.pk)
    stored.revoked_at = None
    with pytest.raises(ValueError, match="stays revoked"):
        stored.save()
    assert services.grant_expire(grant_id=grant.pk) == Outcome.ALREADY
    assert services.grant_mirror_apply(grant_id=grant.pk) == Outcome.ALREADY
    services.access_sweep()
    assert jit_perms(technician, org) == []


def test_an_extension_is_a_new_request_and_never_moves_expires_at(approved, activate, technician, org, approvers):
    grant = activate(approved(duration=timedelta(minutes=30)))
    original_expiry = grant.expires_at
    extension = services.access_request_create(
        actor=technician,
        role=grant.role,
        organization=org,
        justification="Need 30 more minutes for the migration",
        ticket_reference="INC-1001",
        duration=timedelta(minutes=30),
        extends=grant,
    )
    assert extension.pk != grant.request_id and extension.status == AccessRequest.Status.PENDING
    assert extension.extends == grant
    services.access_request_approve(actor=approvers[1], access_request=extension)
    later = timezone.now() + timedelta(minutes=20)
    with time_machine.travel(later, tick=False):
        second = activate(extension)
    grant.refresh_from_db()
    assert grant.expires_at == original_expiry
    assert second.pk != grant.pk and second.expires_at == later + timedelta(minutes=30)


def test_an_extension_needs_a_grant_in_force(approved, activate, technician, org):
    grant = services.grant_release(actor=technician, grant=activate(approved()))
    with pytest.raises(AccessError, match="no longer in force"):
        services.access_request_create(
            actor=technician,
            role=grant.role,
            organization=org,
            justification="More time please",
            ticket_reference="I-2",
            extends=grant,
        )


def test_the_technician_is_emailed_ten_minutes_before_expiry(approved, activate, technician):
    grant = activate(approved(duration=timedelta(minutes=30)))
    mail.outbox.clear()
    with time_machine.travel(grant.expires_at - timedelta(minutes=10, seconds=1), tick=False):
        assert services.grant_expiry_notice_send(grant_id=grant.pk) == Outcome.NOT_DUE
        assert services.access_sweep()["notices_sent"] == 0
    with time_machine.travel(grant.expires_at - timedelta(minutes=10), tick=False):
        assert services.access_sweep()["notices_sent"] == 1
        assert services.grant_expiry_notice_send(grant_id=grant.pk) == Outcome.ALREADY
    [message] = mail.outbox
    assert message.to == [technician.email] and "10 minutes" in message.subject


def test_activation_schedules_the_expiry_task_for_the_exact_time(
    approved, technician, monkeypatch, django_capture_on_commit_callbacks
):
    from access import tasks

    sent = []
    for task in (tasks.grant_expire, tasks.grant_expiry_notice, tasks.grant_start):
        monkeypatch.setattr(task, "apply_async", lambda args, eta=None, name=task.name: sent.append((name, eta)))
    access_request = approved(duration=timedelta(minutes=30))
    with django_capture_on_commit_callbacks(execute=True):
        grant = services.grant_activate(actor=technician, access_request=access_request)
    assert sorted(sent) == sorted(
        [
            ("access.tasks.grant_expire", grant.expires_at),
            ("access.tasks.grant_expiry_notice", grant.expires_at - timedelta(minutes=10)),
        ]
    )


def test_ending_an_eligibility_cancels_requests_and_revokes_grants(approved, activate, eligible, org_admin, technician):
    grant = activate(approved())
    services.eligibility_end(actor=org_admin, eligibility=eligible, reason="Left the team")
    grant.refresh_from_db()
    assert grant.revoked_at is not None and grant.request.status == AccessRequest.Status.REVOKED
    assert not grant_allows(technician=technician, organization=grant.organization, action="password_reset")


def test_a_grant_ends_no_later_than_the_eligibility(approved, activate, eligible):
    eligible.valid_until = timezone.now() + timedelta(minutes=20)
    eligible.save()
    grant = activate(approved(duration=timedelta(hours=1)))
    assert grant.expires_at == eligible.valid_until


def test_grants_of_ten_minutes_or_less_get_no_notice(approved, activate):
    grant = activate(approved(duration=timedelta(minutes=10)))
    with time_machine.travel(grant.starts_at + timedelta(seconds=5), tick=False):
        assert services.access_sweep()["notices_sent"] == 0
        assert services.grant_expiry_notice_send(grant_id=grant.pk) == Outcome.SKIPPED
    assert mail.outbox == []
