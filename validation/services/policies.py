"""Per-organisation verification policies: defaults on first use, edits by org admins."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Organization, Role, User
from accounts.rows import JoinedRead
from accounts.selectors import user_works_on
from audit.events import EventType
from audit.recorder import security_event_record
from validation.models import Action, VerificationPolicy
from validation.policy import DEFAULTS, policy_validate

POLICY_FIELDS = (
    "allowed_methods",
    "min_methods",
    "min_strong_methods",
    "required_methods",
    "privileged_extra_methods",
    "approval_required",
)


def may_edit_policies(user: User, organization: Organization) -> bool:
    if not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.has_role(Role.ORG_ADMIN) and user_works_on(user=user, organization=organization)


_POLICY = JoinedRead(VerificationPolicy, "v")  # read at every request start: written out (accounts.rows)


def policy_for(*, organization: Organization, action: str) -> VerificationPolicy:
    """The organisation's policy for an action, created from the defaults on first use."""
    policy = _POLICY.fetch("v.organization_id = %s AND v.action = %s", [organization.pk, action])
    if policy is not None:
        return policy
    try:
        with transaction.atomic():
            return VerificationPolicy.objects.create(organization=organization, action=action, **DEFAULTS[action])
    except IntegrityError:
        return VerificationPolicy.objects.get(organization=organization, action=action)


def policies_for(*, organization: Organization) -> list[VerificationPolicy]:
    return [policy_for(organization=organization, action=action) for action in Action.values]


@transaction.atomic
def policy_update(
    *, actor: User, policy: VerificationPolicy, data: dict, request: HttpRequest | None = None
) -> VerificationPolicy:
    """Change a policy within the hard floors (``validation.policy``). Open requests keep
    the snapshot they started with."""
    policy = VerificationPolicy.objects.select_for_update(of=("self",)).select_related("organization").get(pk=policy.pk)
    if not may_edit_policies(actor, policy.organization):
        raise PermissionDenied("Only an org admin of this organisation changes its verification policies.")
    before = {f: getattr(policy, f) for f in POLICY_FIELDS}
    for field in POLICY_FIELDS:
        if field in data:
            setattr(policy, field, data[field])
    policy_validate(policy)
    after = {f: getattr(policy, f) for f in POLICY_FIELDS}
    if after == before:
        return policy
    policy.updated_at, policy.updated_by = timezone.now(), actor
    policy.save()
    security_event_record(
        event_type=EventType.VERIFICATION_POLICY_CHANGED,
        actor=actor,
        organization=policy.organization,
        target=policy,
        details={"action": policy.action, "before": before, "after": after},
        request=request,
    )
    return policy


@transaction.atomic
def policy_delete(*, actor: User, policy: VerificationPolicy, request: HttpRequest | None = None) -> None:
    """Remove an organisation's policy for an action: the next use recreates the defaults.
    Recorded like an edit, since it can loosen a stricter policy back to the defaults."""
    policy = VerificationPolicy.objects.select_for_update(of=("self",)).select_related("organization").get(pk=policy.pk)
    if not may_edit_policies(actor, policy.organization):
        raise PermissionDenied("Only an org admin of this organisation changes its verification policies.")
    before = {f: getattr(policy, f) for f in POLICY_FIELDS}
    security_event_record(
        event_type=EventType.VERIFICATION_POLICY_CHANGED,
        actor=actor,
        organization=policy.organization,
        target=policy,
        details={"action": policy.action, "before": before, "after": dict(DEFAULTS[policy.action]), "reset": True},
        request=request,
    )
    policy.delete()
