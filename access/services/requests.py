"""Access requests: ask, approve (N of M), deny, cancel, and expire when nobody decides."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from access import params
from access.models import AccessRequest, Approval, Grant, Role, human_duration
from access.selectors import approver_list_for, eligibility_current, may_approve, may_request_access
from access.services._common import (
    AccessError,
    SelfApprovalError,
    after_commit,
    clean_justification,
    clean_ticket,
    iso,
    record,
    seconds,
)
from accounts.models import Organization, User
from audit.events import EventType


def _check_duration(role: Role, duration: timedelta) -> None:
    cap = role.effective_max_duration
    if not timedelta(0) < duration <= cap:
        raise AccessError(f"Ask for at most {human_duration(cap)} of {role} (and more than nothing).")


def _check_extension(actor: User, role: Role, organization: Organization, extends: Grant, now: datetime) -> None:
    if extends.technician_id != actor.pk or extends.role_id != role.pk or extends.organization_id != organization.pk:
        raise AccessError("An extension is for your own grant of the same role in the same organisation.")
    if not extends.in_force_at(now):
        raise AccessError("That grant is no longer in force: ask for the role again instead of extending it.")


@transaction.atomic
def access_request_create(
    *,
    actor: User,
    role: Role,
    organization: Organization,
    justification: str,
    ticket_reference: str,
    duration: timedelta | None = None,
    scheduled_start: datetime | None = None,
    extends: Grant | None = None,
    request: HttpRequest | None = None,
) -> AccessRequest:
    """``actor`` (a technician assigned to ``organization`` and currently eligible for
    ``role`` there) asks for the role. ``duration`` defaults to 1 h (or the role's maximum if
    shorter) and may not exceed the role's maximum (never above 8 h). ``scheduled_start``,
    if given, must be in the future: the grant then starts there, not at activation.

    An extension is such a request with ``extends`` set to the actor's grant in force; the
    grant itself is never changed. A technician has at most one open (pending or approved)
    request per role and organisation. Break-glass roles are not requested: see
    ``break_glass_activate``. The role's approvers are emailed once the request is saved.
    """
    now = timezone.now()
    if not may_request_access(actor, organization):
        raise AccessError("Only technicians assigned to this organisation request access to it.")
    if not role.active:
        raise AccessError(f"{role} is no longer available.")
    if role.break_glass:
        raise AccessError(f"{role} is a break-glass role: it is activated directly, without a request.")
    if eligibility_current(technician=actor, role=role, organization=organization, at=now) is None:
        raise AccessError(f"You are not eligible for {role} in {organization}; an org admin decides who is.")
    duration = duration if duration is not None else min(params.DEFAULT_DURATION, role.effective_max_duration)
    _check_duration(role, duration)
    if scheduled_start is not None and scheduled_start <= now:
        raise AccessError("A scheduled start must be in the future (leave it empty to start at activation).")
    if extends is not None:
        _check_extension(actor, role, organization, extends, now)
    access_request = AccessRequest(
        technician=actor,
        role=role,
        organization=organization,
        justification=clean_justification(justification),
        ticket_reference=clean_ticket(ticket_reference),
        requested_duration=duration,
        scheduled_start=scheduled_start,
        extends=extends,
        approvals_required=role.approvals_required,
        created_at=now,
        review_expires_at=now + params.review_lifetime(),
    )
    available = approver_list_for(access_request=access_request).count()
    if available < role.approvals_required:
        raise AccessError(
            f"{role} needs {role.approvals_required} approver(s) for {organization} and only {available} can approve."
        )
    try:
        with transaction.atomic():
            access_request.save()
    except IntegrityError:
        raise AccessError(f"You already have an open request for {role} in {organization}.") from None
    record(
        EventType.ACCESS_REQUEST_CREATED,
        actor=actor,
        organization=organization,
        target=access_request,
        request=request,
        role=role.name,
        ticket=access_request.ticket_reference,
        duration_s=seconds(duration),
        scheduled_start=iso(scheduled_start),
        extends=extends.pk if extends else None,
        approvals_required=role.approvals_required,
    )
    from access.tasks import access_request_notify_approvers

    after_commit(access_request_notify_approvers, access_request.pk)
    return access_request


def _refuse_self_approval(actor: User, access_request: AccessRequest, decision: str, request) -> None:
    """Recorded in its own transaction so the refusal stays in the log, then raised."""
    with transaction.atomic():
        record(
            EventType.ACCESS_SELF_APPROVAL_REFUSED,
            actor=actor,
            organization=access_request.organization,
            target=access_request,
            request=request,
            decision=decision,
        )
    raise SelfApprovalError("You cannot decide your own access request; another approver must.")


def _lock_reviewable(access_request: AccessRequest, actor: User, now: datetime) -> AccessRequest:
    locked = (
        AccessRequest.objects.select_for_update(of=("self",))
        .select_related("role", "organization", "technician")
        .get(pk=access_request.pk)
    )
    if locked.status != AccessRequest.Status.PENDING:
        raise AccessError(f"This request is no longer pending ({locked.get_status_display().lower()}).")
    if locked.review_expires_at <= now:
        raise AccessError("This request waited too long for review and has expired; the technician must ask again.")
    if not may_approve(user=actor, access_request=locked):
        raise AccessError(f"You are not an approver of {locked.role} for {locked.organization}.")
    return locked


def access_request_approve(
    *, actor: User, access_request: AccessRequest, comment: str = "", request: HttpRequest | None = None
) -> AccessRequest:
    """One approval from ``actor``, a member of the role's approver group who works on the
    organisation and is not the requester (refused here and by the database, and the attempt
    is recorded). The same approver approving twice counts once. When approvals reach the
    N the role required at request time, the request becomes approved (the technician is
    emailed) and can be activated within ACCESS_ACTIVATION_WINDOW_HOURS. Concurrent approvals
    are serialised on the request's row: it is approved exactly once."""
    if actor.pk == access_request.technician_id:
        _refuse_self_approval(actor, access_request, Approval.Decision.APPROVE, request)
    with transaction.atomic():
        now = timezone.now()
        locked = _lock_reviewable(access_request, actor, now)
        _, created = Approval.objects.get_or_create(
            request=locked,
            approver=actor,
            defaults={
                "requester_id": locked.technician_id,
                "decision": Approval.Decision.APPROVE,
                "comment": comment.strip()[:2000],
                "created_at": now,
            },
        )
        if not created:
            return locked
        count = locked.approvals.filter(decision=Approval.Decision.APPROVE).count()
        record(
            EventType.ACCESS_APPROVAL_RECORDED,
            actor=actor,
            organization=locked.organization,
            target=locked,
            request=request,
            approvals=count,
            approvals_required=locked.approvals_required,
        )
        if count >= locked.approvals_required:
            locked.status = AccessRequest.Status.APPROVED
            locked.decided_at = now
            locked.activate_by = max(now, locked.scheduled_start or now) + params.activation_window()
            locked.save(update_fields=["status", "decided_at", "activate_by"])
            record(
                EventType.ACCESS_REQUEST_APPROVED,
                actor=actor,
                organization=locked.organization,
                target=locked,
                request=request,
                approvers=sorted(locked.approvals.values_list("approver_id", flat=True)),
                activate_by=iso(locked.activate_by),
            )
            from access.tasks import access_request_notify_decision

            after_commit(access_request_notify_decision, locked.pk)
        return locked


