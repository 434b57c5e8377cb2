"""Shared pieces of the validation services: errors, events, the live-view version bump."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.http import HttpRequest

from accounts.rows import JoinedRead, column_values, execute, lock_clause, possible_key
from accounts.services import ServiceError
from audit.events import ActorKind, EventType
from audit.recorder import security_event_record
from validation.models import Challenge, VerificationRequest


class VerificationError(ServiceError):
    """A verification step was refused."""


def record(
    event_type: EventType,
    verification: VerificationRequest,
    *,
    actor: Any = None,
    end_user: bool = False,
    request: HttpRequest | None = None,
    change: Sequence[tuple[str, str, Sequence[Any]]] = (),
    **details: Any,
) -> bool:
    """Record the event of a change to ``verification`` (``change``: see
    ``security_event_record``; False when it changed nothing and no event was recorded)."""
    return (
        security_event_record(
            event_type=event_type,
            actor=actor,
            actor_kind=ActorKind.END_USER if end_user else None,
            organization=verification.organization,
            target=verification,
            details={"verification": verification.pk, "person": verification.person_id, **details},
            request=request,
            change=change,
        )
        is not None
    )


def record_changes(
    event_type: EventType,
    verification: VerificationRequest,
    *,
    changes: Sequence[tuple[str, Sequence[Any]]],
    **kwargs: Any,
) -> bool:
    """Run ``changes`` (updates as (statement, values), independent of each other: each
    touches rows no other one does, and the caller holds them all locked) and record their
    event, only when the last one changed a row; False when it changed none, and then
    nothing was recorded (the updates before it are made either way). One statement
    where the database has data-modifying WITH (PostgreSQL: ``record``'s ``change``), one
    per update and the event's elsewhere. ``kwargs`` are ``record``'s."""
    if connection.vendor == "postgresql":
        *first, (last, values) = changes
        parts = [(f"change_{n}", sql, part_values) for n, (sql, part_values) in enumerate(first)]
        parts.append(("changed", f"{last} RETURNING 1", values))
        return record(event_type, verification, change=parts, **kwargs)
    changed = [execute(sql, values) for sql, values in changes]
    return bool(changed[-1]) and record(event_type, verification, **kwargs)


def bump(verification_id: int) -> None:
    """Tell the technician's live view that something changed (written out: every change
    of a request or its challenges asks it)."""
    execute(*bump_statement(verification_id))


def bump_statement(verification_id: int) -> tuple[str, list[int]]:
    """``bump``'s statement and values, to run with another (``accounts.rows.insert``'s ``also``)."""
    return BUMP_SQL, [verification_id]


def request_lock(*, pk: int | None = None, provider_message_id: str | None = None) -> bool:
    """Lock the row of the request that the challenge with this ``pk`` (or provider message
    id) belongs to; False when no challenge matches.

    The lock order everywhere is the person's verification state (``person_state_lock``, on
    paths that may change it), then the request's row, then the challenge's: answers lock the
    request first (``locked_open_request``), so a worker or webhook path that changes a
    challenge and then bumps its request takes the request first too, or each could wait
    for the other (a deadlock PostgreSQL breaks by failing one of them)."""
    if (pk is None) == (provider_message_id is None):
        raise TypeError("request_lock takes one of pk and provider_message_id")
    if pk is not None and not possible_key(pk):
        return False
    column, value = ("id", pk) if pk is not None else ("provider_message_id", provider_message_id)
    return bool(column_values(_REQUEST_LOCK_SQL.format(column=column) + lock_clause("r"), [value]))


REQUESTS, CHALLENGES = VerificationRequest._meta.db_table, Challenge._meta.db_table
OPEN_VALUES = [status.value for status in Challenge.OPEN_STATUSES]  # for written-out statements
CHALLENGE_ROWS = JoinedRead(Challenge, "c")  # the services' written-out reads of challenges
BUMP_SQL = f"UPDATE {REQUESTS} SET version = version + 1 WHERE id = %s"  # noqa: S608 - the model's table
_REQUEST_LOCK_SQL = (
    f"SELECT r.id FROM {REQUESTS} r JOIN {CHALLENGES} c ON c.request_id = r.id"  # noqa: S608 - the models' tables
    " WHERE c.{column} = %s"
)
