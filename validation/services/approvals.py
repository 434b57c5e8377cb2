"""Manager and peer approvals (``validation.channels.approval``).

The technician starts one; a worker sends the approver a one-time link; on the link's
page the approver asks for a code, which a worker sends to their own phone of record
(their email when they have no phone), enters it, and then approves or denies.

Guarantees:
- The approver is never the person being verified nor the technician (a staff User,
  matched to the approver by email of record). Checked when the challenge starts and
  again when the approver decides; each refusal is a security event.
- The link works while its challenge is open, never after the request ended or expired,
  and never after an answer (single use).
- Identity codes are stored only as an HMAC bound to the challenge, compared in
  constant time, single use; at most ``max_attempts`` checks per challenge (atomic), at
  most MAX_CODES codes sent. The fifth wrong code ends the challenge; it does not count
  against the person, who did nothing wrong.
- Only the browser that confirmed the identity decides: it holds a proof nonce (a
  cookie), the row holds its hash.
- Approve and deny take the request's row lock, then the challenge's: one of them wins,
  the other finds the challenge answered.
- A deny fails the request like a push deny; it is not a fraud report and locks nothing.
"""

from __future__ import annotations

import smtplib
import uuid

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Person, User
from audit.events import EventType
from validation import params
from validation.channels import SendError, channel_for
from validation.channels.approval import (
    approver_delivery,
    approver_destination_masked,
    approver_unavailable_reason,
    self_approval_reason,
)
from validation.channels.sms import sms_send
from validation.models import APPROVAL_METHODS, Challenge, ChallengeApproval, Method, SendRecord, VerificationRequest
from validation.services._common import VerificationError, bump, record, request_lock
from validation.services.challenges import (
    _expire,
    challenge_created,
    early_receipt_apply,
    locked_open_request,
    status_callback_url,
)
from validation.services.limits import records_refusals, send_reserve
from validation.services.requests import approved_methods, person_lock_reason_now, verification_requirement

MAX_CODES = 3  # identity codes per approval link


def _approver_for(verification: VerificationRequest, method: str, peer: Person | None) -> Person:
    person = verification.person
    if method == Method.MANAGER_APPROVAL:
        if person.manager is None:
            raise VerificationError(
                f"{person} has no manager in the directory: name a peer from the same organisation for a peer approval."
            )
        return person.manager
    if peer is None:
        raise VerificationError("Choose the peer who should approve.")
    return peer


def _check_approval_allowed(verification: VerificationRequest, method: str) -> None:
    if method not in verification_requirement(verification).allowed:
        raise VerificationError("The organisation's policy does not accept this method for this action.")
    if set(approved_methods(verification)) & set(APPROVAL_METHODS):
        raise VerificationError("An approval has already been given for this verification.")
    lock = person_lock_reason_now(verification.person)
    if lock:
        raise VerificationError(f"Verification is locked for this person: {lock}.")
    if method == Method.MANAGER_APPROVAL:
        waiting = verification.challenges.filter(method=method, status__in=Challenge.OPEN_STATUSES).first()
        if waiting is not None:
            raise VerificationError(f"The manager's approval is already waiting, until {waiting.expires_at:%H:%M} UTC.")


@records_refusals
def approval_start(
    *,
    actor: User,
    verification: VerificationRequest,
    method: str,
    peer: Person | None = None,
    request: HttpRequest | None = None,
) -> Challenge:
    """Ask the person's manager (or ``peer``) to approve. A new peer approval replaces a
    peer approval still waiting. Raises VerificationError with a message for the technician."""
    if method not in APPROVAL_METHODS:
        raise VerificationError("Choose a manager or a peer approval.")
    with transaction.atomic():
        verification = locked_open_request(verification, actor)
        _check_approval_allowed(verification, method)
        approver = _approver_for(verification, method, peer)
        refusal = self_approval_reason(approver, verification)
        if refusal is None:
            reason = approver_unavailable_reason(approver, verification.person)
            if reason:
                raise VerificationError(f"{Method(method).label} is unavailable: {reason}.")
            return _create(verification, method, approver, actor=actor, request=request)
        # Committed, then refused: the attempt is evidence worth keeping.
        record(
            EventType.VERIFICATION_SELF_APPROVAL_REFUSED,
            verification,
            actor=actor,
            request=request,
            method=method,
            approver=approver.pk,
            stage="start",
        )
    raise VerificationError(refusal)