def access_request_deny(
    *, actor: User, access_request: AccessRequest, comment: str = "", request: HttpRequest | None = None
) -> AccessRequest:
    """One denial from an approver ends the request (whatever approvals it had; an approver
    who approved earlier may still deny). The technician is emailed. Self-denial is refused
    like self-approval."""
    if actor.pk == access_request.technician_id:
        _refuse_self_approval(actor, access_request, Approval.Decision.DENY, request)
    with transaction.atomic():
        now = timezone.now()
        locked = _lock_reviewable(access_request, actor, now)
        Approval.objects.update_or_create(
            request=locked,
            approver=actor,
            defaults={"decision": Approval.Decision.DENY, "comment": comment.strip()[:2000], "created_at": now},
            create_defaults={
                "requester_id": locked.technician_id,
                "decision": Approval.Decision.DENY,
                "comment": comment.strip()[:2000],
                "created_at": now,
            },
        )
        locked.status = AccessRequest.Status.DENIED
        locked.decided_at = now
        locked.ended_reason = f"Denied by {actor}"[:200]
        locked.save(update_fields=["status", "decided_at", "ended_reason"])
        record(
            EventType.ACCESS_REQUEST_DENIED,
            actor=actor,
            organization=locked.organization,
            target=locked,
            request=request,
            commented=bool(comment.strip()),
        )
        from access.tasks import access_request_notify_decision

        after_commit(access_request_notify_decision, locked.pk)
        return locked


@transaction.atomic
def access_request_cancel(
    *, actor: User, access_request: AccessRequest, request: HttpRequest | None = None
) -> AccessRequest:
    """The requester withdraws a pending or approved (not yet activated) request."""
    locked = (
        AccessRequest.objects.select_for_update(of=("self",)).select_related("organization").get(pk=access_request.pk)
    )
    if locked.technician_id != actor.pk:
        raise AccessError("Only the technician who asked can cancel this request.")
    if not locked.is_open:
        raise AccessError(f"This request is {locked.get_status_display().lower()}; it can no longer be cancelled.")
    _close(locked, AccessRequest.Status.CANCELLED, f"Cancelled by {actor}")
    record(
        EventType.ACCESS_REQUEST_CANCELLED,
        actor=actor,
        organization=locked.organization,
        target=locked,
        request=request,
    )
    return locked


def _close(access_request: AccessRequest, status: str, reason: str) -> None:
    access_request.status = status
    access_request.ended_reason = reason[:200]
    access_request.save(update_fields=["status", "ended_reason"])


def access_request_expire_stale(*, now: datetime | None = None) -> int:
    """Pending requests past their review time expire unreviewed; approved ones not activated
    by ``activate_by`` lapse. Each in its own transaction; returns how many. Run by the sweep."""
    now = now or timezone.now()
    done = 0
    for status, deadline, new_status, event, reason in (
        (
            AccessRequest.Status.PENDING,
            "review_expires_at",
            AccessRequest.Status.EXPIRED_UNREVIEWED,
            EventType.ACCESS_REQUEST_EXPIRED,
            "Not reviewed in time",
        ),
        (
            AccessRequest.Status.APPROVED,
            "activate_by",
            AccessRequest.Status.LAPSED,
            EventType.ACCESS_REQUEST_LAPSED,
            "Not activated in time",
        ),
    ):
        due = AccessRequest.objects.filter(status=status, **{f"{deadline}__lte": now}).order_by(deadline)
        for pk in list(due.values_list("pk", flat=True)[: params.SWEEP_BATCH]):
            with transaction.atomic():
                locked = AccessRequest.objects.select_for_update(of=("self",)).select_related("organization").get(pk=pk)
                if locked.status != status or getattr(locked, deadline) > now:
                    continue
                _close(locked, new_status, reason)
                record(event, organization=locked.organization, target=locked)
                done += 1
    return done
