"""Reads of the security event log for auditors, always scoped.

Who sees what: a superuser every event; an auditor or an org admin the events of the
organisations assigned to them (``accounts.selectors.organization_list_for_user``);
anyone else nothing (the pages answer 403). Events without an organisation (sign-ins,
staff accounts) are for superusers only.

Lists are ordered newest first by ``(created_at, id)`` and paged by keyset: a page
continues below (older) or above (newer) the cursor of the last row it showed, so a
deep page costs what the first one does, and nothing ever counts the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied
from django.db import connections, transaction
from django.db.models import Q, QuerySet
from django.db.models.lookups import Exact
from django.http import Http404
from guardian.models import UserObjectPermission

from accounts.models import Organization, Role, User
from accounts.selectors import ORG_CODENAME, organization_list_for_user
from audit.events import EventType
from audit.expressions import SearchText, Subject
from audit.models import SecurityEvent

PAGE_SIZE = 50
SEARCH_MIN_LENGTH = 3  # a trigram index finds nothing shorter without reading all of it
AUDIT_ROLES = (Role.AUDITOR.value, Role.ORG_ADMIN.value)
EVENT_GROUPS = ("auth", "directory", "verification", "access", "action", "audit")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- Who may audit, and which organisations ---------------------------------------------


@dataclass(frozen=True)
class AuditScope:
    """The organisations whose events a user may read; ``None`` means every event."""

    organization_ids: frozenset[int] | None

    @property
    def everything(self) -> bool:
        return self.organization_ids is None

    def covers(self, organization_id: int | None) -> bool:
        return self.organization_ids is None or organization_id in self.organization_ids


def user_may_audit(user: User) -> bool:
    """Superusers, auditors and org admins; not technicians or approvers."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name__in=AUDIT_ROLES).exists()


def audit_scope_for_user(*, user: User) -> AuditScope:
    """The user's scope; PermissionDenied when they may not read the audit log at all."""
    if not user_may_audit(user):
        raise PermissionDenied("Only auditors, org admins and superusers read the audit log.")
    if user.is_superuser:
        return AuditScope(organization_ids=None)
    ids = organization_list_for_user(user=user).values_list("pk", flat=True)
    return AuditScope(organization_ids=frozenset(ids))


def audit_organization_list(*, scope: AuditScope) -> QuerySet[Organization]:
    """Organisations offered in filters and reports."""
    organizations = Organization.objects.filter(active=True)
    if scope.organization_ids is not None:
        organizations = organizations.filter(pk__in=scope.organization_ids)
    return organizations.order_by("name")


def audit_staff_list(*, scope: AuditScope) -> QuerySet[User]:
    """Staff offered as the actor filter: those assigned to an organisation in the scope."""
    if scope.organization_ids is None:
        return User.objects.order_by("email")
    assigned = UserObjectPermission.objects.filter(
        content_type=ContentType.objects.get_for_model(Organization),
        permission__codename=ORG_CODENAME,
        object_pk__in=[str(pk) for pk in scope.organization_ids],
    ).values("user_id")
    return User.objects.filter(pk__in=assigned).order_by("email")


# --- Filters ---------------------------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """What an auditor narrowed the log to. Every field is optional."""

    organization_id: int | None = None
    actor_id: int | None = None
    event_type: str = ""  # a code ("verification.challenge_sent") or a group ("verification.*")
    person_id: int | None = None
    staff_id: int | None = None  # what a staff member did, or what was done to their account
    since: date | None = None
    until: date | None = None  # inclusive
    text: str = ""


def event_type_choices() -> list[tuple[str, str]]:
    """Groups first ("verification.*"), then every code; for the filter form."""
    groups = [(f"{group}.*", f"All {group}.* events") for group in EVENT_GROUPS]
    return groups + [(code, f"{code} — {label}") for code, label in EventType.choices]


def utc_day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _filtered(events: QuerySet[SecurityEvent], f: EventFilter) -> QuerySet[SecurityEvent]:
    if f.organization_id is not None:
        events = events.filter(organization_id=f.organization_id)
    if f.actor_id is not None:
        events = events.filter(actor_id=f.actor_id)
    if f.event_type.endswith(".*"):
        events = events.filter(event_type__startswith=f.event_type[:-1])
    elif f.event_type:
        events = events.filter(event_type=f.event_type)
    if f.person_id is not None:
        events = events.filter(Exact(Subject(), f"accounts.person:{f.person_id}"))
    if f.staff_id is not None:
        events = events.filter(Q(actor_id=f.staff_id) | Q(Exact(Subject(), f"accounts.user:{f.staff_id}")))
    if f.since is not None:
        events = events.filter(created_at__gte=utc_day_start(f.since))
    if f.until is not None:
        events = events.filter(created_at__lt=utc_day_start(f.until + timedelta(days=1)))
    needle = " ".join(f.text.lower().split())
    if len(needle) >= SEARCH_MIN_LENGTH:
        events = events.alias(search_text=SearchText()).filter(search_text__contains=needle)
    return events


