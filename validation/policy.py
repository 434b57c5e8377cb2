"""The policy engine: what an organisation requires before an action, and whether the
challenges approved so far meet it.

A policy is snapshotted into each VerificationRequest when it is created, so editing a
policy never changes what an open request needs. Hard floors hold whatever an org
admin configures: SMS codes are never strong, so an SMS code alone never suffices
for a privileged person or an MFA reset, and every action but "other" needs at least
one strong method. An email code (low assurance) is never strong and never enough on
its own: a request is not verified on email alone, whatever the policy says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError

from validation.models import Action, Method, VerificationPolicy

STRONG_METHODS = frozenset({Method.PUSH, Method.TOTP})
NEVER_ALONE = frozenset({Method.EMAIL_CODE})  # counts only next to another method
MAX_METHODS = 4

DEFAULTS: dict[str, dict] = {
    Action.PASSWORD_RESET: {"allowed_methods": [Method.PUSH, Method.TOTP], "min_methods": 1, "min_strong_methods": 1},
    Action.ACCOUNT_UNLOCK: {"allowed_methods": [Method.PUSH, Method.TOTP], "min_methods": 1, "min_strong_methods": 1},
    Action.MFA_RESET: {
        "allowed_methods": [Method.PUSH, Method.TOTP, Method.SMS_CODE],
        "min_methods": 2,
        "min_strong_methods": 1,
    },
    Action.CONTACT_CHANGE: {
        "allowed_methods": [Method.PUSH, Method.TOTP, Method.SMS_CODE],
        "min_methods": 2,
        "min_strong_methods": 1,
    },
    Action.OTHER: {
        "allowed_methods": [Method.PUSH, Method.TOTP, Method.SMS_CODE],
        "min_methods": 1,
        "min_strong_methods": 0,
    },
}


def policy_floor_errors(
    *, action: str, allowed: list[str], min_methods: int, min_strong: int, required: list[str], privileged_extra: int
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
    elif min_methods > len(set(allowed)):
        errors["min_methods"] = "Cannot need more methods than are allowed."
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
    return errors


def policy_validate(policy: VerificationPolicy) -> None:
    errors = policy_floor_errors(
        action=policy.action,
        allowed=list(policy.allowed_methods),
        min_methods=policy.min_methods,
        min_strong=policy.min_strong_methods,
        required=list(policy.required_methods),
        privileged_extra=policy.privileged_extra_methods,
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

    def as_snapshot(self) -> dict:
        return {
            "action": self.action,
            "allowed": list(self.allowed),
            "min_methods": self.min_methods,
            "min_strong": self.min_strong,
            "required": list(self.required),
            "privileged": self.privileged,
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
        )


def requirement_for(*, policy: VerificationPolicy, privileged: bool) -> Requirement:
    """The policy as it applies to a person: privileged people need more, and never SMS alone."""
    allowed = tuple(m for m in Method.values if m in policy.allowed_methods)
    min_methods, min_strong = policy.min_methods, policy.min_strong_methods
    if privileged:
        min_methods = min(min_methods + policy.privileged_extra_methods, len(allowed))
        min_strong = max(min_strong, 1)
    if policy.action == Action.MFA_RESET:
        min_strong = max(min_strong, 1)
    return Requirement(
        action=policy.action,
        allowed=allowed,
        min_methods=max(min_methods, 1),
        min_strong=min_strong,
        required=tuple(policy.required_methods),
        privileged=privileged,
    )


@dataclass
class Evaluation:
    met: bool
    counted: list[str]
    missing: list[str] = field(default_factory=list)


def requirement_evaluate(requirement: Requirement, approved_methods: list[str]) -> Evaluation:
    """Whether approved challenges meet the requirement. Each method counts once
    (independent methods), and only if the policy allows it."""
    counted = [m for m in dict.fromkeys(approved_methods) if m in requirement.allowed]
    strong = [m for m in counted if m in STRONG_METHODS]
    missing: list[str] = []
    if len(counted) < requirement.min_methods:
        more = requirement.min_methods - len(counted)
        missing.append(f"{more} more method{'s' if more > 1 else ''} from: {_labels(requirement.allowed, counted)}")
    if len(strong) < requirement.min_strong:
        more = requirement.min_strong - len(strong)
        strong_left = [m for m in requirement.allowed if m in STRONG_METHODS]
        missing.append(f"{more} more strong method{'s' if more > 1 else ''}: {_labels(strong_left, counted)}")
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
        text += f"; at least {requirement.min_strong} strong (not SMS code)"
    if NEVER_ALONE & set(requirement.allowed):
        text += "; an email code never suffices alone"
    if requirement.required:
        text += "; must include " + ", ".join(str(Method(m).label) for m in requirement.required)
    if requirement.privileged:
        text += " (privileged person: stricter)"
    return text


def _labels(methods, exclude) -> str:
    return " or ".join(str(Method(m).label) for m in methods if m not in exclude) or "none left"
