"""Fraud reports and verification locks.

One service for every "I didn't request this" (the push page, an SMS reply ``NO``, the
link in a verification email): the challenge is denied, verification locks for the
person (every open request of theirs ends with a stop on the technician's screen, and a
verified result not yet used is withdrawn), the organisation's admins are emailed at
once, and the report is a security event.

A lock (from a fraud report or the consecutive-failure cap) is lifted only by a second
staff member: an org admin assigned to the organisation who is not the technician whose
verification set it, with a reason.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Person, Role, User
from accounts.selectors import user_works_on
from audit.events import EventType
from audit.recorder import security_event_record
from validation import crypto, links
from validation.channels.email_code import FRAUD_LINK_LIFETIME
from validation.models import Challenge, Method, PersonVerificationState, VerificationRequest
from validation.services._common import VerificationError, bump, record
from validation.services.requests import person_lock, person_state_lock

FRAUD_REASON = "The person reported they did not request this"
VIA_PUSH, VIA_SMS_REPLY, VIA_EMAIL = "push_page", "sms_reply", "email_link"
LIFT_REASON_MIN, LIFT_REASON_MAX = 10, 500


def fraud_report(
    *, verification: VerificationRequest, challenge: Challenge, via: str, request: HttpRequest | None = None
) -> None:
    """The person says they did not ask for this. Runs inside the caller's transaction,
    with ``verification``'s row locked."""
    now = timezone.now()
    Challenge.objects.filter(pk=challenge.pk, status__in=Challenge.OPEN_STATUSES).update(
        status=Challenge.Status.DENIED, answered_at=now, failure_reason="Reported as fraud by the person"
    )
    record(
        EventType.VERIFICATION_FRAUD_REPORTED,
        verification,
        end_user=True,
        request=request,
        challenge=challenge.pk,
        method=challenge.method,
        via=via,
    )
    person_lock(verification, reason=FRAUD_REASON, end_user=True, request=request)
    _withdraw_unused_results(verification.person_id, now=now)
    bump(verification.pk)
    from validation.tasks import lock_alert

    transaction.on_commit(lambda: lock_alert.delay(verification.pk, "fraud"))


def _withdraw_unused_results(person_id: int, *, now) -> None:
    """A verified result not yet used must not cover an action after a fraud report."""
    withdrawn = VerificationRequest.objects.select_for_update().filter(
        person_id=person_id, status=VerificationRequest.Status.VERIFIED, consumed_at__isnull=True, expires_at__gt=now
    )
    for verification in withdrawn:
        VerificationRequest.objects.filter(pk=verification.pk).update(
            status=VerificationRequest.Status.LOCKED, ended_reason=FRAUD_REASON, version=F("version") + 1
        )


# --- "I didn't request this" from a verification email -----------------------------------


def email_fraud_challenge_for_link(token: str) -> Challenge:
    """The email-code challenge a fraud-report link belongs to, while the link is unused.
    The link outlives the code (a person may read the email late). Raises BadLink."""
    nonce = links.link_nonce(token, purpose=links.FRAUD_REPORT, max_age=FRAUD_LINK_LIFETIME)
    challenge = (
        Challenge.objects.select_related("request__person", "request__organization", "request__technician")
        .filter(link_nonce_hash=crypto.nonce_hash(nonce), method=Method.EMAIL_CODE)
        .first()
    )
    if challenge is None:
        raise links.BadLink("This link has already been used or is not valid.")
    return challenge


def email_fraud_report(*, token: str, request: HttpRequest | None = None) -> Challenge:
    """Report fraud from the email's link; the link then stops working. Raises BadLink."""
    with transaction.atomic():
        challenge = email_fraud_challenge_for_link(token)
        person_state_lock(request_id=challenge.request_id)
        verification = VerificationRequest.objects.select_for_update(of=("self",)).get(pk=challenge.request_id)
        used = Challenge.objects.filter(pk=challenge.pk, link_nonce_hash=challenge.link_nonce_hash).update(
            link_nonce_hash=""
        )
        if not used:
            raise links.BadLink("This link has already been used or is not valid.")
        fraud_report(verification=verification, challenge=challenge, via=VIA_EMAIL, request=request)
    return challenge


# --- Lifting a lock ------------------------------------------------------------------------


def may_lift_locks(user: User, person: Person) -> bool:
    """Org admins assigned to the person's organisation (the role is required: a superuser
    without it is not a second reviewer of the organisation)."""
    return (
        user.is_authenticated
        and user.is_active
        and user.has_role(Role.ORG_ADMIN)
        and user_works_on(user=user, organization=person.organization)
    )


def lift_refusal_reason(*, user: User, person: Person) -> str | None:
    """Why ``user`` cannot lift the person's lock (for the page), or None when they can."""
    state = PersonVerificationState.objects.filter(person=person, locked_at__isnull=False).first()
    if state is None:
        return "Verification is not locked for this person."
    if not may_lift_locks(user, person):
        return "Only an org admin of this organisation can lift it."
    if state.locked_technician_id == user.pk:
        return "It was set during your own verification, so another org admin must lift it."
    return None


class _OwnLock(Exception):
    pass


def person_lock_lift(
    *, actor: User, person: Person, reason: str, request: HttpRequest | None = None
) -> PersonVerificationState:
    """Lift the person's verification lock and reset their consecutive failures. Raises
    VerificationError; an attempt by the technician who set the lock is recorded."""
    reason = (reason or "").strip()
    try:
        return _lift(actor=actor, person=person, reason=reason, request=request)
    except _OwnLock:
        with transaction.atomic():
            security_event_record(
                event_type=EventType.VERIFICATION_LOCK_LIFT_REFUSED,
                actor=actor,
                organization=person.organization,
                target=person,
                details={"person": person.pk},
                request=request,
            )
        raise VerificationError(
            "The lock was set during your own verification: another org admin of this organisation must lift it."
        ) from None


@transaction.atomic
def _lift(*, actor: User, person: Person, reason: str, request: HttpRequest | None) -> PersonVerificationState:
    if not may_lift_locks(actor, person):
        raise VerificationError("Only an org admin of this organisation can lift a verification lock.")
    if not LIFT_REASON_MIN <= len(reason) <= LIFT_REASON_MAX or "\x00" in reason:
        raise VerificationError(
            f"Give the reason for lifting the lock ({LIFT_REASON_MIN} to {LIFT_REASON_MAX} characters)."
        )
    state = PersonVerificationState.objects.select_for_update().filter(person=person).first()
    if state is None or state.locked_at is None:
        raise VerificationError("Verification is not locked for this person.")
    if state.locked_technician_id == actor.pk:
        raise _OwnLock
    security_event_record(
        event_type=EventType.VERIFICATION_LOCK_LIFTED,
        actor=actor,
        organization=person.organization,
        target=person,
        details={
            "person": person.pk,
            "reason": reason,
            "locked_reason": state.locked_reason,
            "locked_at": state.locked_at.isoformat(),
            "locked_verification": state.locked_request_id,
            "consecutive_failures": state.consecutive_failures,
        },
        request=request,
    )
    # locked_request and locked_technician stay, as the record of the last lock.
    state.locked_at, state.locked_reason, state.consecutive_failures = None, "", 0
    state.lifted_at, state.lifted_by, state.lift_reason = timezone.now(), actor, reason
    state.save()
    return state
