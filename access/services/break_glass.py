"""Break-glass: a role activated without approval for a short time, every org admin alerted
at once, and the use flagged until an org admin reviews it."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from access.models import AccessRequest, Grant, Role
from access.selectors import eligibility_current, may_administer_access, may_request_access
from access.services._common import AccessError, after_commit, clean_justification, clean_ticket, iso, record, seconds
from access.services.grants import grant_open, reauthentication_check
from accounts.models import Organization, User
from audit.events import EventType


@transaction.atomic
def break_glass_activate(
    *,
    actor: User,
    role: Role,
    organization: Organization,
    justification: str,
    ticket_reference: str,
    duration: timedelta | None = None,
    reauthenticated_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> Grant:
    """``actor`` (a technician assigned to ``organization`` and eligible for the break-glass
    ``role`` there) activates it at once, without approval. The grant lasts ``duration``,
    by default and at most the role's maximum cut to ACCESS_BREAK_GLASS_MAX_MINUTES (30 min
    by default, never more than 60). MFA re-authentication as for ``grant_activate``.

    A request row is written too (status active, ``break_glass``) so the history reads like
    any other grant's. After commit every org admin of the organisation is emailed at once
    (``selectors.org_admin_list_for``), and the grant stays flagged ``review_required``
    until ``break_glass_review``. One break-glass grant in force per technician, role and
    organisation.
    """
    now = timezone.now()
    if not role.break_glass or not role.active:
        raise AccessError(f"{role} is not an available break-glass role.")
    if not may_request_access(actor, organization):
        raise AccessError("Only technicians assigned to this organisation can use its break-glass roles.")
    eligibility = eligibility_current(technician=actor, role=role, organization=organization, at=now)
    if eligibility is None:
        raise AccessError(f"You are not eligible for {role} in {organization}.")
    cap = role.effective_max_duration
    duration = cap if duration is None else duration
    if not timedelta(0) < duration <= cap:
        raise AccessError(f"Break-glass access lasts at most {int(cap.total_seconds() // 60)} minutes.")
    reauthentication_check(requires=role.requires_mfa_reauth, reauthenticated_at=reauthenticated_at, now=now)
    already = Grant.objects.filter(
        technician=actor, role=role, organization=organization, revoked_at__isnull=True, expires_at__gt=now
    )
    if already.exists():
        raise AccessError(f"You already hold {role} in {organization}.")
    access_request = AccessRequest.objects.create(
        technician=actor,
        role=role,
        organization=organization,
        justification=clean_justification(justification),
        ticket_reference=clean_ticket(ticket_reference),
        requested_duration=duration,
        break_glass=True,
        approvals_required=0,
        status=AccessRequest.Status.ACTIVE,
        created_at=now,
        review_expires_at=now,
        decided_at=now,
    )
    grant = grant_open(
        access_request=access_request, eligibility=eligibility, now=now, reauthenticated_at=reauthenticated_at
    )
    record(
        EventType.ACCESS_BREAK_GLASS_ACTIVATED,
        actor=actor,
        organization=organization,
        target=grant,
        request=request,
        access_request=access_request.pk,
        role=role.name,
        ticket=access_request.ticket_reference,
        expires_at=iso(grant.expires_at),
        duration_s=seconds(grant.expires_at - grant.starts_at),
        mfa_reauthenticated=grant.mfa_reauthenticated_at is not None,
    )
    from access.tasks import break_glass_alert

    after_commit(break_glass_alert, grant.pk)
    return grant


@transaction.atomic
def break_glass_review(*, actor: User, grant: Grant, notes: str, request: HttpRequest | None = None) -> Grant:
    """An org admin of the organisation, other than the technician who used it, records the
    mandatory review of a break-glass grant (at any time; usually after it ended)."""
    notes = (notes or "").strip()
    if not notes:
        raise AccessError("Write what the review found.")
    locked = Grant.objects.select_for_update(of=("self",)).select_related("organization").get(pk=grant.pk)
    if not locked.review_required:
        raise AccessError("This grant needs no review.")
    if locked.reviewed_at is not None:
        raise AccessError("This break-glass use has already been reviewed.")
    if locked.technician_id == actor.pk:
        raise AccessError("Someone other than the technician who used break-glass access must review it.")
    if not may_administer_access(actor, locked.organization):
        raise AccessError("Only org admins of this organisation review its break-glass use.")
    locked.reviewed_at = timezone.now()
    locked.reviewed_by = actor
    locked.review_notes = notes[:4000]
    locked.save(update_fields=["reviewed_at", "reviewed_by", "review_notes"])
    record(
        EventType.ACCESS_BREAK_GLASS_REVIEWED,
        actor=actor,
        organization=locked.organization,
        target=locked,
        request=request,
        technician=locked.technician_id,
    )
    return locked
