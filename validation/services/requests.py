"""Verification requests: start, evaluate against the policy, cancel, consume, expire, lock."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from django.db import connection, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import Person, Role, User
from accounts.rows import (
    column_values,
    db_time,
    execute,
    insert,
    insert_into,
    insert_values,
    lock_clause,
    placeholders,
    row_values,
)
from accounts.selectors import user_works_on
from audit.events import EventType
from validation import params
from validation.models import Action, Challenge, PersonVerificationState, VerificationRequest
from validation.policy import Requirement, requirement_evaluate, requirement_for
from validation.services._common import (
    CHALLENGES,
    OPEN_VALUES,
    REQUESTS,
    VerificationError,
    bump,
    record,
    record_changes,
)
from validation.services.policies import policy_for

TICKET_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9#._/:-]{0,63}$")


def _may_work_on(user: User, person: Person) -> bool:
    return user_works_on(user=user, organization=person.organization)


def person_lock_reason_now(person: Person) -> str | None:
    """Why verification is locked for the person, or None; read now (never a cached row).
    Asked on every request start and send, so written out."""
    return _lock_reason(column_values(_LOCK_REASON_SQL, [person.pk]))


def _lock_reason(reasons: list[str]) -> str | None:
    return (reasons[0] or PersonVerificationState.DEFAULT_LOCK_REASON) if reasons else None


_LOCK_REASON_SQL = (
    f"SELECT locked_reason FROM {PersonVerificationState._meta.db_table}"  # noqa: S608 - the model's table
    " WHERE person_id = %s AND locked_at IS NOT NULL"
)


def person_state_ensure(person: Person) -> str | None:
    """Make sure the person has a verification state row, which the answers to the request
    lock first (``person_state_lock``), and return ``person_lock_reason_now``. On PostgreSQL one
    statement: the insert (nothing when the row exists) and the read of the row as it was
    before, since a row inserted now is not locked."""
    state = PersonVerificationState(person=person)
    if connection.vendor != "postgresql":
        PersonVerificationState.objects.bulk_create([state], ignore_conflicts=True)
        return person_lock_reason_now(person)
    ensure = f"WITH ensured AS ({insert_into(PersonVerificationState)} ON CONFLICT (person_id) DO NOTHING) "
    return _lock_reason(column_values(ensure + _LOCK_REASON_SQL, [*insert_values(state), person.pk]))


@transaction.atomic
def verification_request_create(
    *, actor: User, person: Person, action: str, ticket_reference: str, request: HttpRequest | None = None
) -> VerificationRequest:
    """Start verifying a caller who claims to be ``person`` and asks for ``action``."""
    if not _may_work_on(actor, person):
        raise VerificationError("You are not assigned to this person's organisation.")
    if not (actor.is_superuser or actor.has_role(Role.TECHNICIAN)):
        raise VerificationError("Only technicians verify callers.")
    if action not in Action.values:
        raise VerificationError("Choose what the caller is asking for.")
    ticket_reference = ticket_reference.strip()
    if not TICKET_PATTERN.match(ticket_reference):
        raise VerificationError("Enter the ticket reference: letters, digits and # . _ / : - only, at most 64.")
    lock = person_state_ensure(person)
    if lock:
        raise VerificationError(f"Verification is locked for {person}: {lock}. An org admin must lift the lock.")
    requirement = requirement_for(
        policy=policy_for(organization=person.organization, action=action), privileged=person.privileged
    )
    now = timezone.now()
    verification = VerificationRequest(
        organization=person.organization,
        person=person,
        technician=actor,
        action=action,
        ticket_reference=ticket_reference,
        created_at=now,
        expires_at=now + params.request_lifetime(),
        policy_snapshot=requirement.as_snapshot(),
    )
    insert(verification)  # written out (accounts.rows), like the reads of the round trip
    record(
        EventType.VERIFICATION_REQUEST_CREATED,
        verification,
        actor=actor,
        request=request,
        action=action,
        ticket=ticket_reference,
        privileged=person.privileged,
    )
    return verification


def verification_requirement(verification: VerificationRequest) -> Requirement:
    return Requirement.from_snapshot(verification.policy_snapshot)


def approved_methods(verification: VerificationRequest) -> list[str]:
    """The methods answered correctly, in answer order."""
    return _approved(_challenge_states(verification))


def _challenge_states(verification: VerificationRequest) -> list[tuple[str, str]]:
    """(method, status) of each of the request's challenges, the approved ones in answer order."""
    return row_values(_CHALLENGE_STATES_SQL, [verification.pk])


def answer_states(challenges: list[Challenge]) -> list[tuple[str, str]]:
    """``_challenge_states`` of challenges already in hand (read under the request's lock in
    this transaction, changes made to them since applied), in the same order."""
    ordered = sorted(challenges, key=lambda c: (c.answered_at is None, c.answered_at or _NEVER, c.pk))
    return [(c.method, c.status) for c in ordered]


def _approved(states: list[tuple[str, str]]) -> list[str]:
    return [method for method, status in states if status == Challenge.Status.APPROVED]


