"""Shared pieces of the validation services: errors, events, the live-view version bump."""

from __future__ import annotations

from typing import Any

from django.db.models import F
from django.http import HttpRequest

from accounts.services import ServiceError
from audit.events import ActorKind, EventType
from audit.recorder import security_event_record
from validation.models import VerificationRequest


class VerificationError(ServiceError):
    """A verification step was refused."""


def record(
    event_type: EventType,
    verification: VerificationRequest,
    *,
    actor: Any = None,
    end_user: bool = False,
    request: HttpRequest | None = None,
    **details: Any,
) -> None:
    security_event_record(
        event_type=event_type,
        actor=actor,
        actor_kind=ActorKind.END_USER if end_user else None,
        organization=verification.organization,
        target=verification,
        details={"verification": verification.pk, "person": verification.person_id, **details},
        request=request,
    )


def bump(verification_id: int) -> None:
    """Tell the technician's live view that something changed."""
    VerificationRequest.objects.filter(pk=verification_id).update(version=F("version") + 1)


def request_lock(**challenge: Any) -> bool:
    """Lock the row of the request that the challenge matching ``challenge`` (lookups on
    Challenge, e.g. ``pk=...``) belongs to; False when no challenge matches.

    The lock order everywhere is the person's verification state (``person_state_lock``, on
    paths that may change it), then the request's row, then the challenge's: answers lock the
    request first (``locked_open_request``), so a worker or webhook path that changes a
    challenge and then bumps its request takes the request first too, or each could wait
    for the other (a deadlock PostgreSQL breaks by failing one of them)."""
    lookups = {f"challenges__{name}": value for name, value in challenge.items()}
    return bool(
        VerificationRequest.objects.select_for_update(of=("self",)).filter(**lookups).values_list("pk", flat=True)
    )
