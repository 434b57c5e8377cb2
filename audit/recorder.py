"""The one function every app uses to record a security event.

It imports no other app: actor, organisation and target are read by duck typing
(``pk`` and ``str()``), so accounts, validation and access can all call it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connections, router
from django.http import HttpRequest
from django.utils import timezone

from audit.chain import seal_after_commit
from audit.events import ActorKind, EventType
from audit.models import SecurityEvent

# Keys that must never reach the log, whatever a caller passes.
_FORBIDDEN_DETAIL_KEYS = {"code", "password", "token", "secret", "link", "body", "otp", "key"}


def request_id_for(request: HttpRequest | None) -> str:
    if request is None:
        return ""
    rid = getattr(request, "request_id", None)
    if rid is None:
        rid = uuid.uuid4().hex
        request.request_id = rid  # type: ignore[attr-defined]
    return rid


def source_ip_for(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    if getattr(settings, "AUDIT_TRUST_X_FORWARDED_FOR", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            return forwarded.split(",")[0].strip() or None
    return request.META.get("REMOTE_ADDR") or None


def _forbidden_keys(value: Any) -> set[str]:
    """Secret-ish keys anywhere in the details, nested dicts and lists included."""
    if isinstance(value, dict):
        found = _FORBIDDEN_DETAIL_KEYS.intersection(str(k).lower() for k in value)
        for item in value.values():
            found |= _forbidden_keys(item)
        return found
    if isinstance(value, list | tuple):
        return set().union(*(_forbidden_keys(item) for item in value))
    return set()


def _label(obj: Any) -> str:
    return str(obj)[:255] if obj is not None else ""


def security_event_record(
    *,
    event_type: EventType,
    actor: Any = None,
    actor_kind: ActorKind | None = None,
    organization: Any = None,
    target: Any = None,
    details: dict | None = None,
    request: HttpRequest | None = None,
    change: Sequence[tuple[str, str, Sequence[Any]]] = (),
) -> SecurityEvent | None:
    """Record one event. Call it inside the transaction that makes the change: the event
    exists exactly when the change does. It gets its place in the hash chain once that
    transaction commits; until then no other writer waits for it.

    ``change``, on PostgreSQL only: the change itself, as written-out data-modifying
    statements (name, statement, values) that run in the event's INSERT as WITH parts, in
    order (each may read the ones before it by name). The event is recorded only when the
    last part returns a row; None when it returns none. One statement is atomic on its own:
    the caller needs no transaction around it."""
    details = dict(details or {})
    leaked = sorted(_forbidden_keys(details))
    if leaked:
        raise ValueError(f"Secrets never go into security events: {leaked}")
    if actor_kind is None:
        actor_kind = ActorKind.STAFF if actor is not None else ActorKind.SYSTEM
    user_agent = request.META.get("HTTP_USER_AGENT", "")[:400] if request is not None else ""
    event = SecurityEvent(
        event_type=event_type,
        actor_kind=actor_kind,
        actor_id=getattr(actor, "pk", None),
        actor_label=_label(actor) if actor is not None else actor_kind.label,
        organization_id=getattr(organization, "pk", None),
        organization_label=_label(organization),
        target_type=target._meta.label_lower if target is not None and hasattr(target, "_meta") else "",
        target_id=str(getattr(target, "pk", "") or ""),
        target_label=_label(target),
        request_id=request_id_for(request),
        source_ip=source_ip_for(request),
        user_agent=user_agent,
        details=details,
        created_at=timezone.now(),
    )
    if not _insert(event, change):
        return None
    # Chained right after the caller's transaction commits (audit.chain), never inside it.
    seal_after_commit()
    return event


def _insert(event: SecurityEvent, change: Sequence[tuple[str, str, Sequence[Any]]] = ()) -> bool:
    """``event.save()`` as one written-out INSERT ... RETURNING: every state change records
    an event, and the ORM's save machinery cost more CPU than the statement. The values go
    through each field's own preparation for the database, as in a save. With ``change``
    (``security_event_record``): False when its last part changed nothing."""
    using = router.db_for_write(SecurityEvent)
    connection = connections[using]
    if change and connection.vendor != "postgresql":
        raise ValueError("An event's change runs in its INSERT on PostgreSQL only")
    if not connection.features.can_return_columns_from_insert:
        event.save(using=using)
        return True
    values = [field.get_db_prep_save(field.pre_save(event, True), connection) for field in _INSERTED]
    sql = _INSERT_SQL
    if change:
        parts = ", ".join(f"{name} AS ({statement})" for name, statement, _ in change)
        held_back = f"WHERE EXISTS (SELECT 1 FROM {change[-1][0]})"  # noqa: S608 - the caller's part names
        sql = f"WITH {parts} {_insert_select_sql(connection)} {held_back} {_RETURNING}"
        values = [value for _, _, part_values in change for value in part_values] + values
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return False
    event.pk = row[0]
    event._state.adding = False
    event._state.db = using
    return True


_INSERTED = [field for field in SecurityEvent._meta.concrete_fields if not field.primary_key]
_COLUMNS = ", ".join(f'"{field.column}"' for field in _INSERTED)
_RETURNING = f'RETURNING "{SecurityEvent._meta.pk.column}"'
_INSERT_SQL = (
    f"INSERT INTO {SecurityEvent._meta.db_table} ({_COLUMNS}) VALUES ({', '.join(['%s'] * len(_INSERTED))})"  # noqa: S608
    f" {_RETURNING}"
)


_INSERT_SELECT_SQL: dict[str, str] = {}  # per database vendor


def _insert_select_sql(connection) -> str:
    """The INSERT of a row given as a SELECT (which a WHERE can then hold back), each value
    cast to its column's type: a SELECT list does not take the types from the table."""
    if connection.vendor not in _INSERT_SELECT_SQL:
        values = ", ".join(f"%s::{field.cast_db_type(connection)}" for field in _INSERTED)
        _INSERT_SELECT_SQL[connection.vendor] = (
            f"INSERT INTO {SecurityEvent._meta.db_table} ({_COLUMNS}) SELECT {values}"  # noqa: S608 - model's names
        )
    return _INSERT_SELECT_SQL[connection.vendor]
