"""Manager and peer approval: a second person vouches for the request.

The approver (the person's manager, or a peer the technician names from the same
organisation) gets a one-time link by text (by email when they have no phone of record),
confirms who they are with a code sent to their own phone of record, then approves or
denies (``validation.services.approvals``). Nothing is sent to the person being
verified, so the technician starts these challenges through the approval service, not
the generic "send" (``sends_message`` is False for that reason).

An approval is independent of the caller's phone but proves nothing about the caller's
possession of the person's devices: it is never strong (``validation.policy``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.template.loader import render_to_string
from django.utils import timezone

from accounts.models import Person, User
from validation import crypto, links, params
from validation.channels.base import Channel
from validation.models import Challenge, ChallengeApproval, Method, VerificationRequest


def email_masked(email: str) -> str:
    local, at, domain = email.partition("@")
    return f"{local[:1]}•••@{domain}" if at else ""


def approver_delivery(approver: Person) -> str | None:
    """How the approver's link and identity code reach them: their phone of record, or
    their email of record when they have no phone; None when neither exists."""
    if approver.phone:
        return ChallengeApproval.Delivery.SMS
    if approver.email:
        return ChallengeApproval.Delivery.EMAIL
    return None


def approver_destination_masked(approver: Person) -> str:
    if approver_delivery(approver) == ChallengeApproval.Delivery.SMS:
        return approver.masked_phone
    return email_masked(approver.email)


def approver_unavailable_reason(approver: Person, person: Person, *, now: datetime | None = None) -> str | None:
    """Why ``approver`` cannot approve for ``person`` now, or None. The technician is
    checked separately (``validation.services.approvals``): a Person is never a User."""
    if approver.pk == person.pk:
        return "Nobody can approve their own verification"
    if approver.organization_id != person.organization_id:
        return f"{approver} is not in {person.organization}"
    if approver_delivery(approver) is None:
        return f"{approver} has no phone or email of record"
    shared = {v for v in (approver.phone, approver.email.lower()) if v} & {
        v for v in (person.phone, person.email.lower()) if v
    }
    if shared:
        return f"{approver} shares a phone or email of record with {person}, so the approval would not be independent"
    if approver.contact_changed_at is not None:
        cooldown_ends = approver.contact_changed_at + params.contact_cooldown()
        if (now or timezone.now()) < cooldown_ends:
            return f"{approver}'s contact details changed on {approver.contact_changed_at:%Y-%m-%d}"
    return None


def _same_email(approver: Person, user: User) -> bool:
    email = approver.email.strip().lower()
    return bool(email) and email == user.email.strip().lower()


def self_approval_reason(approver: Person, verification: VerificationRequest) -> str | None:
    """Why ``approver`` would be approving their own verification or their own work."""
    person, technician = verification.person, verification.technician
    if approver.pk == person.pk:
        return f"{person} cannot approve their own verification: choose someone else."
    if _same_email(approver, technician):
        return (
            f"{approver} has the same email as the technician's staff account ({technician}): "
            "a technician cannot approve a verification they run. Ask a peer from the same organisation instead."
        )
    return None


class _ApprovalChannel(Channel):
    strong = False
    sends_message = False  # sent to the approver by the approval service, never to the person

    def lifetime(self) -> timedelta:
        # Capped at the request's own expiry when the challenge is created.
        return params.request_lifetime()

    def destination_masked(self, person: Person) -> str:
        return ""  # the approver's, set when the challenge is created

    def compose(self, challenge: Challenge) -> str:
        """The link's nonce (its hash on the challenge) and the message for the approver."""
        nonce = crypto.nonce_generate()
        challenge.link_nonce_hash = crypto.nonce_hash(nonce)
        url = links.link_url("validation:approver", nonce, purpose=links.APPROVAL)
        context = {"url": url, "request": challenge.request, "expires_at": challenge.expires_at}
        return render_to_string("validation/sms/approval.txt", context).strip()


class ManagerApprovalChannel(_ApprovalChannel):
    method = Method.MANAGER_APPROVAL

    def unavailable_reason(self, person, *, now=None):
        manager = person.manager
        if manager is None:
            return "No manager in the directory: name a peer from the same organisation for a peer approval instead"
        reason = approver_unavailable_reason(manager, person, now=now)
        return f"{reason}; name a peer from the same organisation instead" if reason else None


class PeerApprovalChannel(_ApprovalChannel):
    method = Method.PEER_APPROVAL

    def unavailable_reason(self, person, *, now=None):
        return None  # the technician names the peer; checked when the challenge starts
