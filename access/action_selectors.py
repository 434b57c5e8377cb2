"""Reads for the gated helpdesk actions: what is missing before an action (and the link that
fixes it), the verification that can cover it, each organisation's connector, and the
records of actions performed, scoped like everything else (another organisation's is a 404).

What the pages show is advice. The decision is taken again by
``access.services.actions.helpdesk_action_perform``, with the verification row locked and the
grant read by ``access.authorization`` with the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from django.conf import settings
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from access.action_models import DirectoryConnectorConfig, HelpdeskAction, PasswordDeliveryChoice
from access.authorization import grant_allowing
from access.connectors import DirectoryConnector, connector_named
from access.models import AccessRequest, Eligibility, Grant, Role
from accounts.models import Organization, Person, User
from accounts.selectors import organization_list_for_user
from validation import params as verification_params
from validation.models import Action, VerificationRequest

GRANT = "grant"
VERIFICATION = "verification"
_WITH_ARTICLE: dict[str, str] = {
    Action.PASSWORD_RESET: "a password reset",
    Action.MFA_RESET: "an MFA reset",
    Action.ACCOUNT_UNLOCK: "an account unlock",
    Action.CONTACT_CHANGE: "a contact change",
    Action.OTHER: "another request",
}


def action_phrase(action: str) -> str:
    """ "an MFA reset", "a password reset": for messages."""
    return _WITH_ARTICLE.get(action, action)


@dataclass(frozen=True)
class Missing:
    """One of the two conditions of a gated action, not met: what, and what fixes it."""

    kind: str  # GRANT or VERIFICATION
    message: str
    fix_url: str
    fix_label: str


@dataclass
class Readiness:
    action: str
    grant: Grant | None = None
    verification: VerificationRequest | None = None
    missing: list[Missing] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.missing

    @property
    def label(self) -> str:
        return str(Action(self.action).label)


# --- Connectors ---------------------------------------------------------------------------


def directory_config_for(*, organization: Organization) -> DirectoryConnectorConfig:
    """The organisation's row, or an unsaved one with the defaults."""
    config = DirectoryConnectorConfig.objects.filter(organization=organization).first()
    return config or DirectoryConnectorConfig(
        organization=organization,
        connector=settings.DIRECTORY_CONNECTOR_DEFAULT,
        password_delivery=PasswordDeliveryChoice.TEMPORARY_PASSWORD,
    )


def connector_for(*, organization: Organization) -> DirectoryConnector:
    return connector_named(directory_config_for(organization=organization).connector)


# --- The two conditions --------------------------------------------------------------------


def verification_usable_for(*, technician: User, person: Person, action: str) -> VerificationRequest | None:
    """The newest verified, unused result of ``technician``'s for this person and action."""
    now = timezone.now()
    return (
        VerificationRequest.objects.filter(
            technician=technician,
            person=person,
            action=action,
            status=VerificationRequest.Status.VERIFIED,
            consumed_at__isnull=True,
            expires_at__gt=now,
            verified_at__gt=now - verification_params.RESULT_LIFETIME,
        )
        .order_by("-verified_at", "-id")
        .first()
    )


def verification_problem(
    verification: VerificationRequest | None, *, technician: User, person: Person, action: str, now: datetime
) -> str | None:
    """Why ``verification`` cannot cover this action now, or None when it can."""
    if verification is None:
        return "The caller is not verified for this action."
    if verification.technician_id != technician.pk:
        return "That verification was made by another technician; verify the caller yourself."
    if verification.person_id != person.pk:
        return "That verification is for another person."
    if verification.action != action:
        return f"That verification covers {action_phrase(verification.action)}, not this action."
    if verification.consumed_at is not None:
        return "That verification has already been used for an action; verify the caller again."
    if verification.status != VerificationRequest.Status.VERIFIED or verification.verified_at is None:
        return f"The caller is not verified (status: {verification.get_status_display().lower()})."
    if person.privileged and not verification.policy_snapshot.get("privileged"):
        return "The person became privileged after this verification; verify the caller again (stricter policy)."
    too_old = verification.verified_at <= now - verification_params.RESULT_LIFETIME
    if too_old or verification.expires_at <= now:
        return "That verification is more than 15 minutes old; verify the caller again."
    return None