def reevaluate(
    verification: VerificationRequest,
    *,
    actor=None,
    end_user: bool = False,
    request=None,
    states: list[tuple[str, str]] | None = None,
) -> bool:
    """After a challenge was approved: mark the request verified when the policy is met
    (True; the live view's version moves with it). Runs inside the caller's transaction
    with the person's state row and the request's row locked (``person_state_lock``, then
    the request: every answer path takes them in that order). ``states``: the challenges'
    as ``answer_states`` gives them, when the caller has them; otherwise they are read."""
    if states is None:
        states = _challenge_states(verification)
    evaluation = requirement_evaluate(verification_requirement(verification), _approved(states))
    if not evaluation.met or verification.status != VerificationRequest.Status.PENDING:
        return False
    now = timezone.now()
    verification.status = VerificationRequest.Status.VERIFIED
    verification.verified_at = now
    verification.expires_at = now + params.RESULT_LIFETIME
    verified = [VerificationRequest.Status.VERIFIED.value, db_time(now), db_time(verification.expires_at)]
    # The person's failure counter starts again; its row is locked already (person_state_lock).
    record_changes(
        EventType.VERIFICATION_REQUEST_VERIFIED,
        verification,
        changes=[(_FAILURES_RESET_SQL, [verification.person_id]), (_VERIFIED_SQL, [*verified, verification.pk])],
        actor=actor,
        end_user=end_user,
        request=request,
        methods=evaluation.counted,
    )
    if any(status in OPEN_VALUES for _, status in states):  # most verifications leave none open
        _close_open_challenges(verification, reason="Policy met")
    return True


def _close_open_challenges(verification: VerificationRequest, *, reason: str) -> None:
    execute(_CLOSE_OPEN_SQL, [Challenge.Status.EXPIRED.value, reason[:200], verification.pk, *OPEN_VALUES])


# The statements of every approval, written out (accounts.rows): each cost the ORM more CPU
# than the statement.
_STATES = PersonVerificationState._meta.db_table
_NEVER = datetime.min.replace(tzinfo=UTC)  # answer_states' sort key for an unanswered challenge
_CHALLENGE_STATES_SQL = f"SELECT method, status FROM {CHALLENGES} WHERE request_id = %s ORDER BY answered_at, id"  # noqa: S608
_VERIFIED_SQL = (
    f"UPDATE {REQUESTS} SET status = %s, verified_at = %s, expires_at = %s, version = version + 1 WHERE id = %s"  # noqa: S608
)
_CLOSE_OPEN_SQL = (
    f"UPDATE {CHALLENGES} SET status = %s, failure_reason = %s"  # noqa: S608 - the model's table
    f" WHERE request_id = %s AND status IN ({placeholders(len(OPEN_VALUES))})"
)
# Nothing to write when there were no failures (most verifications): no new row version.
_FAILURES_RESET_SQL = (
    f"UPDATE {_STATES} SET consecutive_failures = 0 WHERE person_id = %s AND consecutive_failures <> 0"  # noqa: S608
)
_STATE_LOCK_SQL = f"SELECT s.id FROM {_STATES} s JOIN {REQUESTS} r ON r.person_id = s.person_id WHERE r.id = %s"  # noqa: S608


def _end(verification: VerificationRequest, status: str, reason: str) -> None:
    verification.status = status
    verification.ended_reason = reason[:200]
    verification.save(update_fields=["status", "ended_reason"])
    _close_open_challenges(verification, reason=reason)


def verification_fail(verification: VerificationRequest, *, reason: str, end_user: bool = False, request=None) -> None:
    """End a pending request as failed (the person denied). Caller holds the row lock."""
    if verification.status != VerificationRequest.Status.PENDING:
        return
    _end(verification, VerificationRequest.Status.FAILED, reason)
    record(EventType.VERIFICATION_REQUEST_FAILED, verification, end_user=end_user, request=request, reason=reason)


def failure_count(verification: VerificationRequest, *, end_user: bool = False, request=None) -> None:
    """One more consecutive failure for the person; at the cap, verification locks."""
    state, _ = PersonVerificationState.objects.get_or_create(person_id=verification.person_id)
    PersonVerificationState.objects.filter(pk=state.pk).update(consecutive_failures=F("consecutive_failures") + 1)
    state.refresh_from_db(fields=["consecutive_failures", "locked_at"])
    if state.consecutive_failures >= params.failure_cap() and state.locked_at is None:
        person_lock(
            verification,
            reason=f"{state.consecutive_failures} consecutive failed verification attempts",
            end_user=end_user,
            request=request,
        )
        from validation.tasks import lock_alert

        transaction.on_commit(lambda: lock_alert.delay(verification.pk, "failures"))


