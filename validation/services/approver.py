"""The approver's side of a manager or peer approval: the pages behind the one-time link.

See ``validation.services.approvals`` for the guarantees. Every function takes the link's
token and raises ``links.BadLink`` once the link cannot be used (forged, answered, expired),
``VerificationError`` for a refusal that changes nothing (message safe to show).
"""

from __future__ import annotations

import hmac

from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils import timezone

from audit.events import EventType
from validation import crypto, links, params
from validation.channels import SendError
from validation.channels.approval import (
    approver_destination_masked,
    approver_unavailable_reason,
    self_approval_reason,
)
from validation.models import APPROVAL_METHODS, Challenge, ChallengeApproval, Method, SendRecord, VerificationRequest
from validation.services._common import VerificationError, bump, record, request_lock
from validation.services.answers import attempt_take, challenge_approve
from validation.services.approvals import MAX_CODES, _deliver
from validation.services.limits import records_refusals, send_reserve
from validation.services.requests import failure_count, person_state_lock, verification_fail

APPROVE, DENY = "approve", "deny"


def _answerable(challenge: Challenge, verification: VerificationRequest) -> bool:
    now = timezone.now()
    return (
        challenge.status in Challenge.ANSWERABLE_STATUSES
        and challenge.expires_at > now
        and verification.status == VerificationRequest.Status.PENDING
        and verification.expires_at > now
    )


def _challenge_for_token(token: str) -> Challenge:
    nonce = links.link_nonce(token, purpose=links.APPROVAL, max_age=params.request_lifetime())
    challenge = (
        Challenge.objects.select_related(
            "request__person", "request__organization", "request__technician", "approval__approver"
        )
        .filter(link_nonce_hash=crypto.nonce_hash(nonce), method__in=APPROVAL_METHODS)
        .first()
    )
    if challenge is None:
        raise links.BadLink("This link is not valid.")
    return challenge


def approval_for_link(token: str) -> Challenge:
    """The approval challenge a link points at, while it can be answered. Raises BadLink."""
    challenge = _challenge_for_token(token)
    if not _answerable(challenge, challenge.request):
        raise links.BadLink("This request has already been answered or has expired.")
    return challenge


def _locked_for_token(token: str) -> tuple[VerificationRequest, Challenge, ChallengeApproval]:
    """Request, challenge and approval rows, locked in that order (as push_respond does)."""
    found = _challenge_for_token(token)
    person_state_lock(request_id=found.request_id)
    verification = (
        VerificationRequest.objects.select_for_update(of=("self",))
        .select_related("person", "organization", "technician")
        .get(pk=found.request_id)
    )
    challenge = Challenge.objects.select_for_update().get(pk=found.pk)
    if not _answerable(challenge, verification):
        raise links.BadLink("This request has already been answered or has expired.")
    approval = (
        ChallengeApproval.objects.select_for_update(of=("self",))
        .select_related("approver")
        .get(challenge_id=challenge.pk)
    )
    challenge.request = verification
    return verification, challenge, approval


@records_refusals
def approver_code_request(*, token: str, request: HttpRequest | None = None) -> ChallengeApproval:
    """The approver asks for a code; a worker creates and sends it after this commits. The
    code counts against the send limits as a message to the approver."""
    with transaction.atomic():
        verification, challenge, approval = _locked_for_token(token)
        if approval.codes_sent >= MAX_CODES:
            raise VerificationError(
                f"{MAX_CODES} codes have been sent already. Ask the helpdesk to start a new approval if you need one."
            )
        approver = approval.approver
        _check_still_available(approver, verification)
        send_reserve(
            person=approver,
            technician=verification.technician,
            destination=approver.phone if approval.link_sent_via == ChallengeApproval.Delivery.SMS else approver.email,
            destination_masked=approver_destination_masked(approver),
            kind=SendRecord.Kind.CHALLENGE,
            method=challenge.method,
            target=verification,
            per_person=False,  # at most MAX_CODES per link, asked for by the approver
        )
        approval.codes_sent += 1
        approval.code_expires_at = None
        approval.save(update_fields=["codes_sent", "code_expires_at"])
        Challenge.objects.filter(pk=challenge.pk).update(code_hmac="")
        bump(verification.pk)  # the technician sees that the approver opened the link
        serial, challenge_id = approval.codes_sent, challenge.pk
        from validation.tasks import approver_code_send

        transaction.on_commit(lambda: approver_code_send.delay(challenge_id, serial))
    return approval