def security_event_list(*, scope: AuditScope, event_filter: EventFilter) -> QuerySet[SecurityEvent]:
    """The events a filter selects in the scope, newest first: what a list shows page by
    page and what an export streams whole."""
    events = SecurityEvent.objects.all()
    if scope.organization_ids is not None:
        if not scope.organization_ids:
            return SecurityEvent.objects.none()
        events = events.filter(organization_id__in=sorted(scope.organization_ids))
    return _filtered(events, event_filter).order_by("-created_at", "-id")


def security_event_get(*, scope: AuditScope, pk: int) -> SecurityEvent:
    """One event; Http404 when it does not exist or lies outside the scope."""
    event = SecurityEvent.objects.select_related("link").filter(pk=pk).first()
    if event is None or not scope.covers(event.organization_id):
        raise Http404("No such event")
    return event


# --- Keyset pages ----------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """A position in the newest-first order: the ``(created_at, id)`` of one event."""

    created_at: datetime
    id: int

    @classmethod
    def of(cls, event: SecurityEvent) -> Cursor:
        return cls(created_at=event.created_at, id=event.pk)

    @classmethod
    def parse(cls, text: str) -> Cursor:
        """From ``"<microseconds since 1970>-<id>"``; ValueError when malformed."""
        micros, _, pk = text.partition("-")
        if not micros.isdigit() or not pk.isdigit() or len(micros) > 18 or len(pk) > 18:
            raise ValueError("Not a cursor")
        return cls(created_at=_EPOCH + timedelta(microseconds=int(micros)), id=int(pk))

    def __str__(self) -> str:
        return f"{(self.created_at - _EPOCH) // timedelta(microseconds=1)}-{self.id}"


@dataclass(frozen=True)
class EventPage:
    events: list[SecurityEvent]
    older: Cursor | None  # continue with ?before=older
    newer: Cursor | None  # continue with ?after=newer


def _older_than(cursor: Cursor) -> Q:
    # The redundant first term lets a (created_at, ...) index range-scan to the cursor.
    return Q(created_at__lte=cursor.created_at) & (Q(created_at__lt=cursor.created_at) | Q(id__lt=cursor.id))


def _newer_than(cursor: Cursor) -> Q:
    return Q(created_at__gte=cursor.created_at) & (Q(created_at__gt=cursor.created_at) | Q(id__gt=cursor.id))


def security_event_page(
    *, events: QuerySet[SecurityEvent], before: Cursor | None = None, after: Cursor | None = None, size: int = PAGE_SIZE
) -> EventPage:
    """One page of ``events`` (ordered newest first): the newest ``size``, or the ``size``
    just older than ``before``, or just newer than ``after``. Reads ``size + 1`` rows."""
    if after is not None:
        rows = _planned_per_value(events.filter(_newer_than(after)).order_by("created_at", "id")[: size + 1])
        if len(rows) > size:
            rows = rows[:size][::-1]
            return EventPage(events=rows, older=Cursor.of(rows[-1]), newer=Cursor.of(rows[0]))
        before = None  # reached the newest: show the first page, full
    if before is not None:
        events = events.filter(_older_than(before))
    rows = _planned_per_value(events[: size + 1])
    older = Cursor.of(rows[size - 1]) if len(rows) > size else None
    rows = rows[:size]
    newer = Cursor.of(rows[0]) if before is not None and rows else None
    return EventPage(events=rows, older=older, newer=newer)


def _planned_per_value(events: QuerySet[SecurityEvent]) -> list[SecurityEvent]:
    """The rows, with PostgreSQL planning the query for these very values.

    With prepared statements (DATABASE_PREPARED_STATEMENTS), PostgreSQL switches a
    statement to one generic plan after a few runs. One plan cannot suit both a common
    event type (walk the time index) and a rare one (its own index, then sort): the generic
    plan for a rare type read the whole time index, 250 ms instead of 4 (docs/benchmarks.md).
    """
    connection = connections[events.db]
    if connection.vendor != "postgresql":
        return list(events)
    with transaction.atomic(using=events.db), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
        return list(events)
