"""Eligibility: which technician may request which role in which organisation. Org admins only."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from access.models import AccessRequest, Eligibility, Grant, ReviewCampaign, ReviewItem, Role
from access.selectors import may_administer_access, may_request_access
from access.services._common import AccessError, iso, record
from access.services.grants import grant_end
from accounts.models import Organization, User
from audit.events import EventType


@transaction.atomic
def eligibility_create(
    *,
    actor: User,
    technician: User,
    role: Role,
    organization: Organization,
    valid_until: datetime | None = None,
    request: HttpRequest | None = None,
) -> Eligibility:
    """Make ``technician`` eligible to request ``role`` in ``organization`` (until
    ``valid_until``, if given). ``actor`` must be an org admin of the organisation (or a
    superuser) and not the technician: nobody makes themselves eligible. The technician
    must be a technician assigned to the organisation. One current eligibility per
    technician, role and organisation."""
    now = timezone.now()
    if not may_administer_access(actor, organization):
        raise AccessError("Only org admins of this organisation decide who is eligible for its roles.")
    if actor.pk == technician.pk:
        raise AccessError("Another org admin must make you eligible; nobody makes themselves eligible.")
    if not may_request_access(technician, organization):
        raise AccessError(f"{technician} is not a technician assigned to {organization}.")
    if not role.active:
        raise AccessError(f"{role} is no longer available.")
    if valid_until is not None and valid_until <= now:
        raise AccessError("The end of eligibility must be in the future.")
    try:
        with transaction.atomic():
            eligibility = Eligibility.objects.create(
                technician=technician,
                role=role,
                organization=organization,
                valid_until=valid_until,
                created_by=actor,
                created_at=now,
            )
    except IntegrityError:
        raise AccessError(f"{technician} is already eligible for {role} in {organization}.") from None
    record(
        EventType.ACCESS_ELIGIBILITY_CREATED,
        actor=actor,
        organization=organization,
        target=eligibility,
        request=request,
        technician=technician.pk,
        role=role.name,
        valid_until=iso(valid_until),
    )
    return eligibility


@transaction.atomic
def eligibility_end(
    *, actor: User, eligibility: Eligibility, reason: str = "", request: HttpRequest | None = None
) -> Eligibility:
    """End an eligibility now (org admins of its organisation, or superusers). The
    technician's open requests for that role there are cancelled and their grants in force
    or scheduled are revoked, so ending eligibility ends the access too."""
    locked = (
        Eligibility.objects.select_for_update(of=("self",))
        .select_related("organization", "role")
        .get(pk=eligibility.pk)
    )
    if not may_administer_access(actor, locked.organization):
        raise AccessError("Only org admins of this organisation manage its eligibilities.")
    if locked.ended_at is not None:
        raise AccessError("This eligibility has already ended.")
    why = f"Eligibility ended by {actor}" + (f": {reason.strip()}" if reason.strip() else "")
    eligibility_close(locked, actor=actor, now=timezone.now(), why=why, reason=reason.strip(), request=request)
    return locked


def eligibility_close(
    locked: Eligibility,
    *,
    actor: User | None,
    now: datetime,
    why: str,
    reason: str = "",
    request: HttpRequest | None = None,
    **details,
) -> None:
    """End a current eligibility locked by the caller (in its transaction): cancel the
    technician's open requests for that role there, revoke their grants of it in force or
    scheduled (``why`` becomes the grants' and requests' reason) and record
    ``access.eligibility_ended``. Internal to the services: ``eligibility_end`` (an org
    admin), the end-date sweep and access reviews (no actor: the system)."""
    locked.ended_at = now
    locked.ended_by = actor
    locked.save(update_fields=["ended_at", "ended_by"])
    # Nothing is left to review: an open campaign counts the item as decided.
    ReviewItem.objects.filter(
        eligibility=locked, decision=ReviewItem.Decision.PENDING, campaign__status=ReviewCampaign.Status.OPEN
    ).update(decision=ReviewItem.Decision.ENDED, decided_at=now, reason=why[:200])
    scope = {
        "technician_id": locked.technician_id,
        "role_id": locked.role_id,
        "organization_id": locked.organization_id,
    }
    cancelled = AccessRequest.objects.filter(status__in=AccessRequest.OPEN_STATUSES, **scope).update(
        status=AccessRequest.Status.CANCELLED, ended_reason=why[:200]
    )
    live = Grant.objects.filter(revoked_at__isnull=True, expires_at__gt=now, **scope).order_by("pk")
    revoked = []
    for grant in live.select_for_update(of=("self",)):
        grant_end(grant, actor=actor, now=now, status=AccessRequest.Status.REVOKED, reason=why)
        revoked.append(grant.pk)
    record(
        EventType.ACCESS_ELIGIBILITY_ENDED,
        actor=actor,
        organization=locked.organization,
        target=locked,
        request=request,
        technician=locked.technician_id,
        role=locked.role.name,
        requests_cancelled=cancelled,
        grants_revoked=revoked,
        reason=reason[:200],
        **details,
    )
