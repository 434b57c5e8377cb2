"""Inbound texts: a person's reply to an SMS-reply challenge (``YES <number>`` or ``NO``).

Which challenge a reply answers: the open SMS-reply challenges whose person has the
sender's number as phone of record (exact E.164 match). One phone can be of record in
several organisations (an MSP's clients), so a ``YES`` must name a number that exactly
one of them shows (numbers are chosen unique per phone, ``reply_match_number``);
otherwise nothing changes. ``NO`` reports fraud on each of them (or only on the one
whose number it names): locking too much is the safe side.

Each MessageSid is stored once (a unique row, in the same transaction as its effect),
so a replayed webhook changes nothing, in any process. The body is never stored, logged
or recorded.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from validation.channels import channel_for
from validation.models import Challenge, InboundMessage, Method, VerificationRequest
from validation.services.answers import attempt_take, challenge_approve, challenge_wrong
from validation.services.lockout import VIA_SMS_REPLY, fraud_report
from validation.services.requests import person_state_lock

logger = logging.getLogger(__name__)

E164 = re.compile(r"\+[1-9][0-9]{6,14}", re.ASCII)
INBOUND_SID_PATTERN = re.compile(r"(?:SM|MM)[0-9a-f]{32}", re.ASCII)  # MM: a picture message
_YES = re.compile(r"\s*yes\s*([0-9]{2})\s*", re.ASCII | re.IGNORECASE)
_NO = re.compile(r"\s*no(?:\s*([0-9]{2}))?\s*", re.ASCII | re.IGNORECASE)
# Carrier and Twilio keywords (opt-out and help): Twilio answers them itself.
_KEYWORDS = frozenset({"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "start", "unstop", "help", "info"})

APPROVED, WRONG_NUMBER, FRAUD = "approved", "wrong_number", "fraud"
NOT_UNDERSTOOD, AMBIGUOUS, NO_OPEN_REQUEST = "not_understood", "ambiguous", "no_open_request"
DUPLICATE, KEYWORD = "duplicate", "keyword"

REPLY_TEXTS = {
    APPROVED: "Thank you: confirmed. You can tell the technician you replied.",
    WRONG_NUMBER: "That number does not match, so this request was refused. If you are on a call with the "
    "helpdesk, ask them to send a new one.",
    FRAUD: "Thank you for reporting this. The request was stopped and helpdesk verification is locked for you "
    "until an administrator has checked what happened. Nothing on your account changed.",
    NOT_UNDERSTOOD: "Reply YES and the 2-digit number the technician reads out to you, or NO if you did not ask "
    "the helpdesk for anything. Nothing was changed.",
    AMBIGUOUS: "More than one helpdesk request is waiting for this phone. Reply YES and the 2-digit number the "
    "technician reads out to you. Nothing was changed.",
}


@dataclass(frozen=True)
class Reply:
    yes: bool
    number: int | None


def reply_parse(body: str) -> Reply | None:
    """``YES 42``, `` yes42 ``, ``NO``, ``no 42``; anything else is None."""
    if match := _YES.fullmatch(body):
        return Reply(yes=True, number=int(match.group(1)))
    if match := _NO.fullmatch(body):
        return Reply(yes=False, number=int(match.group(1)) if match.group(1) else None)
    return None


def reply_text(outcome: str) -> str:
    """What the portal texts back for an outcome; empty for none (strangers, replays)."""
    return REPLY_TEXTS.get(outcome, "")


def sms_reply_receive(*, message_sid: str, from_number: str, body: str, request: HttpRequest | None = None) -> str:
    """Apply one inbound text and return its outcome. A MessageSid seen before is a
    DUPLICATE and changes nothing."""
    with transaction.atomic():
        try:
            with transaction.atomic():
                inbound = InboundMessage.objects.create(message_sid=message_sid)
        except IntegrityError:
            outcome = DUPLICATE
        else:
            outcome, challenge = _apply(from_number=from_number, body=body, request=request)
            inbound.outcome, inbound.challenge = outcome, challenge
            inbound.save(update_fields=["outcome", "challenge"])
    logger.info("Inbound text %s: %s", message_sid, outcome)
    return outcome


def _open_challenges(from_number: str) -> list[Challenge]:
    now = timezone.now()
    candidates = (
        Challenge.objects.filter(
            method=Method.SMS_REPLY,
            status__in=Challenge.ANSWERABLE_STATUSES,
            expires_at__gt=now,
            request__status=VerificationRequest.Status.PENDING,
            request__expires_at__gt=now,
            request__person__phone=from_number,
        )
        .select_related("request__person")
        .order_by("pk")
    )
    # A phone of record changed since the text was sent cannot answer it.
    return [c for c in candidates if channel_for(Method.SMS_REPLY).unavailable_reason(c.request.person) is None]


def _apply(*, from_number: str, body: str, request) -> tuple[str, Challenge | None]:
    if not E164.fullmatch(from_number):
        return NO_OPEN_REQUEST, None
    candidates = _open_challenges(from_number)
    if not candidates:
        return NO_OPEN_REQUEST, None
    reply = reply_parse(body)
    if reply is None:
        return (KEYWORD if body.strip().lower() in _KEYWORDS else NOT_UNDERSTOOD), None
    named = [c for c in candidates if reply.number is not None and c.match_number == reply.number]
    if not reply.yes:
        targets = named if len(named) == 1 else candidates
        reported = [c for c in targets if _report(c, request)]
        return (FRAUD, reported[0]) if reported else (NO_OPEN_REQUEST, None)
    if len(named) == 1:
        return _answer(named[0], reply.number, request), named[0]
    if not named and len(candidates) == 1:
        return _answer(candidates[0], reply.number, request), candidates[0]
    return AMBIGUOUS, None


def _lock_rows(challenge: Challenge) -> tuple[Challenge, VerificationRequest] | None:
    """The request and challenge, row-locked in that order (after the person's state), if
    still answerable."""
    person_state_lock(request_id=challenge.request_id)
    verification = (
        VerificationRequest.objects.select_for_update(of=("self",))
        .select_related("person", "organization", "technician")
        .get(pk=challenge.request_id)
    )
    challenge = Challenge.objects.select_for_update().get(pk=challenge.pk)
    now = timezone.now()
    answerable = (
        challenge.status in Challenge.ANSWERABLE_STATUSES
        and challenge.expires_at > now
        and verification.status == VerificationRequest.Status.PENDING
        and verification.expires_at > now
    )
    return (challenge, verification) if answerable else None


def _answer(challenge: Challenge, number: int | None, request) -> str:
    locked = _lock_rows(challenge)
    if locked is None or not attempt_take(challenge.pk):
        return NO_OPEN_REQUEST
    challenge, verification = locked
    if number == challenge.match_number:
        challenge_approve(challenge, verification, end_user=True, request=request)
        return APPROVED
    challenge_wrong(
        challenge,
        verification,
        reason="The person replied with the wrong number",
        final=True,
        end_user=True,
        request=request,
    )
    return WRONG_NUMBER


def _report(challenge: Challenge, request) -> bool:
    locked = _lock_rows(challenge)
    if locked is None:
        return False
    challenge, verification = locked
    fraud_report(verification=verification, challenge=challenge, via=VIA_SMS_REPLY, request=request)
    return True
