"""The Just-In-Time authorization check. This is the only check of JIT privilege.

A technician may perform a helpdesk action in an organisation only while one of their
Grant rows there is in force *according to the database's clock*:

    starts_at <= now() < expires_at  and  revoked_at IS NULL

and the grant's role carries the action (and covers privileged people when the target
person is privileged). The decision reads the grant rows themselves in one query on the
``grant_authorization`` index; nothing else is consulted:

- not the django-guardian object permissions (``access.mirror``): they mirror grants for
  listings and the admin and may lag behind by up to the cleanup lag;
- not Celery: the expiry task and the beat sweep only clean the mirror and notify. With
  the worker stopped, an expired grant still allows nothing, because ``now()`` moved on;
- not the web server's clock: ``now()`` is the database's (``django.db.models.functions.Now``),
  so every web process and worker agrees on the instant a grant ends.

The check does not look at organisation assignment or caller verification; the gated
actions check those too (``accounts.selectors.user_works_on``,
``validation.services.verification_consume``).
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import QuerySet
from django.db.models.functions import Now

from access import params
from access.models import Grant
from accounts.models import Organization, User


def _in_force(*, technician: User, organization: Organization, privileged: bool, at: datetime | None) -> QuerySet:
    now = Now() if at is None else at
    grants = Grant.objects.order_by().filter(
        technician_id=technician.pk,
        organization_id=organization.pk,
        revoked_at__isnull=True,
        starts_at__lte=now,
        expires_at__gt=now,
    )
    if privileged:
        grants = grants.filter(role__covers_privileged=True)
    return grants


def _may_hold_grants(technician: User, organization: Organization, action: str) -> bool:
    return (
        technician.is_authenticated
        and technician.is_active
        and organization.active
        and action in params.GRANTABLE_ACTIONS
    )


def grant_allows(
    *, technician: User, organization: Organization, action: str, privileged: bool = False, at: datetime | None = None
) -> bool:
    """Whether ``technician`` may perform ``action`` in ``organization`` right now, on a
    person who is ``privileged`` or not. One query (none when the answer is known without).

    ``at`` replaces the database's clock with a fixed instant. It exists for tests and
    reports ("was this allowed at 14:02?"); request handling never passes it.
    """
    if not _may_hold_grants(technician, organization, action):
        return False
    # A technician holds at most a few grants in one organisation: the actions of each
    # are compared here rather than with JSON operators that SQLite lacks.
    return any(action in (actions or []) for actions in granted_actions(technician, organization, privileged, at))


def granted_actions(technician: User, organization: Organization, privileged: bool, at: datetime | None) -> QuerySet:
    """The query ``grant_allows`` runs: the action lists of the grants in force."""
    rows = _in_force(technician=technician, organization=organization, privileged=privileged, at=at)
    return rows.values_list("role__actions", flat=True)


def grant_allowing(
    *, technician: User, organization: Organization, action: str, privileged: bool = False, at: datetime | None = None
) -> Grant | None:
    """The grant in force that allows the action (the one lasting longest when several do),
    with its role loaded; ``None`` when none does. Same rule and one query, like ``grant_allows``.
    Gated actions record the grant's id in their security event."""
    if not _may_hold_grants(technician, organization, action):
        return None
    rows = _in_force(technician=technician, organization=organization, privileged=privileged, at=at)
    for grant in rows.select_related("role").order_by("-expires_at", "-id"):
        if action in (grant.role.actions or []):
            return grant
    return None