def approver_code_dispatch(*, challenge_id: int, serial: int) -> None:
    """Create the approver's identity code (number ``serial``) and send it. Raises SendError
    when a retry may help; a retry sends a fresh code (the earlier one never arrived)."""
    now = timezone.now()
    with transaction.atomic():
        request_lock(pk=challenge_id)
        approval = (
            ChallengeApproval.objects.select_for_update(of=("self",))
            .select_related("challenge__request__organization", "approver")
            .filter(challenge_id=challenge_id, codes_sent=serial, confirmed_at__isnull=True)
            .first()
        )
        if approval is None or not _answerable(approval.challenge, approval.challenge.request):
            return
        challenge, approver = approval.challenge, approval.approver
        digits = params.CODE_DIGITS_PRIVILEGED if approver.privileged else params.CODE_DIGITS
        code = crypto.code_generate(digits)
        code_hmac = crypto.code_hmac(challenge_id=challenge_id, code=code)
        Challenge.objects.filter(pk=challenge_id).update(code_hmac=code_hmac)
        approval.code_sent_via = approval.link_sent_via
        approval.code_expires_at = min(now + params.code_lifetime(), challenge.expires_at)
        approval.save(update_fields=["code_sent_via", "code_expires_at"])
        minutes = int(params.code_lifetime().total_seconds() // 60)
        body = render_to_string(
            "validation/sms/approver_code.txt",
            {"code": code, "organization": challenge.request.organization, "minutes": minutes},
        ).strip()
    try:
        _deliver(approver, approval.code_sent_via, body=body, email_template="validation/email/approver_code")
    except SendError as exc:
        if not exc.permanent:
            raise
        with transaction.atomic():
            request_lock(pk=challenge_id)
            Challenge.objects.filter(pk=challenge_id).update(code_hmac="")
            record(
                EventType.VERIFICATION_CHALLENGE_SEND_FAILED,
                challenge.request,
                challenge=challenge_id,
                method=challenge.method,
                stage="approver_code",
                reason=exc.reason,
            )
        return
    with transaction.atomic():
        bump(challenge.request_id)
        record(
            EventType.VERIFICATION_APPROVER_CODE_SENT,
            challenge.request,
            challenge=challenge_id,
            method=challenge.method,
            approver=approver.pk,
            via=approval.code_sent_via,
        )


def approver_code_confirm(*, token: str, code: str, request: HttpRequest | None = None) -> str | None:
    """Check the approver's identity code. Returns the proof nonce for the approver's
    browser when it is right, None when it is wrong (the fifth wrong one ends the challenge)."""
    with transaction.atomic():
        verification, challenge, approval = _locked_for_token(token)
        if not challenge.code_hmac or approval.code_expires_at is None:
            raise VerificationError("Ask for a code first, or wait a moment for the one on its way.")
        if approval.code_expires_at <= timezone.now():
            raise VerificationError("This code has expired. Ask for a new one.")
        if not attempt_take(challenge.pk, sent_only=True):
            raise links.BadLink("No attempts are left on this link.")
        challenge.refresh_from_db(fields=["attempts", "code_hmac"])
        if crypto.code_matches(challenge_id=challenge.pk, code=code, stored_hmac=challenge.code_hmac):
            proof = crypto.nonce_generate()
            approval.confirmed_at, approval.proof_hash = timezone.now(), crypto.nonce_hash(proof)
            approval.save(update_fields=["confirmed_at", "proof_hash"])
            Challenge.objects.filter(pk=challenge.pk).update(code_hmac="")  # single use
            bump(verification.pk)
            record(
                EventType.VERIFICATION_APPROVER_CONFIRMED,
                verification,
                end_user=True,
                request=request,
                challenge=challenge.pk,
                method=challenge.method,
                approver=approval.approver_id,
            )
            return proof
        record(
            EventType.VERIFICATION_APPROVER_WRONG_CODE,
            verification,
            end_user=True,
            request=request,
            challenge=challenge.pk,
            method=challenge.method,
            attempts=challenge.attempts,
        )
        if challenge.attempts >= challenge.max_attempts:
            Challenge.objects.filter(pk=challenge.pk).update(
                status=Challenge.Status.FAILED,
                answered_at=timezone.now(),
                code_hmac="",
                failure_reason="The approver could not confirm who they are",
            )
        bump(verification.pk)
    return None


def approver_proof_valid(approval: ChallengeApproval, proof: str) -> bool:
    """Whether ``proof`` (from the approver's browser) is the one issued at confirmation."""
    if not approval.is_confirmed or not approval.proof_hash or not proof or len(proof) > 100:
        return False
    return hmac.compare_digest(crypto.nonce_hash(proof), approval.proof_hash)


def approval_decide(*, token: str, decision: str, proof: str, request: HttpRequest | None = None) -> str:
    """The approver approves or denies; returns "approved", "denied" or "refused" (the
    approver turned out to be the person or the technician: the challenge ends, nothing
    is approved). Raises ValueError for anything but approve/deny (nothing changes)."""
    if decision not in (APPROVE, DENY):
        raise ValueError("Choose approve or deny.")
    with transaction.atomic():
        verification, challenge, approval = _locked_for_token(token)
        if not approver_proof_valid(approval, proof):
            raise VerificationError("Confirm who you are first, with a code sent to your phone.")
        refusal = self_approval_reason(approval.approver, verification)
        if refusal:
            _end_refused(verification, challenge, approval, request=request)
            return "refused"
        _check_still_available(approval.approver, verification)
        if decision == APPROVE:
            challenge_approve(challenge, verification, end_user=True, request=request)
            return "approved"
        _deny(verification, challenge, approval, request=request)
    return "denied"


def _check_still_available(approver, verification) -> None:
    """What made the approver acceptable when the link was sent must still hold: a phone or
    email of record changed since (a SIM swap) must not receive the identity code or decide."""
    reason = approver_unavailable_reason(approver, verification.person)
    if reason:
        raise VerificationError(f"This approval can no longer be given: {reason}. The helpdesk can ask someone else.")


def _end_refused(verification, challenge, approval, *, request) -> None:
    Challenge.objects.filter(pk=challenge.pk).update(
        status=Challenge.Status.FAILED,
        answered_at=timezone.now(),
        failure_reason="Refused: the approver is the person or the technician",
    )
    bump(verification.pk)
    record(
        EventType.VERIFICATION_SELF_APPROVAL_REFUSED,
        verification,
        end_user=True,
        request=request,
        challenge=challenge.pk,
        method=challenge.method,
        approver=approval.approver_id,
        stage="decide",
    )


def _deny(verification, challenge, approval, *, request) -> None:
    who = "manager" if challenge.method == Method.MANAGER_APPROVAL else "peer"
    Challenge.objects.filter(pk=challenge.pk).update(
        status=Challenge.Status.DENIED, answered_at=timezone.now(), failure_reason=f"Denied by the {who}"
    )
    record(
        EventType.VERIFICATION_APPROVAL_DENIED,
        verification,
        end_user=True,
        request=request,
        challenge=challenge.pk,
        method=challenge.method,
        approver=approval.approver_id,
    )
    verification_fail(
        verification, reason=f"The {who} ({approval.approver}) denied the request", end_user=True, request=request
    )
    failure_count(verification, end_user=True, request=request)
    bump(verification.pk)