def person_state_lock(*, request_id: int) -> None:
    """Lock the verification state row of the request's person (created if missing).

    Lock order for every path that may change a person's verification state (answers count
    failures or reset them, fraud reports lock the person and end their other requests):
    this row, then the request's, then the challenge's. A fraud report on one request and an
    answer on another request of the same person then queue on this row instead of each
    holding a request the other needs (a deadlock that would drop the report)."""
    if not column_values(_STATE_LOCK_SQL + lock_clause("s"), [request_id]):
        person_id = VerificationRequest.objects.values_list("person_id", flat=True).get(pk=request_id)
        PersonVerificationState.objects.select_for_update().get_or_create(person_id=person_id)


def person_lock(verification: VerificationRequest, *, reason: str, end_user: bool = False, request=None) -> None:
    """Lock verification for the request's person: every pending request of theirs ends as locked."""
    now = timezone.now()
    state, _ = PersonVerificationState.objects.select_for_update().get_or_create(person_id=verification.person_id)
    if state.locked_at is None:
        state.locked_at, state.locked_reason = now, reason[:200]
        # Whose verification set the lock: that technician may never lift it.
        state.locked_request_id, state.locked_technician_id = verification.pk, verification.technician_id
        state.save(update_fields=["locked_at", "locked_reason", "locked_request", "locked_technician"])
    pending = VerificationRequest.objects.select_for_update().filter(
        person_id=verification.person_id, status=VerificationRequest.Status.PENDING
    )
    for other in pending:
        _end(other, VerificationRequest.Status.LOCKED, reason)
        bump(other.pk)
    if verification.status == VerificationRequest.Status.PENDING:
        verification.refresh_from_db()
    record(EventType.VERIFICATION_PERSON_LOCKED, verification, end_user=end_user, request=request, reason=reason)


@transaction.atomic
def verification_cancel(*, actor: User, verification: VerificationRequest, request: HttpRequest | None = None) -> None:
    verification = VerificationRequest.objects.select_for_update().get(pk=verification.pk)
    if verification.technician_id != actor.pk:
        raise VerificationError("Only the technician who started this verification can act on it.")
    if verification.status != VerificationRequest.Status.PENDING:
        raise VerificationError("Only a pending verification can be cancelled.")
    _end(verification, VerificationRequest.Status.CANCELLED, f"Cancelled by {actor}")
    bump(verification.pk)
    record(EventType.VERIFICATION_REQUEST_CANCELLED, verification, actor=actor, request=request)


@transaction.atomic
def verification_consume(
    *, actor: User, verification: VerificationRequest, person: Person, action: str, request: HttpRequest | None = None
) -> VerificationRequest:
    """Use a verified result for one action. It must be verified, unconsumed, less than 15
    minutes old, for this person and this action, and made by ``actor``. At most one
    caller ever succeeds for one verification."""
    now = timezone.now()
    used = VerificationRequest.objects.filter(
        pk=verification.pk,
        status=VerificationRequest.Status.VERIFIED,
        consumed_at__isnull=True,
        expires_at__gt=now,
        technician=actor,
        person=person,
        action=action,
    ).update(consumed_at=now, version=F("version") + 1)
    verification.refresh_from_db()
    if not used:
        raise VerificationError(_unusable_reason(verification, actor=actor, person=person, action=action, now=now))
    record(EventType.VERIFICATION_REQUEST_CONSUMED, verification, actor=actor, request=request, action=action)
    return verification


def _unusable_reason(verification, *, actor, person, action, now: datetime) -> str:
    if verification.technician_id != actor.pk:
        return "This verification was made by another technician."
    if verification.person_id != person.pk:
        return "This verification is for another person."
    if verification.action != action:
        return f"This verification covers a {verification.get_action_display().lower()}, not this action."
    if verification.consumed_at is not None:
        return "This verification has already been used."
    if verification.status != VerificationRequest.Status.VERIFIED:
        return f"The caller is not verified (status: {verification.get_status_display().lower()})."
    return "This verification is more than 15 minutes old; verify the caller again."


def verification_expire_stale(*, now: datetime | None = None) -> int:
    """Expire pending and verified requests and open challenges past their time. Returns
    how many requests expired. Run by Celery beat; each request in its own transaction."""
    now = now or timezone.now()
    expired = 0
    ids = list(
        VerificationRequest.objects.filter(
            status__in=[VerificationRequest.Status.PENDING, VerificationRequest.Status.VERIFIED], expires_at__lte=now
        ).values_list("pk", flat=True)[:1000]
    )
    for pk in ids:
        with transaction.atomic():
            verification = VerificationRequest.objects.select_for_update().get(pk=pk)
            if verification.expires_at > now or verification.status not in (
                VerificationRequest.Status.PENDING,
                VerificationRequest.Status.VERIFIED,
            ):
                continue
            unused = verification.status == VerificationRequest.Status.VERIFIED
            _end(
                verification,
                VerificationRequest.Status.EXPIRED,
                "Verified result not used in time" if unused else "Timed out",
            )
            bump(pk)
            record(EventType.VERIFICATION_REQUEST_EXPIRED, verification, unused_result=unused)
            expired += 1
    from validation.services.challenges import challenge_expire_stale
    from validation.services.limits import send_records_prune

    challenge_expire_stale(now=now)
    send_records_prune(now=now)
    return expired
