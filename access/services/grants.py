"""Grants: activate an approved request, release, revoke, expire, and the mirror at start.

Every path that ends a grant cleans its django-guardian mirror in the same transaction
(expiry: when the exact-time task or the sweep runs) and records how late that was.
"""

from __future__ import annotations

import enum
from datetime import datetime, timedelta

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from access import params
from access.mirror import mirror_sync, technician_lock
from access.models import AccessRequest, Eligibility, Grant
from access.selectors import eligibility_current, may_administer_access, may_request_access
from access.services._common import AccessError, ReauthenticationRequired, after_commit, iso, record, seconds
from accounts.models import User
from audit.events import EventType


class Outcome(enum.StrEnum):
    """What a cleanup step found; the tasks reschedule themselves on NOT_DUE."""

    DONE = "done"  # did the work now
    ALREADY = "already"  # someone did it before (idempotent)
    NOT_DUE = "not_due"  # too early: the task arrived before its time
    SKIPPED = "skipped"  # nothing to do for this grant (gone, revoked, too short)


def reauthentication_check(*, requires: bool, reauthenticated_at: datetime | None, now: datetime) -> None:
    """Raise ReauthenticationRequired unless ``reauthenticated_at`` (the technician's latest MFA
    step in this session, see ``access.reauth.mfa_reauthenticated_at``) is at most
    ACCESS_REAUTH_MAX_AGE_SECONDS old."""
    if not requires:
        return
    if reauthenticated_at is None:
        raise ReauthenticationRequired("Confirm it is you with your authenticator to activate this role.")
    age = now - reauthenticated_at
    if age > params.reauth_max_age() or age < -timedelta(seconds=5):
        raise ReauthenticationRequired("Your last MFA confirmation is too old: confirm it is you again to activate.")


def grant_open(
    *,
    access_request: AccessRequest,
    eligibility: Eligibility,
    now: datetime,
    reauthenticated_at: datetime | None,
) -> Grant:
    """Create the grant of a request and schedule its start (if later), expiry and notice.
    Internal to the activation services; the caller holds the request's row lock."""
    role = access_request.role
    starts_at = max(now, access_request.scheduled_start or now)
    expires_at = starts_at + min(access_request.requested_duration, role.effective_max_duration)
    if eligibility.valid_until is not None:
        expires_at = min(expires_at, eligibility.valid_until)
    if expires_at <= starts_at:
        raise AccessError("Your eligibility for this role ends before the grant would start.")
    started = starts_at <= now
    grant = Grant.objects.create(
        request=access_request,
        technician_id=access_request.technician_id,
        role=role,
        organization=access_request.organization,
        starts_at=starts_at,
        expires_at=expires_at,
        created_at=now,
        mfa_reauthenticated_at=reauthenticated_at if role.requires_mfa_reauth else None,
        break_glass=access_request.break_glass,
        review_required=access_request.break_glass,
        mirror_applied_at=now if started else None,
    )
    from access import tasks

    if started:
        technician_lock(grant.technician_id)
        mirror_sync(technician_id=grant.technician_id, organization_id=grant.organization_id, now=now)
    else:
        after_commit(tasks.grant_start, grant.pk, eta=starts_at)
    after_commit(tasks.grant_expire, grant.pk, eta=expires_at)
    if expires_at - starts_at > params.EXPIRY_NOTICE:
        after_commit(tasks.grant_expiry_notice, grant.pk, eta=expires_at - params.EXPIRY_NOTICE)
    return grant


