"""Shared pieces of the access services: errors, events, input checks, deferred tasks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.http import HttpRequest

from accounts.services import ServiceError
from audit.events import EventType
from audit.recorder import security_event_record
from validation.services.requests import TICKET_PATTERN

JUSTIFICATION_MIN = 10
JUSTIFICATION_MAX = 2000


class AccessError(ServiceError):
    """An access step was refused."""


class SelfApprovalError(AccessError):
    """The requester tried to approve (or deny) their own request."""


class ReauthenticationRequired(AccessError):
    """The role needs a fresh MFA step: send the technician through allauth's
    ``mfa_reauthenticate`` page and call the service again with the new time."""


def record(
    event_type: EventType,
    *,
    target: Any,
    organization: Any,
    actor: Any = None,
    request: HttpRequest | None = None,
    **details: Any,
) -> None:
    security_event_record(
        event_type=event_type,
        actor=actor,
        organization=organization,
        target=target,
        details=details,
        request=request,
    )


def clean_ticket(ticket_reference: str) -> str:
    ticket_reference = (ticket_reference or "").strip()
    if not TICKET_PATTERN.match(ticket_reference):
        raise AccessError("Enter the ticket reference: letters, digits and # . _ / : - only, at most 64.")
    return ticket_reference


def clean_justification(justification: str) -> str:
    justification = (justification or "").strip()
    if not JUSTIFICATION_MIN <= len(justification) <= JUSTIFICATION_MAX:
        raise AccessError(f"Explain why you need this access ({JUSTIFICATION_MIN} to {JUSTIFICATION_MAX} characters).")
    return justification


def seconds(value) -> int:
    return int(value.total_seconds())


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def after_commit(task, *args: Any, eta: datetime | None = None) -> None:
    """Enqueue ``task`` once the transaction commits (never for a rolled-back row)."""
    if eta is None:
        transaction.on_commit(lambda: task.apply_async(args=args))
    else:
        transaction.on_commit(lambda: task.apply_async(args=args, eta=eta))
