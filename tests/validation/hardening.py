"""Helpers for the SMS-reply, email-code and lockout tests."""

import secrets

from audit.models import SecurityEvent
from validation import services
from validation.models import (
    Action,
    Challenge,
    Method,
    PersonVerificationState,
    VerificationPolicy,
    VerificationRequest,
)


def allow(organization, methods, *, action=Action.OTHER, min_methods=1, min_strong=0):
    """Set the organisation's policy for ``action`` directly (the floors are tested elsewhere)."""
    policy = services.policy_for(organization=organization, action=action)
    VerificationPolicy.objects.filter(pk=policy.pk).update(
        allowed_methods=list(methods),
        min_methods=min_methods,
        min_strong_methods=min_strong,
        required_methods=[],
        privileged_extra_methods=0,
    )


def start(technician, person, *, action=Action.OTHER, ticket="INC-ABC"):
    return services.verification_request_create(actor=technician, person=person, action=action, ticket_reference=ticket)


def send(technician, verification, method, capture):
    with capture(execute=True):
        challenge = services.challenge_start(actor=technician, verification=verification, method=method)
    challenge.refresh_from_db()
    return challenge


def reply_challenge(technician, person, capture, *, action=Action.OTHER):
    """A sent SMS-reply challenge on a new request (the policy allows SMS reply alone)."""
    allow(person.organization, [Method.SMS_REPLY, Method.PUSH, Method.EMAIL_CODE], action=action)
    challenge = send(technician, start(technician, person, action=action), Method.SMS_REPLY, capture)
    assert challenge.status == Challenge.Status.SENT and challenge.match_number in range(10, 100)
    return challenge


def new_sid() -> str:
    return "SM" + secrets.token_hex(16)


def other_number(number: int) -> int:
    return 10 + (number - 10 + 1) % 90


def snapshot():
    """Everything a reply may change, as one comparable value."""
    challenges = list(
        Challenge.objects.order_by("pk").values_list("pk", "status", "attempts", "answered_at", "failure_reason")
    )
    requests = list(VerificationRequest.objects.order_by("pk").values_list("pk", "status", "version", "ended_reason"))
    states = list(
        PersonVerificationState.objects.order_by("pk").values_list("person_id", "consecutive_failures", "locked_at")
    )
    events = SecurityEvent.objects.exclude(event_type="verification.webhook_rejected").count()
    return challenges, requests, states, events


def events_of(event_type):
    return list(SecurityEvent.objects.filter(event_type=event_type).order_by("pk"))