@transaction.atomic
def grant_activate(
    *,
    actor: User,
    access_request: AccessRequest,
    reauthenticated_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> Grant:
    """Turn ``actor``'s approved request into a grant. The clock starts now, or at the
    request's scheduled start if that is later; the grant lasts the requested duration (cut
    to the role's current maximum and to the end of the technician's eligibility).

    ``reauthenticated_at``: when the technician last completed an MFA step in this session
    (the view reads it with ``access.reauth.mfa_reauthenticated_at(request)`` after sending
    them through allauth's ``mfa_reauthenticate`` page). Roles with ``requires_mfa_reauth``
    refuse activation with ReauthenticationRequired unless it is at most
    ACCESS_REAUTH_MAX_AGE_SECONDS old.

    The technician must still be assigned, a technician and eligible. Concurrent
    activations are serialised on the request's row: exactly one grant is created. After
    commit, tasks are scheduled for the exact expiry time (and the start, if later) and
    for the email 10 minutes before expiry.
    """
    locked = (
        AccessRequest.objects.select_for_update(of=("self",))
        .select_related("role", "organization")
        .get(pk=access_request.pk)
    )
    now = timezone.now()
    if locked.technician_id != actor.pk:
        raise AccessError("Only the technician who asked can activate this request.")
    if locked.status != AccessRequest.Status.APPROVED:
        raise AccessError(f"This request is {locked.get_status_display().lower()}; only an approved one activates.")
    if locked.activate_by is not None and locked.activate_by <= now:
        raise AccessError("This approval was not used in time and has lapsed; ask again.")
    role = locked.role
    if not role.active:
        raise AccessError(f"{role} is no longer available.")
    if not may_request_access(actor, locked.organization):
        raise AccessError("You are no longer assigned to this organisation.")
    eligibility = eligibility_current(technician=actor, role=role, organization=locked.organization, at=now)
    if eligibility is None:
        raise AccessError(f"You are no longer eligible for {role} in {locked.organization}.")
    reauthentication_check(requires=role.requires_mfa_reauth, reauthenticated_at=reauthenticated_at, now=now)
    grant = grant_open(access_request=locked, eligibility=eligibility, now=now, reauthenticated_at=reauthenticated_at)
    locked.status = AccessRequest.Status.ACTIVE
    locked.save(update_fields=["status"])
    record(
        EventType.ACCESS_GRANT_ACTIVATED,
        actor=actor,
        organization=locked.organization,
        target=grant,
        request=request,
        access_request=locked.pk,
        role=role.name,
        starts_at=iso(grant.starts_at),
        expires_at=iso(grant.expires_at),
        duration_s=seconds(grant.expires_at - grant.starts_at),
        mfa_reauthenticated=grant.mfa_reauthenticated_at is not None,
        extends=locked.extends_id,
    )
    return grant


def _lock_grant(grant_id: int) -> Grant | None:
    return (
        Grant.objects.select_for_update(of=("self",))
        .select_related("role", "organization", "technician")
        .filter(pk=grant_id)
        .first()
    )


def grant_end(grant: Grant, *, actor: User | None, now: datetime, status: str, reason: str) -> None:
    """Revoke a locked grant that is in force or not yet started: set ``revoked_at``, clean the
    mirror (keeping what other grants in force carry) and close its request with ``status``.
    Internal to the services; records no event."""
    grant.revoked_at = now
    grant.revoked_by = actor
    grant.reason = reason[:200]
    grant.save(update_fields=["revoked_at", "revoked_by", "reason"])  # before the sync, which reads the rows
    technician_lock(grant.technician_id)
    mirror_sync(technician_id=grant.technician_id, organization_id=grant.organization_id, now=now)
    grant.mirror_cleaned_at = now
    grant.cleanup_lag = timedelta(0)
    grant.save(update_fields=["mirror_cleaned_at", "cleanup_lag"])
    AccessRequest.objects.filter(pk=grant.request_id, status=AccessRequest.Status.ACTIVE).update(
        status=status, ended_reason=reason[:200]
    )


def _lock_live(grant: Grant, now: datetime) -> Grant:
    locked = _lock_grant(grant.pk)
    if locked is None or locked.revoked_at is not None or locked.expires_at <= now:
        raise AccessError("This grant has already ended.")
    return locked


@transaction.atomic
def grant_release(*, actor: User, grant: Grant, request: HttpRequest | None = None) -> Grant:
    """ "I'm done": the technician ends their own grant early (or cancels one not yet started)."""
    now = timezone.now()
    locked = _lock_live(grant, now)
    if locked.technician_id != actor.pk:
        raise AccessError("Only the technician holding a grant can release it.")
    grant_end(locked, actor=actor, now=now, status=AccessRequest.Status.ENDED, reason="Released by the technician")
    record(
        EventType.ACCESS_GRANT_RELEASED,
        actor=actor,
        organization=locked.organization,
        target=locked,
        request=request,
        unused_s=seconds(locked.expires_at - max(now, locked.starts_at)),
    )
    return locked


@transaction.atomic
def grant_revoke(*, actor: User, grant: Grant, reason: str, request: HttpRequest | None = None) -> Grant:
    """An org admin of the grant's organisation (or a superuser) ends it now, with a reason."""
    reason = (reason or "").strip()
    if not reason:
        raise AccessError("Give the reason for revoking this grant.")
    now = timezone.now()
    locked = _lock_live(grant, now)
    if not may_administer_access(actor, locked.organization):
        raise AccessError("Only org admins of this organisation revoke its grants.")
    grant_end(locked, actor=actor, now=now, status=AccessRequest.Status.REVOKED, reason=reason)
    record(
        EventType.ACCESS_GRANT_REVOKED,
        actor=actor,
        organization=locked.organization,
        target=locked,
        request=request,
        technician=locked.technician_id,
        reason=reason[:200],
    )
    return locked


def grant_expire(*, grant_id: int, now: datetime | None = None) -> Outcome:
    """Clean up after a grant's expiry: remove its mirrored permissions (keeping those another
    grant in force carries), record ``mirror_cleaned_at`` and the lag since ``expires_at``, end
    its request. Idempotent: a second call, or one for a revoked grant, does nothing. Too
    early (the grant is still in force) is NOT_DUE. Authorization never waits for this."""
    with transaction.atomic():
        grant = _lock_grant(grant_id)
        if grant is None:
            return Outcome.SKIPPED
        if grant.mirror_cleaned_at is not None:
            return Outcome.ALREADY
        now = now or timezone.now()
        if grant.revoked_at is None and grant.expires_at > now:
            return Outcome.NOT_DUE
        technician_lock(grant.technician_id)
        mirror_sync(technician_id=grant.technician_id, organization_id=grant.organization_id, now=now)
        grant.mirror_cleaned_at = now
        grant.cleanup_lag = max(now - grant.ended_at, timedelta(0))
        grant.save(update_fields=["mirror_cleaned_at", "cleanup_lag"])
        AccessRequest.objects.filter(pk=grant.request_id, status=AccessRequest.Status.ACTIVE).update(
            status=AccessRequest.Status.ENDED, ended_reason="Expired"
        )
        if grant.revoked_at is None:
            record(
                EventType.ACCESS_GRANT_EXPIRED,
                organization=grant.organization,
                target=grant,
                technician=grant.technician_id,
                expires_at=iso(grant.expires_at),
                lag_ms=round(grant.cleanup_lag.total_seconds() * 1000),
            )
        return Outcome.DONE


def grant_mirror_apply(*, grant_id: int, now: datetime | None = None) -> Outcome:
    """A scheduled grant reached its start: mirror its permissions. Idempotent; NOT_DUE before
    ``starts_at``; SKIPPED once it has ended (its expiry cleans up)."""
    with transaction.atomic():
        grant = _lock_grant(grant_id)
        if grant is None:
            return Outcome.SKIPPED
        if grant.mirror_applied_at is not None:
            return Outcome.ALREADY
        now = now or timezone.now()
        if grant.starts_at > now:
            return Outcome.NOT_DUE
        if not grant.in_force_at(now):
            return Outcome.SKIPPED
        technician_lock(grant.technician_id)
        mirror_sync(technician_id=grant.technician_id, organization_id=grant.organization_id, now=now)
        grant.mirror_applied_at = now
        grant.save(update_fields=["mirror_applied_at"])
        return Outcome.DONE


def grant_expiry_notice_send(*, grant_id: int, now: datetime | None = None) -> Outcome:
    """Email the technician that the grant ends in 10 minutes, once. NOT_DUE before then;
    SKIPPED for grants no longer in force or of 10 minutes or less (no notice is due)."""
    from access.notifications import grant_expiring_send

    with transaction.atomic():
        grant = _lock_grant(grant_id)
        if grant is None or grant.expires_at - grant.starts_at <= params.EXPIRY_NOTICE:
            return Outcome.SKIPPED
        if grant.expiry_notice_sent_at is not None:
            return Outcome.ALREADY
        now = now or timezone.now()
        if not grant.in_force_at(now):
            return Outcome.SKIPPED if grant.starts_at <= now else Outcome.NOT_DUE
        if grant.expires_at - now > params.EXPIRY_NOTICE:
            return Outcome.NOT_DUE
        grant.expiry_notice_sent_at = now
        grant.save(update_fields=["expiry_notice_sent_at"])
        # Sent inside the transaction: if the mail server refuses, the mark rolls back and the task retries.
        grant_expiring_send(grant=grant, now=now)
        return Outcome.DONE
