"""Answers to challenges: a code the technician types (SMS code, email code, TOTP), the
person's choice on the number-matched push page, and the shared steps every answer takes
(an atomic attempt, approval with the policy re-evaluated, a wrong answer counted).

Every answer runs with the request's row locked, then the challenge's: concurrent answers
to one challenge are taken one at a time, and never more than ``max_attempts`` count.
"""

from __future__ import annotations

from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from accounts.models import User
from accounts.rows import db_time, execute, placeholders
from audit.events import EventType
from validation import crypto, links, params
from validation.channels.totp import totp_match
from validation.models import Challenge, Method, PersonAuthenticator, VerificationRequest
from validation.services._common import (
    CHALLENGE_ROWS,
    CHALLENGES,
    OPEN_VALUES,
    VerificationError,
    bump,
    record,
    record_changes,
)
from validation.services.challenges import challenge_create, challenge_method_check, locked_open_request
from validation.services.lockout import VIA_PUSH, fraud_report
from validation.services.requests import (
    answer_states,
    failure_count,
    person_state_lock,
    reevaluate,
    verification_fail,
)


def attempt_take(challenge_id: int, *, sent_only: bool = False) -> bool:
    """Count one check against the challenge, atomically: never more than max_attempts, and
    only while it is open and unexpired. ``sent_only``: not while it is still queued either
    (an approver's code is checked on the page its text linked to)."""
    sql, statuses = (_SENT_ATTEMPT_SQL, _SENT_VALUES) if sent_only else (_ATTEMPT_SQL, OPEN_VALUES)
    return bool(execute(sql, [challenge_id, *statuses, db_time(timezone.now())]))


# Every answer takes an attempt and most approve: written out (accounts.rows), each cost the
# ORM more CPU than the statement. The challenge is in one of the statuses; taking an attempt
# also needs one left and the challenge unexpired (the time a bound value, as stored).
def _in(statuses: list[str]) -> str:
    return f"id = %s AND status IN ({placeholders(len(statuses))})"


def _attempt_left(statuses: list[str]) -> str:
    return f"{_in(statuses)} AND attempts < max_attempts AND expires_at > %s"


_SENT_VALUES = [status.value for status in Challenge.ANSWERABLE_STATUSES]
_OPEN = _in(OPEN_VALUES)
_ATTEMPT_LEFT = _attempt_left(OPEN_VALUES)
_ATTEMPT_SQL = f"UPDATE {CHALLENGES} SET attempts = attempts + 1 WHERE {_ATTEMPT_LEFT}"  # noqa: S608
_SENT_ATTEMPT_SQL = f"UPDATE {CHALLENGES} SET attempts = attempts + 1 WHERE {_attempt_left(_SENT_VALUES)}"  # noqa: S608
_APPROVE_SQL = f"UPDATE {CHALLENGES} SET status = %s, answered_at = %s WHERE {_OPEN}"  # noqa: S608
_ATTEMPT_APPROVE_SQL = (
    f"UPDATE {CHALLENGES} SET attempts = attempts + 1, status = %s, answered_at = %s WHERE {_ATTEMPT_LEFT}"  # noqa: S608
)


def challenge_approve(
    challenge: Challenge,
    verification: VerificationRequest,
    *,
    actor=None,
    end_user=False,
    request=None,
    taking_attempt: bool = False,
    siblings: list[Challenge] | None = None,
):
    """Approve an open challenge (the caller holds the request's and the challenge's row
    locks). ``taking_attempt``: this answer's attempt is not counted yet; count it in the
    same update, which, like ``attempt_take``, changes nothing when no attempt is left.
    ``siblings``: every challenge of the request, this one included, read under those locks
    (``_locked_challenges``); the policy is then re-evaluated from them, not read again."""
    moment = timezone.now()
    now = db_time(moment)
    values = [Challenge.Status.APPROVED.value, now, challenge.pk, *OPEN_VALUES]
    approve = (_ATTEMPT_APPROVE_SQL, [*values, now]) if taking_attempt else (_APPROVE_SQL, values)
    approved = record_changes(
        EventType.VERIFICATION_CHALLENGE_APPROVED,
        verification,
        changes=[approve],
        actor=actor,
        end_user=end_user,
        request=request,
        challenge=challenge.pk,
        method=challenge.method,
    )
    if not approved:
        raise VerificationError(
            no_attempt_reason(challenge) if taking_attempt else "This challenge has already been answered."
        )
    if taking_attempt:
        challenge.attempts += 1
    states = None
    if siblings is not None:
        challenge.status, challenge.answered_at = Challenge.Status.APPROVED, moment
        states = answer_states(siblings)
    if not reevaluate(verification, actor=actor, end_user=end_user, request=request, states=states):
        bump(verification.pk)


