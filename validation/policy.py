"""The policy engine: what an organisation requires before an action, and whether the
challenges approved so far meet it.

A policy is snapshotted into each VerificationRequest when it is created, so editing a
policy never changes what an open request needs. Hard floors hold whatever an org
admin configures: SMS codes are never strong, so an SMS code alone never suffices
for a privileged person or an MFA reset, and every action but "other" needs at least
one strong method. An email code (low assurance) is never strong and never enough on
its own: a request is not verified on email alone, whatever the policy says.

Manager and peer approvals (``validation.channels.approval``) are a distinct factor: a
second person, reached on their own phone of record, vouches for the request. They do
not prove that the caller holds the person's phone or authenticator, so they are never
strong; they count toward the number of methods, manager and peer together at most
once (two people vouching is still one kind of evidence), and a policy can require one
(``approval_required``: never, for privileged people, always).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from validation.models import APPROVAL_METHODS, Action, ApprovalRequired, Method, VerificationPolicy

STRONG_METHODS = frozenset({Method.PUSH, Method.TOTP})
NEVER_ALONE = frozenset({Method.EMAIL_CODE})  # counts only next to another method
APPROVALS = frozenset(APPROVAL_METHODS)
MAX_METHODS = 4

_APPROVERS = [Method.MANAGER_APPROVAL, Method.PEER_APPROVAL]
# Manager or peer approval: required for privileged people, and for anyone's MFA reset.
DEFAULTS: dict[str, dict] = {
    Action.PASSWORD_RESET: {
        "allowed_methods": [Method.PUSH, Method.TOTP, *_APPROVERS],
        "min_methods": 1,
        "min_strong_methods": 1,
        "approval_required": ApprovalRequired.PRIVILEGED,
    },
    Action.ACCOUNT_UNLOCK: {
        "allowed_methods": [Method.PUSH, Method.TOTP, *_APPROVERS],
        "min_methods": 1,
        "min_strong_methods": 1,
        "approval_required": ApprovalRequired.PRIVILEGED,
    },
    Action.MFA_RESET: {
        "allowed_methods": [Method.PUSH, Method.TOTP, Method.SMS_CODE, *_APPROVERS],
        "min_methods": 2,
        "min_strong_methods": 1,
        "approval_required": ApprovalRequired.ALWAYS,
    },
    Action.CONTACT_CHANGE: {
        "allowed_methods": [Method.PUSH, Method.TOTP, Method.SMS_CODE, *_APPROVERS],
        "min_methods": 2,
        "min_strong_methods": 1,
        "approval_required": ApprovalRequired.PRIVILEGED,
    },
    Action.OTHER: {
        "allowed_methods": [Method.PUSH, Method.TOTP, Method.SMS_CODE, *_APPROVERS],
        "min_methods": 1,
        "min_strong_methods": 0,
        "approval_required": ApprovalRequired.PRIVILEGED,
    },
}


def distinct_factors(methods) -> int:
    """How many independent methods ``methods`` can give: approvals count once together."""
    unique = set(methods)
    return len(unique - APPROVALS) + (1 if unique & APPROVALS else 0)


def policy_floor_errors(
    *,
    action: str,
    allowed: list[str],
    min_methods: int,
    min_strong: int,
    required: list[str],
    privileged_extra: int,
    approval_required: str = ApprovalRequired.NEVER,
) -> dict[str, str]:
    """Why a policy configuration is not acceptable, by field; empty when it is."""
    errors: dict[str, str] = {}
    unknown = set(allowed) - set(Method.values)
    if unknown or not allowed:
        errors["allowed_methods"] = "Choose at least one known method."
    elif set(allowed) <= NEVER_ALONE:
        errors["allowed_methods"] = "An email code is never sufficient alone: allow another method too."
    if not 1 <= min_methods <= MAX_METHODS:
        errors["min_methods"] = f"Between 1 and {MAX_METHODS}."
    elif min_methods > distinct_factors(allowed):
        errors["min_methods"] = "Cannot need more methods than are allowed (manager and peer approval count as one)."
    floor = 0 if action == Action.OTHER else 1
    if min_strong < floor:
        errors["min_strong_methods"] = "This action needs at least one strong method (push or authenticator)."
    elif min_strong > min_methods:
        errors["min_strong_methods"] = "Cannot exceed the number of methods needed."
    elif min_strong > len(set(allowed) & STRONG_METHODS):
        errors["min_strong_methods"] = "Not enough strong methods are allowed."
    if set(required) - set(allowed):
        errors["required_methods"] = "Required methods must also be allowed."
    if not 0 <= privileged_extra <= 2:
        errors["privileged_extra_methods"] = "Between 0 and 2."
    if approval_required not in ApprovalRequired.values:
        errors["approval_required"] = "Choose when an approval is required."
    elif approval_required != ApprovalRequired.NEVER and not set(allowed) & APPROVALS:
        errors["approval_required"] = "Allow manager approval or peer approval, or do not require an approval."
    return errors


def policy_validate(policy: VerificationPolicy) -> None:
    errors = policy_floor_errors(
        action=policy.action,
        allowed=list(policy.allowed_methods),
        min_methods=policy.min_methods,
        min_strong=policy.min_strong_methods,
        required=list(policy.required_methods),
        privileged_extra=policy.privileged_extra_methods,
        approval_required=policy.approval_required,
    )
    if errors:
        raise ValidationError(errors)


@dataclass(frozen=True)
class Requirement:
    """A policy applied to one person: the snapshot stored on a request."""

    action: str
    allowed: tuple[str, ...]
    min_methods: int
    min_strong: int
    required: tuple[str, ...] = ()
    privileged: bool = False
    approvals: int = 0  # manager or peer approvals that must be among the methods (0 or 1)

    def as_snapshot(self) -> dict:
        return {
            "action": self.action,
            "allowed": list(self.allowed),
            "min_methods": self.min_methods,
            "min_strong": self.min_strong,
            "required": list(self.required),
            "privileged": self.privileged,
            "approvals": self.approvals,
        }

    @classmethod
    def from_snapshot(cls, data: dict) -> Requirement:
        return cls(
            action=data["action"],
            allowed=tuple(data["allowed"]),
            min_methods=int(data["min_methods"]),
            min_strong=int(data["min_strong"]),
            required=tuple(data.get("required", ())),
            privileged=bool(data.get("privileged", False)),
            approvals=int(data.get("approvals", 0)),
        )


def requirement_for(*, policy: VerificationPolicy, privileged: bool) -> Requirement:
    """The policy as it applies to a person: privileged people need more, and never SMS alone.
    A required approval is one of the methods, and not a strong one."""
    allowed = tuple(m for m in Method.values if m in policy.allowed_methods)
    min_methods, min_strong = policy.min_methods, policy.min_strong_methods
    if privileged:
        min_methods = min(min_methods + policy.privileged_extra_methods, distinct_factors(allowed))
        min_strong = max(min_strong, 1)
    if policy.action == Action.MFA_RESET:
        min_strong = max(min_strong, 1)
    approvals = int(
        bool(set(allowed) & APPROVALS)
        and (
            policy.approval_required == ApprovalRequired.ALWAYS
            or (privileged and policy.approval_required == ApprovalRequired.PRIVILEGED)
        )
    )
    return Requirement(
        action=policy.action,
        allowed=allowed,
        min_methods=max(min_methods, min_strong + approvals, 1),
        min_strong=min_strong,
        required=tuple(policy.required_methods),
        privileged=privileged,
        approvals=approvals,
    )


@dataclass
class Evaluation:
    met: bool
    counted: list[str]
    missing: list[str] = field(default_factory=list)


def requirement_evaluate(requirement: Requirement, approved_methods: list[str]) -> Evaluation:
    """Whether approved challenges meet the requirement. Each method counts once
    (independent methods), manager and peer approval once together, and only if the
    policy allows it."""
    counted: list[str] = []
    for method in dict.fromkeys(approved_methods):
        if method in requirement.allowed and not (method in APPROVALS and APPROVALS & set(counted)):
            counted.append(method)
    strong = [m for m in counted if m in STRONG_METHODS]
    approval_missing = bool(requirement.approvals) and not APPROVALS & set(counted)
    missing: list[str] = []
    # A missing required approval is reported once, below, not also as "one more method".
    more = requirement.min_methods - len(counted) - (1 if approval_missing else 0)
    if more > 0:
        others = [m for m in requirement.allowed if not (approval_missing and m in APPROVALS)]
        missing.append(f"{more} more method{'s' if more > 1 else ''} from: {_labels(others, counted)}")
    if len(strong) < requirement.min_strong:
        more = requirement.min_strong - len(strong)
        strong_left = [m for m in requirement.allowed if m in STRONG_METHODS]
        missing.append(f"{more} more strong method{'s' if more > 1 else ''}: {_labels(strong_left, counted)}")
    if approval_missing:
        missing.append("A manager or peer approval is required")
    for method in requirement.required:
        if method not in counted:
            missing.append(f"{Method(method).label} is required")
    if not missing and counted and set(counted) <= NEVER_ALONE:
        others = [m for m in requirement.allowed if m not in NEVER_ALONE]
        missing.append(f"An email code never suffices alone: 1 more method from: {_labels(others, counted)}")
    return Evaluation(met=not missing, counted=counted, missing=missing)


def requirement_describe(requirement: Requirement) -> str:
    methods = ", ".join(str(Method(m).label) for m in requirement.allowed)
    text = f"{requirement.min_methods} independent method{'s' if requirement.min_methods > 1 else ''} from {methods}"
    if requirement.min_strong:
        text += f"; at least {requirement.min_strong} strong (push or authenticator)"
    if requirement.approvals:
        text += "; must include a manager or peer approval"
    if NEVER_ALONE & set(requirement.allowed):
        text += "; an email code never suffices alone"
    if requirement.required:
        text += "; must include " + ", ".join(str(Method(m).label) for m in requirement.required)
    if requirement.privileged:
        text += " (privileged person: stricter)"
    return text


def _labels(methods, exclude) -> str:
    """The methods still usable: not ``exclude``, and no approval once one counted."""
    gone = set(exclude) | (APPROVALS if APPROVALS & set(exclude) else set())
    return " or ".join(str(Method(m).label) for m in methods if m not in gone) or "none left"