def verification_fix(*, person: Person, action: str, problem: str) -> Missing:
    url = reverse("validation:start", args=[person.pk]) + "?" + urlencode({"action": action})
    return Missing(VERIFICATION, problem, url, f"Verify the caller for {action_phrase(action)}")


def grant_fix(*, technician: User, person: Person, action: str) -> Missing:
    """What gets the technician a grant covering the action: activate an approved request,
    wait for a pending one, request an eligible role, or (none) ask for eligibility."""
    covering = [
        r for r in _roles_for(technician, person.organization) if r.allows(action, privileged=person.privileged)
    ]
    what = action_phrase(action) + (" for a privileged person" if person.privileged else "")
    requests = AccessRequest.objects.filter(
        technician=technician,
        organization=person.organization,
        role__in=covering,
        status__in=AccessRequest.OPEN_STATUSES,
    ).select_related("role")
    for access_request in requests:
        url = reverse("access:request_detail", args=[access_request.pk])
        if access_request.status == AccessRequest.Status.APPROVED:
            message = f"No active grant covers {what} here. Your request for {access_request.role} is approved."
            return Missing(GRANT, message, url, f"Activate {access_request.role}")
        message = f"No active grant covers {what} here. Your request for {access_request.role} awaits approval."
        return Missing(GRANT, message, url, "See your pending request")
    message = f"No active grant covers {what} in {person.organization}."
    eligibility = (
        Eligibility.objects.filter(technician=technician, organization=person.organization, role__in=covering)
        .exclude(role__break_glass=True)
        .first()
    )
    if eligibility is not None:
        url = reverse("access:request_create") + "?" + urlencode({"eligibility": eligibility.pk})
        return Missing(GRANT, message, url, f"Request {eligibility.role}")
    return Missing(
        GRANT,
        message + " You are not eligible for a role that covers it: ask an org admin.",
        reverse("access:request_create"),
        "Request access",
    )


def _roles_for(technician: User, organization: Organization) -> list[Role]:
    current = Eligibility.objects.filter(technician=technician, organization=organization, ended_at__isnull=True)
    return list(Role.objects.filter(active=True, pk__in=current.values("role_id")))


def action_readiness(*, technician: User, person: Person, action: str) -> Readiness:
    """Both conditions for the page: the grant in force (database clock) and the newest usable
    verification, each missing one with its fix."""
    readiness = Readiness(action=action)
    readiness.grant = grant_allowing(
        technician=technician, organization=person.organization, action=action, privileged=person.privileged
    )
    if readiness.grant is None:
        readiness.missing.append(grant_fix(technician=technician, person=person, action=action))
    readiness.verification = verification_usable_for(technician=technician, person=person, action=action)
    if readiness.verification is None:
        problem = (
            "The caller is not verified for this action (a verified result lasts 15 minutes and covers one action)."
        )
        readiness.missing.append(verification_fix(person=person, action=action, problem=problem))
    return readiness


# --- Records ------------------------------------------------------------------------------


def helpdesk_action_list_for_user(*, user: User) -> QuerySet[HelpdeskAction]:
    return HelpdeskAction.objects.filter(organization__in=organization_list_for_user(user=user)).select_related(
        "person", "technician", "organization", "grant__role", "verification"
    )


def helpdesk_action_get_for_user(*, user: User, pk: int) -> HelpdeskAction:
    try:
        return helpdesk_action_list_for_user(user=user).get(pk=pk)
    except HelpdeskAction.DoesNotExist:
        raise Http404("No such action") from None


def helpdesk_action_list_for_person(*, person: Person, limit: int = 10) -> list[HelpdeskAction]:
    return list(HelpdeskAction.objects.filter(person=person).select_related("technician")[:limit])
