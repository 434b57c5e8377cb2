"""Reads for manager and peer approvals on the technician's pages (scoped by the callers:
``validation.selectors`` loads the request, ``accounts.selectors`` the people)."""

from __future__ import annotations

from dataclasses import dataclass

from accounts.models import Person, User
from accounts.selectors import person_search
from validation.channels import channel_for
from validation.channels.approval import approver_unavailable_reason, self_approval_reason
from validation.models import APPROVAL_METHODS, Challenge, Method, VerificationRequest
from validation.policy import Requirement


@dataclass(frozen=True)
class ApprovalPanel:
    """The approval controls of the live view."""

    required: bool
    manager: Person | None
    manager_reason: str | None  # why the manager cannot be asked now; None when they can
    peer_allowed: bool
    manager_allowed: bool


def approval_panel(
    *, verification: VerificationRequest, requirement: Requirement, approved: list[str], challenges: list[Challenge]
) -> ApprovalPanel | None:
    """None when the policy takes no approval or one already counts."""
    allowed = [m for m in APPROVAL_METHODS if m in requirement.allowed]
    if not allowed or set(approved) & set(APPROVAL_METHODS):
        return None
    person = verification.person
    manager = person.manager
    manager_reason = None
    if Method.MANAGER_APPROVAL in allowed:
        manager_reason = channel_for(Method.MANAGER_APPROVAL).unavailable_reason(person)
        if manager_reason is None and manager is not None:
            manager_reason = self_approval_reason(manager, verification)
        waiting = [c for c in challenges if c.method == Method.MANAGER_APPROVAL and c.is_open]
        if manager_reason is None and waiting:
            manager_reason = f"Waiting for the manager's answer until {waiting[0].expires_at:%H:%M} UTC"
    return ApprovalPanel(
        required=bool(requirement.approvals),
        manager=manager,
        manager_reason=manager_reason,
        peer_allowed=Method.PEER_APPROVAL in allowed,
        manager_allowed=Method.MANAGER_APPROVAL in allowed,
    )


@dataclass(frozen=True)
class PeerCandidate:
    person: Person
    reason: str | None  # why they cannot approve; None when they can


def peer_candidates(*, user: User, verification: VerificationRequest, query: str) -> list[PeerCandidate]:
    """People of the request's organisation matching ``query`` (the directory search),
    each with why they could not approve for the request's person."""
    people = person_search(user=user, query=query, organization=verification.organization)
    return [
        PeerCandidate(
            person=peer,
            reason=self_approval_reason(peer, verification) or approver_unavailable_reason(peer, verification.person),
        )
        for peer in people
    ]