def _create(verification: VerificationRequest, method: str, approver: Person, *, actor, request) -> Challenge:
    now = timezone.now()
    if method == Method.PEER_APPROVAL:
        verification.challenges.filter(method=method, status__in=Challenge.OPEN_STATUSES).update(
            status=Challenge.Status.EXPIRED, failure_reason="Replaced by a request to another peer"
        )
    via = approver_delivery(approver) or ChallengeApproval.Delivery.SMS  # None was refused before
    # The link counts against the send limits as a message to the approver: per person (the
    # approver), per technician, per destination and overall.
    send_reserve(
        person=approver,
        technician=actor,
        destination=approver.phone if via == ChallengeApproval.Delivery.SMS else approver.email,
        destination_masked=approver_destination_masked(approver),
        kind=SendRecord.Kind.CHALLENGE,
        method=method,
        target=verification,
    )
    challenge = Challenge.objects.create(
        request=verification,
        method=method,
        status=Challenge.Status.QUEUED,
        destination_masked=approver_destination_masked(approver),
        max_attempts=params.max_attempts(),
        created_at=now,
        # The link can never outlive the request it approves.
        expires_at=min(now + channel_for(method).lifetime(), verification.expires_at),
    )
    ChallengeApproval.objects.create(challenge=challenge, approver=approver, link_sent_via=via)
    challenge_created(verification, challenge, actor=actor, request=request, approver=approver.pk)
    from validation.tasks import approval_send

    transaction.on_commit(lambda: approval_send.delay(challenge.pk))
    return challenge


def _deliver(approver: Person, via: str, *, body: str, email_template: str) -> str:
    """Send ``body`` to the approver's phone (or email) of record; the provider's id."""
    if via == ChallengeApproval.Delivery.SMS:
        return sms_send(to=approver.phone, body=body, status_callback=status_callback_url())
    subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + " ".join(
        render_to_string(f"{email_template}_subject.txt").split()
    )
    text = render_to_string(f"{email_template}.txt", {"message": body})
    try:
        EmailMessage(subject, text, to=[approver.email]).send()
    except (smtplib.SMTPException, OSError):
        raise SendError("The email could not be sent", permanent=False) from None
    return "email-" + uuid.uuid4().hex


def approval_dispatch(*, challenge_id: int) -> None:
    """Create the link and send it to the approver. Raises SendError when a retry may help."""
    with transaction.atomic():
        if not request_lock(pk=challenge_id):
            return
        challenge = (
            Challenge.objects.select_for_update(of=("self",))
            .select_related("request__organization", "request__technician", "approval__approver")
            .filter(pk=challenge_id, status=Challenge.Status.QUEUED, method__in=APPROVAL_METHODS)
            .first()
        )
        if challenge is None:
            return
        if challenge.expires_at <= timezone.now():
            _expire(challenge, reason="Expired before it could be sent")
            return
        body = channel_for(challenge.method).compose(challenge)
        challenge.save(update_fields=["link_nonce_hash"])
        approval = challenge.approval
    try:
        message_id = _deliver(
            approval.approver, approval.link_sent_via, body=body, email_template="validation/email/approval"
        )
    except SendError as exc:
        if not exc.permanent:
            raise
        from validation.services.challenges import challenge_send_failed

        challenge_send_failed(challenge_id=challenge_id, reason=exc.reason, code=exc.code)
        return
    with transaction.atomic():
        request_lock(pk=challenge_id)
        if Challenge.objects.filter(pk=challenge_id, status=Challenge.Status.QUEUED).update(
            status=Challenge.Status.SENT, sent_at=timezone.now(), provider_message_id=message_id[:64]
        ):
            bump(challenge.request_id)
            record(
                EventType.VERIFICATION_CHALLENGE_SENT,
                challenge.request,
                challenge=challenge_id,
                method=challenge.method,
                via=approval.link_sent_via,
            )
    early_receipt_apply(message_id[:64])
