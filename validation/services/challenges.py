"""Challenges: start one, send it (from the Celery worker), record delivery, expire it.
Answers to challenges are checked in ``validation.services.answers``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone

from accounts.models import User
from accounts.rows import JoinedRead, db_time, execute, insert
from audit.events import EventType
from validation import params, selectors
from validation.channels import SendError, channel_for
from validation.channels.push import match_numbers
from validation.channels.sms import PERMANENT_ERRORS
from validation.channels.sms_reply import reply_match_number
from validation.models import Challenge, Method, SendRecord, VerificationRequest
from validation.services._common import (
    BUMP_SQL,
    CHALLENGE_ROWS,
    CHALLENGES,
    VerificationError,
    bump,
    bump_statement,
    record,
    request_lock,
)
from validation.services.limits import records_refusals, send_reserve
from validation.services.requests import (
    approved_methods,
    person_lock_reason_now,
    verification_requirement,
)

# Every answer and send starts here: written out (``accounts.rows``), the ORM's compile of
# this join cost more CPU than the statement.
_LOCKED_REQUEST = JoinedRead(
    VerificationRequest,
    "r",
    ("r", "person", "p"),
    ("p", "organization", "po"),
    ("p", "verification_state", "s"),
    ("r", "organization", "o"),
    ("r", "technician", "t"),
)


def locked_open_request(verification: VerificationRequest, actor: User) -> VerificationRequest:
    """The request, row-locked, if ``actor`` may still challenge on it; read with its person,
    their organisation (the send limits count per organisation) and their verification
    state as it is now (the send limits' lock check)."""
    verification = _LOCKED_REQUEST.fetch("r.id = %s", [verification.pk], lock=True)
    if verification is None:
        raise VerificationRequest.DoesNotExist
    if verification.technician_id != actor.pk:
        raise VerificationError("Only the technician who started this verification can act on it.")
    if verification.status != VerificationRequest.Status.PENDING:
        raise VerificationError(f"This verification is {verification.get_status_display().lower()}.")
    if verification.expires_at <= timezone.now():
        raise VerificationError("This verification has timed out; start a new one.")
    return verification


def challenge_method_check(
    verification: VerificationRequest, method: str, *, approved: list[str] | None = None, lock_checked: bool = False
) -> None:
    """Refuse a method the policy does not take, one already answered (``approved``: the
    request's approved methods when the caller has them), one unavailable for the person,
    or any method while the person is locked (unless ``lock_checked``: the caller's send
    limits check it in the same transaction, and record the refusal)."""
    if method not in verification_requirement(verification).allowed:
        raise VerificationError("The organisation's policy does not accept this method for this action.")
    if method in (approved if approved is not None else approved_methods(verification)):
        raise VerificationError("This method has already been answered correctly; use another one.")
    reason = channel_for(method).unavailable_reason(verification.person)
    if reason:
        raise VerificationError(f"{Method(method).label} is unavailable: {reason}.")
    lock = None if lock_checked else person_lock_reason_now(verification.person)
    if lock:
        raise VerificationError(f"Verification is locked for this person: {lock}.")


def challenge_create(verification: VerificationRequest, method: str, *, status: str, actor, request) -> Challenge:
    channel = channel_for(method)
    now = timezone.now()
    challenge = Challenge(
        request=verification,
        method=method,
        status=status,
        destination_masked=channel.destination_masked(verification.person),
        max_attempts=params.max_attempts(),
        created_at=now,
        expires_at=now + channel.lifetime(),
        sent_at=now if status == Challenge.Status.SENT else None,
    )
    if method == Method.PUSH:
        challenge.match_number, challenge.match_choices = match_numbers()
    elif method == Method.SMS_REPLY:
        challenge.match_number = reply_match_number(verification.person)
    # Written out (accounts.rows), with the live view's version bump in the same statement:
    # the caller holds the request's row lock.
    insert(challenge, also=bump_statement(verification.pk))
    _challenge_created_event(verification, challenge, actor=actor, request=request)
    return challenge


def challenge_created(verification: VerificationRequest, challenge: Challenge, *, actor, request, **details) -> None:
    """A new challenge on the request: the live view's version moves and the event is recorded."""
    bump(verification.pk)
    _challenge_created_event(verification, challenge, actor=actor, request=request, **details)


def _challenge_created_event(
    verification: VerificationRequest, challenge: Challenge, *, actor, request, **details
) -> None:
    record(
        EventType.VERIFICATION_CHALLENGE_CREATED,
        verification,
        actor=actor,
        request=request,
        challenge=challenge.pk,
        method=challenge.method,
        **details,
    )


@records_refusals
@transaction.atomic
def challenge_start(
    *, actor: User, verification: VerificationRequest, method: str, request: HttpRequest | None = None
) -> Challenge:
    """Queue a challenge that sends a message (SMS code, push link); a worker sends it
    after this transaction commits. The send limits count it (``services.limits``)."""
    verification = locked_open_request(verification, actor)
    if method not in Method.values or not channel_for(method).sends_message:
        raise VerificationError("Choose a method that sends a message to the person.")
    challenges = CHALLENGE_ROWS.fetch_all(
        "c.request_id = %s AND c.method = %s ORDER BY c.created_at, c.id", [verification.pk, method]
    )
    approved = [c.method for c in challenges if c.status == Challenge.Status.APPROVED]
    challenge_method_check(verification, method, approved=approved, lock_checked=True)  # send_reserve checks it
    waiting = next((c for c in challenges if c.status in Challenge.WAITING_STATUSES), None)
    if waiting is not None:
        raise VerificationError(
            f"A {waiting.get_method_display().lower()} is already waiting for an answer "
            f"until {waiting.expires_at:%H:%M:%S} UTC."
        )
    _reserve_send(verification, method, actor)
    challenge = challenge_create(verification, method, status=Challenge.Status.QUEUED, actor=actor, request=request)
    from validation.tasks import challenge_send

    transaction.on_commit(lambda: challenge_send.delay(challenge.pk))
    return challenge


def _reserve_send(verification: VerificationRequest, method: str, actor: User) -> None:
    """Count the message the channel says it sends against the send limits."""
    channel, person = channel_for(method), verification.person
    send_reserve(
        person=person,
        technician=actor,
        destination=channel.send_destination(person),
        destination_masked=channel.destination_masked(person),
        kind=SendRecord.Kind.CHALLENGE,
        method=method,
        target=verification,
        lock_reason=selectors.person_lock_reason(person),  # its state row, read with the request's lock
    )


def status_callback_url() -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("validation:twilio_status")


# The worker's read of a challenge to send, with what composing and recording it needs.
_QUEUED_CHALLENGE = JoinedRead(
    Challenge,
    "c",
    ("c", "request", "r"),
    ("r", "person", "p"),
    ("r", "organization", "o"),
    ("r", "technician", "t"),
)


_SECRETS_SQL = f"UPDATE {CHALLENGES} SET code_hmac = %s, link_nonce_hash = %s WHERE id = %s"  # noqa: S608
_SENT_SQL = (
    f"UPDATE {CHALLENGES} SET status = %s, sent_at = %s, provider_message_id = %s"  # noqa: S608 - the model's table
    " WHERE id = %s AND status = %s"
)
# Where the database has data-modifying WITH (PostgreSQL), the live view's bump, this update
# and its event are one statement (``record``'s ``change``). The challenge's update joins the
# bump's row, so the request's row is locked first (request_lock's order), and the request's
# version moves whether or not the challenge was still queued.
_BUMPED = ("bumped", f"{BUMP_SQL} RETURNING id")
_SENT_AFTER_BUMP_SQL = (
    f"UPDATE {CHALLENGES} c SET status = %s, sent_at = %s, provider_message_id = %s FROM bumped"  # noqa: S608
    " WHERE c.id = %s AND c.request_id = bumped.id AND c.status = %s RETURNING c.id"
)


def challenge_dispatch(*, challenge_id: int) -> None:
    """Compose and send a queued challenge. Raises SendError for a transient failure (the
    task retries); a permanent one marks the challenge failed. Never holds a row lock
    while talking to Twilio."""
    with transaction.atomic():
        # The challenge's row alone: this transaction writes nothing else, so it never waits
        # for the request's row while holding it (the paths below that change the request
        # too run after it, taking the request's row first).
        challenge = _QUEUED_CHALLENGE.fetch(
            "c.id = %s AND c.status = %s", [challenge_id, Challenge.Status.QUEUED.value], lock=True
        )
        if challenge is None:
            return
        channel = channel_for(challenge.method)
        expired = challenge.expires_at <= timezone.now()
        # The contact may have changed since the challenge was queued: never text a new number.
        unavailable = None if expired else channel.unavailable_reason(challenge.request.person)
        if not expired and not unavailable:
            body = channel.compose(challenge)
            execute(_SECRETS_SQL, [challenge.code_hmac, challenge.link_nonce_hash, challenge.pk])
    if expired:
        with transaction.atomic():
            request_lock(pk=challenge_id)
            _expire(challenge, reason="Expired before it could be sent")
        return
    if unavailable:
        challenge_send_failed(challenge_id=challenge_id, reason=f"Not sent: {unavailable}")
        return
    try:
        message_id = channel.deliver(challenge, body, status_callback=status_callback_url())
    except SendError as exc:
        if not exc.permanent:
            raise
        challenge_send_failed(challenge_id=challenge_id, reason=exc.reason, code=exc.code)
        return
    _sent_record(challenge, message_id)
    early_receipt_apply(message_id)


def _sent_record(challenge: Challenge, message_id: str) -> None:
    """Mark the challenge sent (if it is still queued) with its event, and bump the live view."""
    values = [
        Challenge.Status.SENT.value,
        db_time(timezone.now()),
        message_id,
        challenge.pk,
        Challenge.Status.QUEUED.value,
    ]
    event: dict[str, Any] = {"challenge": challenge.pk, "method": challenge.method}
    if connection.vendor == "postgresql":  # one statement, no transaction around it
        change = [(*_BUMPED, [challenge.request_id]), ("sent", _SENT_AFTER_BUMP_SQL, values)]
        sent = record(EventType.VERIFICATION_CHALLENGE_SENT, challenge.request, change=change, **event)
    else:
        with transaction.atomic():
            bump(challenge.request_id)  # the request's row first (request_lock)
            sent = bool(execute(_SENT_SQL, values))
            if sent:
                record(EventType.VERIFICATION_CHALLENGE_SENT, challenge.request, **event)
    if not sent:  # answered or expired meanwhile; keep the id for delivery callbacks
        Challenge.objects.filter(pk=challenge.pk).update(provider_message_id=message_id)


EARLY_RECEIPT_SECONDS = 600


def early_receipt_apply(message_id: str) -> None:
    """Apply a delivery receipt that arrived before the sending worker saved the message id
    (``challenge_delivery_update`` keeps it: Twilio does not call back twice). Every path
    that sends a challenge's text calls it right after saving the id."""
    early = cache.get(_early_receipt_key(message_id))
    if early is not None:
        cache.delete(_early_receipt_key(message_id))
        challenge_delivery_update(message_id=message_id, message_status=early[0], error_code=early[1])


def _early_receipt_key(message_id: str) -> str:
    return f"validation:early-receipt:{message_id}"


@transaction.atomic
def challenge_send_failed(*, challenge_id: int, reason: str, code: str = "") -> None:
    """The message cannot be sent. A send failure never counts as a failed verification."""
    if not request_lock(pk=challenge_id):
        return
    challenge = Challenge.objects.select_related("request__organization").get(pk=challenge_id)
    failed = Challenge.objects.filter(pk=challenge_id, status=Challenge.Status.QUEUED).update(
        status=Challenge.Status.FAILED, failure_reason=reason[:200]
    )
    if failed:
        bump(challenge.request_id)
        record(
            EventType.VERIFICATION_CHALLENGE_SEND_FAILED,
            challenge.request,
            challenge=challenge_id,
            method=challenge.method,
            error=code,
            reason=reason,
        )


@transaction.atomic
def challenge_delivery_update(*, message_id: str, message_status: str, error_code: str = "") -> bool:
    """Apply a delivery receipt. Returns False when no challenge has this message id.
    Repeats change nothing; an answered challenge keeps its answer."""
    request_lock(provider_message_id=message_id)
    challenge = (
        Challenge.objects.select_for_update(of=("self",))
        .select_related("request__organization")
        .filter(provider_message_id=message_id)
        .first()
    )
    if challenge is None:
        if message_status in ("delivered", "undelivered", "failed"):
            # Twilio can call back before the worker has saved the message id: keep the
            # receipt for challenge_dispatch to apply (Twilio does not send it again).
            cache.set(_early_receipt_key(message_id), (message_status, error_code), EARLY_RECEIPT_SECONDS)
        return False
    now = timezone.now()
    if message_status == "delivered" and challenge.status in (Challenge.Status.SENT, Challenge.Status.UNDELIVERED):
        challenge.status, challenge.delivered_at, challenge.failure_reason = Challenge.Status.DELIVERED, now, ""
        event = EventType.VERIFICATION_CHALLENGE_DELIVERED
    elif message_status in ("undelivered", "failed") and challenge.status in (
        Challenge.Status.QUEUED,
        Challenge.Status.SENT,
        Challenge.Status.DELIVERED,
    ):
        code = int(error_code) if error_code.isascii() and error_code.isdigit() else 0
        challenge.status = Challenge.Status.UNDELIVERED
        challenge.failure_reason = PERMANENT_ERRORS.get(
            code, f"The carrier did not deliver the text (error {code or 'unknown'})"
        )
        event = EventType.VERIFICATION_CHALLENGE_UNDELIVERED
    else:
        return True
    challenge.save(update_fields=["status", "delivered_at", "failure_reason"])
    bump(challenge.request_id)
    record(event, challenge.request, challenge=challenge.pk, method=challenge.method, error=error_code[:10])
    return True


def _expire(challenge: Challenge, *, reason: str) -> None:
    if Challenge.objects.filter(pk=challenge.pk, status__in=Challenge.OPEN_STATUSES).update(
        status=Challenge.Status.EXPIRED, failure_reason=reason
    ):
        bump(challenge.request_id)
        record(
            EventType.VERIFICATION_CHALLENGE_EXPIRED, challenge.request, challenge=challenge.pk, method=challenge.method
        )


def challenge_expire_stale(*, now: datetime) -> int:
    stale = Challenge.objects.select_related("request__organization").filter(
        status__in=Challenge.OPEN_STATUSES, expires_at__lte=now
    )[:1000]
    count = 0
    for challenge in stale:
        with transaction.atomic():
            request_lock(pk=challenge.pk)
            _expire(challenge, reason="No answer in time")
            count += 1
    return count
