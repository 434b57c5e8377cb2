"""Reads for caller verification, always scoped to the organisations a staff user is
assigned to (``accounts.selectors``): another organisation's object is a 404."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet, prefetch_related_objects
from django.http import Http404
from django.utils import timezone

from accounts.models import Organization, Person, User
from accounts.rows import JoinedRead, ModelColumns, column_values, possible_key, prefetched
from accounts.selectors import in_scope, organization_ids_for_user
from validation.approval_selectors import ApprovalPanel, approval_panel
from validation.channels import CHANNELS, channel_for
from validation.channels.base import phone_unavailable_reason
from validation.models import (
    APPROVAL_METHODS,
    Action,
    Challenge,
    Method,
    PersonVerificationState,
    VerificationPolicy,
    VerificationRequest,
)
from validation.policy import (
    DEFAULTS,
    STRONG_METHODS,
    Evaluation,
    Requirement,
    requirement_describe,
    requirement_evaluate,
    requirement_for,
)

POLL_GRACE = timedelta(minutes=2)


def verification_list_for_user(*, user: User) -> QuerySet[VerificationRequest]:
    """Verification requests of the organisations the user works on (superusers: all active ones)."""
    return VerificationRequest.objects.filter(organization_id__in=organization_ids_for_user(user=user))


def verification_list_for_technician(*, technician: User) -> QuerySet[VerificationRequest]:
    """The requests ``technician`` started, newest first, in organisations they still work on."""
    return (
        verification_list_for_user(user=technician)
        .filter(technician=technician)
        .select_related("person", "organization")
        .order_by("-created_at", "-id")
    )


def verification_get_for_user(*, user: User, pk: int) -> VerificationRequest:
    """The request with its organisation, technician, person, the person's manager,
    authenticator and lock state, and its challenges; Http404 when it does not exist or
    belongs to an organisation the user may not see. What the live view shows after every
    answer: written out (``accounts.rows``), as ``select_related`` over these six tables
    cost more CPU to compile than the rest of the request."""
    where = _scope_or_404(user=user, pk=pk)
    verification, challenges = _DETAIL.fetch_with_children(
        _CHALLENGE_COLUMNS, _CHALLENGES_ON, *where, order="c.created_at, c.id"
    )
    if verification is None:
        raise Http404("No such verification")
    person = verification.person
    if person.organization_id == verification.organization_id:
        Person._meta.get_field("organization").set_cached_value(person, verification.organization)
    for challenge in challenges:
        Challenge._meta.get_field("request").set_cached_value(challenge, verification)
    prefetched(verification, "challenges", challenges)
    approvals = [c for c in challenges if c.method in APPROVAL_METHODS]
    if approvals:
        prefetch_related_objects(approvals, "approval__approver")  # reverse one-to-one, then the approver
    return verification


_DETAIL = JoinedRead(
    VerificationRequest,
    "r",
    ("r", "organization", "o"),
    ("r", "technician", "t"),
    ("r", "person", "p"),
    ("p", "manager", "m"),
    ("p", "authenticator", "a"),
    ("p", "verification_state", "s"),
)
_BARE = JoinedRead(VerificationRequest, "r")
_CHALLENGE_COLUMNS = ModelColumns(Challenge, "c")  # the request's challenges, in the same statement
_CHALLENGES_ON = f"c.{Challenge._meta.get_field('request').column} = r.id"


def _scope_or_404(*, user: User, pk: int) -> tuple[str, list[int]]:
    """The condition (alias ``r``) and values that the request ``pk`` is in one of the user's
    organisations; Http404 when nothing can match."""
    scope = in_scope(user=user, alias="r", pk=pk)
    if scope is None:
        raise Http404("No such verification")
    return scope


def verification_scoped_for_user(*, user: User, pk: int) -> VerificationRequest:
    """The bare request row (no related rows), for an action the services then load and
    lock themselves; Http404 like ``verification_get_for_user``."""
    verification = _BARE.fetch(*_scope_or_404(user=user, pk=pk))
    if verification is None:
        raise Http404("No such verification")
    return verification


def verification_version_for_user(*, user: User, pk: int) -> int:
    """The request's version, in one scoped query: the live view's "anything new?" check,
    every second on every open page (written out like ``verification_get_for_user``)."""
    where, values = _scope_or_404(user=user, pk=pk)
    versions = column_values(f"SELECT r.version FROM {VerificationRequest._meta.db_table} r WHERE {where}", values)  # noqa: S608
    if not versions:
        raise Http404("No such verification")
    return versions[0]


def challenge_scoped_for_user(*, user: User, pk: int, challenge_pk: int) -> Challenge:
    """The challenge ``challenge_pk`` of the request ``pk``, with that bare request row, in
    one scoped read; Http404 unless both exist, belong together and the request is in one
    of the user's organisations."""
    where, values = _scope_or_404(user=user, pk=pk)
    challenge = (
        _CHALLENGE_AND_REQUEST.fetch(f"c.id = %s AND {where}", [challenge_pk, *values])
        if possible_key(challenge_pk)
        else None
    )
    if challenge is None:
        raise Http404("No such challenge")
    return challenge


_CHALLENGE_AND_REQUEST = JoinedRead(Challenge, "c", ("c", "request", "r"))


# --- What can verify a person -------------------------------------------------------------