def challenge_wrong(
    challenge: Challenge, verification, *, reason: str, final: bool, actor=None, end_user=False, request=None
):
    challenge.refresh_from_db(fields=["attempts", "status"])
    last_try = final or challenge.attempts >= challenge.max_attempts
    if last_try and challenge.is_open:
        Challenge.objects.filter(pk=challenge.pk).update(
            status=Challenge.Status.FAILED, answered_at=timezone.now(), failure_reason=reason
        )
    record(
        EventType.VERIFICATION_CHALLENGE_WRONG_ANSWER,
        verification,
        actor=actor,
        end_user=end_user,
        request=request,
        challenge=challenge.pk,
        method=challenge.method,
        attempts=challenge.attempts,
    )
    failure_count(verification, end_user=end_user, request=request)
    bump(verification.pk)


def no_attempt_reason(challenge: Challenge) -> str:
    challenge.refresh_from_db()
    if challenge.expires_at <= timezone.now() and challenge.is_open:
        return "This code has expired; send a new one."
    if challenge.attempts >= challenge.max_attempts:
        return "No attempts left on this challenge; send a new one."
    return "This challenge is no longer open."


def _locked_challenges(request_id: int, pk: int) -> tuple[Challenge, list[Challenge]]:
    """The challenge ``pk`` and every challenge of its request, rows locked (after the
    request's: the lock order of every answer), in one statement: an approval re-evaluates
    the policy from them."""
    siblings = CHALLENGE_ROWS.fetch_all("c.request_id = %s ORDER BY c.id", [request_id], lock=True)
    challenge = next((c for c in siblings if c.pk == pk), None)
    if challenge is None:
        raise Challenge.DoesNotExist
    return challenge, siblings


def sms_code_check(*, actor: User, challenge: Challenge, code: str, request: HttpRequest | None = None) -> bool:
    """The technician types the code the caller read out. True when it was right."""
    with transaction.atomic():
        person_state_lock(request_id=challenge.request_id)
        verification = locked_open_request(challenge.request, actor)
        if challenge.method not in (Method.SMS_CODE, Method.EMAIL_CODE):
            raise VerificationError("This challenge does not take a code.")
        # One locked read: the checks below and the attempt the update counts see the same row.
        challenge, siblings = _locked_challenges(verification.pk, challenge.pk)
        if challenge.status == Challenge.Status.QUEUED:
            # Nothing was sent yet: a guess now is no answer, and must not cost an attempt.
            raise VerificationError("The code is still being sent; wait until it shows as sent.")
        if crypto.code_matches(challenge_id=challenge.pk, code=code, stored_hmac=challenge.code_hmac):
            # The right code: its attempt and the approval are one update (one statement less
            # on every verification), refused like attempt_take when no attempt is left.
            challenge_approve(
                challenge, verification, actor=actor, request=request, taking_attempt=True, siblings=siblings
            )
            return True
        if not attempt_take(challenge.pk):
            raise VerificationError(no_attempt_reason(challenge))
        challenge.attempts += 1
        challenge_wrong(
            challenge, verification, reason="Too many wrong codes", final=False, actor=actor, request=request
        )
    return False


def totp_check(
    *, actor: User, verification: VerificationRequest, code: str, request: HttpRequest | None = None
) -> bool:
    """The technician types the code from the caller's enrolled authenticator."""
    with transaction.atomic():
        person_state_lock(request_id=verification.pk)
        verification = locked_open_request(verification, actor)
        challenge_method_check(verification, Method.TOTP)
        challenge = verification.challenges.filter(method=Method.TOTP, status__in=Challenge.OPEN_STATUSES).first()
        if challenge is None:
            challenge = challenge_create(
                verification, Method.TOTP, status=Challenge.Status.SENT, actor=actor, request=request
            )
        if not attempt_take(challenge.pk):
            raise VerificationError(no_attempt_reason(challenge))
        authenticator = PersonAuthenticator.objects.select_for_update().get(person_id=verification.person_id)
        step = totp_match(authenticator, code)
        accepted = (
            step is not None
            and PersonAuthenticator.objects.filter(pk=authenticator.pk, last_t__lt=step).update(last_t=step) == 1
        )
        if accepted:
            challenge_approve(challenge, verification, actor=actor, request=request)
            return True
        challenge_wrong(
            challenge, verification, reason="Too many wrong codes", final=False, actor=actor, request=request
        )
    return False


def push_challenge_for_link(token: str) -> Challenge:
    """The push challenge a link points at, while it can still be answered. Raises BadLink."""
    nonce = links.link_nonce(token, purpose=links.PUSH, max_age=params.push_lifetime())
    challenge = (
        Challenge.objects.select_related("request__person", "request__organization", "request__technician")
        .filter(link_nonce_hash=crypto.nonce_hash(nonce), method=Method.PUSH)
        .first()
    )
    if challenge is None:
        raise links.BadLink("This link is not valid.")
    if not _push_answerable(challenge, challenge.request):
        raise links.BadLink("This request has already been answered or has expired.")
    return challenge


def _push_answerable(challenge: Challenge, verification: VerificationRequest) -> bool:
    """A push link is answerable while both its challenge and its request are open: a
    challenge sent in a request's last two minutes must not outlive the request."""
    now = timezone.now()
    return (
        challenge.status in Challenge.OPEN_STATUSES
        and challenge.expires_at > now
        and verification.status == VerificationRequest.Status.PENDING
        and verification.expires_at > now
    )


PUSH_DENY, PUSH_FRAUD = "deny", "fraud"


def push_respond(*, token: str, choice: str, request: HttpRequest | None = None) -> str:
    """The person's answer on the push page: a number, "deny" or "fraud". Returns the
    outcome ("approved", "wrong_number", "denied", "fraud"). Raises BadLink or ValueError
    (an answer that is not one of the offered choices changes nothing)."""
    with transaction.atomic():
        challenge = push_challenge_for_link(token)
        valid = {PUSH_DENY, PUSH_FRAUD} | {str(n) for n in challenge.match_choices}
        if choice not in valid:
            raise ValueError("Pick one of the numbers shown, or deny the request.")
        person_state_lock(request_id=challenge.request_id)
        verification = (
            VerificationRequest.objects.select_for_update(of=("self",))
            .select_related("person", "organization")
            .get(pk=challenge.request_id)
        )
        challenge, siblings = _locked_challenges(verification.pk, challenge.pk)
        if not _push_answerable(challenge, verification) or not attempt_take(challenge.pk):
            raise links.BadLink("This request has already been answered or has expired.")
        if choice == str(challenge.match_number):
            challenge_approve(challenge, verification, end_user=True, request=request, siblings=siblings)
            return "approved"
        if choice in (PUSH_DENY, PUSH_FRAUD):
            Challenge.objects.filter(pk=challenge.pk).update(
                status=Challenge.Status.DENIED, answered_at=timezone.now(), failure_reason="Denied by the person"
            )
            if choice == PUSH_FRAUD:
                fraud_report(verification=verification, challenge=challenge, via=VIA_PUSH, request=request)
            else:
                record(
                    EventType.VERIFICATION_CHALLENGE_DENIED,
                    verification,
                    end_user=True,
                    request=request,
                    challenge=challenge.pk,
                )
                verification_fail(verification, reason="The person denied the request", end_user=True, request=request)
                failure_count(verification, end_user=True, request=request)
            bump(verification.pk)
            return "fraud" if choice == PUSH_FRAUD else "denied"
        challenge_wrong(
            challenge,
            verification,
            reason="The person picked the wrong number",
            final=True,
            end_user=True,
            request=request,
        )
        return "wrong_number"