@dataclass(frozen=True)
class MethodOption:
    method: str
    label: str
    strong: bool
    sends_message: bool
    reason: str | None  # why it cannot serve now; None when it can

    @property
    def available(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class ActionRequirement:
    action: str
    label: str
    description: str
    satisfiable: bool  # the methods that can serve now could meet it


def person_lock_reason(person: Person) -> str | None:
    """Why verification is locked for the person, or None, for a page: uses the state row
    the person was loaded with (``select_related``), else reads it. The services read it
    afresh (``validation.services.requests.person_lock_reason_now``)."""
    state = getattr(person, "verification_state", None)
    if state is None or state.locked_at is None:
        return None
    return state.locked_reason or PersonVerificationState.DEFAULT_LOCK_REASON


def method_options_for_person(*, person: Person, now: datetime | None = None) -> list[MethodOption]:
    now = now or timezone.now()
    return [
        MethodOption(
            method=method,
            label=str(Method(method).label),
            strong=method in STRONG_METHODS,
            sends_message=CHANNELS[method].sends_message,
            reason=CHANNELS[method].unavailable_reason(person, now=now),
        )
        for method in Method.values
    ]


def policy_list_for_organization(*, organization: Organization) -> list[VerificationPolicy]:
    """One policy per action; an action without a row shows the defaults it would get
    (unsaved: reading never creates rows)."""
    stored = {p.action: p for p in VerificationPolicy.objects.filter(organization=organization)}
    return [
        stored.get(action) or VerificationPolicy(organization=organization, action=action, **DEFAULTS[action])
        for action in Action.values
    ]


def action_requirements_for_person(*, person: Person, options: list[MethodOption]) -> list[ActionRequirement]:
    available = [o.method for o in options if o.available]
    result = []
    for policy in policy_list_for_organization(organization=person.organization):
        requirement = requirement_for(policy=policy, privileged=person.privileged)
        result.append(
            ActionRequirement(
                action=policy.action,
                label=policy.get_action_display(),
                description=requirement_describe(requirement),
                satisfiable=requirement_evaluate(requirement, available).met,
            )
        )
    return result


def person_can_receive_enrolment(person: Person) -> str | None:
    """Why no enrolment link can be texted to the person now, or None when it can."""
    return phone_unavailable_reason(person)


def email_masked(email: str) -> str:
    local, at, domain = email.partition("@")
    if not at:
        return ""
    return f"{local[:1]}•••@{domain}"


# --- The live view of one request ---------------------------------------------------------


@dataclass(frozen=True)
class SendOption:
    method: str
    label: str
    reason: str | None  # why it cannot be sent now (unavailable, or one is waiting)


@dataclass(frozen=True)
class VerificationStatus:
    """What the technician's live view shows for one request."""

    verification: VerificationRequest
    challenges: list[Challenge]
    requirement: Requirement
    requirement_text: str
    evaluation: Evaluation
    lock_reason: str | None
    can_act: bool  # the viewer started it and it is still pending
    send_options: list[SendOption]
    totp_reason: str | None  # why a TOTP code cannot be checked now
    totp_offered: bool  # TOTP is allowed and not yet answered
    is_final: bool
    polling: bool  # the live view asks for news: pending, and not long past its time
    approval: ApprovalPanel | None = None  # manager or peer approval controls, when the policy takes one

    @property
    def counted_labels(self) -> list[str]:
        return [str(Method(m).label) for m in self.evaluation.counted]


def verification_status(*, verification: VerificationRequest, user: User) -> VerificationStatus:
    """Built from ``verification_get_for_user`` without further queries."""
    challenges = list(verification.challenges.all())
    approved = [
        c.method
        for c in sorted(
            (c for c in challenges if c.status == Challenge.Status.APPROVED), key=lambda c: (c.answered_at, c.pk)
        )
    ]
    requirement = Requirement.from_snapshot(verification.policy_snapshot)
    person = verification.person
    now = timezone.now()
    waiting = {c.method: c for c in challenges if c.status in Challenge.WAITING_STATUSES}
    send_options = []
    for method in requirement.allowed:
        channel = channel_for(method)
        if not channel.sends_message or method in approved:
            continue
        reason = channel.unavailable_reason(person, now=now)
        if reason is None and method in waiting:
            reason = f"Waiting for an answer until {waiting[method].expires_at:%H:%M:%S} UTC"
        send_options.append(SendOption(method=method, label=str(Method(method).label), reason=reason))
    totp_offered = Method.TOTP in requirement.allowed and Method.TOTP not in approved
    return VerificationStatus(
        verification=verification,
        challenges=challenges,
        requirement=requirement,
        requirement_text=requirement_describe(requirement),
        evaluation=requirement_evaluate(requirement, approved),
        lock_reason=person_lock_reason(person),
        can_act=verification.is_open and verification.technician_id == user.pk,
        send_options=send_options,
        totp_reason=channel_for(Method.TOTP).unavailable_reason(person, now=now) if totp_offered else None,
        totp_offered=totp_offered,
        is_final=not verification.is_open,
        # Expiry is applied by Celery beat; a little after the deadline the page stops asking,
        # so a tab left open cannot keep the session alive for ever if beat is down.
        polling=verification.is_open and verification.expires_at + POLL_GRACE > now,
        approval=approval_panel(
            verification=verification, requirement=requirement, approved=approved, challenges=challenges
        ),
    )
