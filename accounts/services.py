"""Writes for staff, organisations and the directory. Each takes ``actor``, runs in a
transaction and records its security event in that same transaction."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from accounts import selectors
from accounts.models import Organization, Person, Role, User
from accounts.selectors import ORG_PERMISSION
from audit.events import EventType
from audit.recorder import security_event_record

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """A service refused a step. ``message`` is safe to show to the user. Each app's
    services raise their own subclass (``VerificationError``, ``AccessError``, ...)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@transaction.atomic
def user_create(
    *,
    actor: User | None,
    email: str,
    full_name: str = "",
    password: str | None = None,
    roles: tuple[Role, ...] = (),
    is_staff: bool = False,
    is_superuser: bool = False,
) -> User:
    """A staff user with a verified email address; they enrol MFA at first sign-in."""
    user = User.objects.create_user(
        email, password, full_name=full_name, is_staff=is_staff or is_superuser, is_superuser=is_superuser
    )
    if roles:
        user.groups.add(*Group.objects.filter(name__in=[r.value for r in roles]))
    EmailAddress.objects.create(user=user, email=user.email, primary=True, verified=True)
    security_event_record(
        event_type=EventType.AUTH_STAFF_CREATED,
        actor=actor,
        target=user,
        details={"roles": sorted(r.value for r in roles), "superuser": is_superuser},
    )
    return user


@transaction.atomic
def organization_create(*, actor: User | None, name: str, slug: str, time_zone: str = "UTC") -> Organization:
    organization = Organization.objects.create(name=name, slug=slug, time_zone=time_zone)
    security_event_record(
        event_type=EventType.DIRECTORY_ORGANIZATION_CREATED, actor=actor, organization=organization, target=organization
    )
    return organization


@transaction.atomic
def organization_assign_staff(*, actor: User | None, organization: Organization, user: User) -> None:
    """Let ``user`` work on ``organization``'s people (a django-guardian object permission)."""
    assign_perm(ORG_PERMISSION, user, organization)
    selectors.organization_scope_forget(user)
    security_event_record(
        event_type=EventType.DIRECTORY_STAFF_ASSIGNED, actor=actor, organization=organization, target=user
    )


@transaction.atomic
def organization_unassign_staff(*, actor: User | None, organization: Organization, user: User) -> None:
    remove_perm(ORG_PERMISSION, user, organization)
    selectors.organization_scope_forget(user)
    security_event_record(
        event_type=EventType.DIRECTORY_STAFF_UNASSIGNED, actor=actor, organization=organization, target=user
    )


# --- Admin-facing writes: staff accounts, organisations and directory entries ---------

STAFF_EDITABLE_FIELDS = frozenset({"full_name", "is_active", "is_staff", "is_superuser"})
ORGANIZATION_EDITABLE_FIELDS = frozenset({"name", "slug", "time_zone", "active"})
PERSON_EDITABLE_FIELDS = frozenset(
    {"organization", "employee_id", "full_name", "email", "phone", "department", "manager", "privileged"}
)
PERSON_CONTACT_FIELDS = ("email", "phone")


def _reject_unknown_fields(data: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(data) - allowed
    if unknown:
        raise ValueError(f"Not editable here: {sorted(unknown)}")


def _changed_fields(instance: Any, data: dict[str, Any], allowed: frozenset[str]) -> list[str]:
    _reject_unknown_fields(data, allowed)
    return sorted(name for name, value in data.items() if getattr(instance, name) != value)


@transaction.atomic
def user_update(
    *,
    actor: User | None,
    user: User,
    data: dict[str, Any],
    groups: Iterable[Group] | None = None,
    permissions: Iterable[Permission] | None = None,
) -> User:
    """Change a staff user's name, flags, groups or model permissions (``None``: leave as is).

    Records ``auth.staff_changed`` with the changed field names and the resulting
    flags and groups, so privilege changes are always in the log.
    """
    user = User.objects.select_for_update().get(pk=user.pk)
    changed = _changed_fields(user, data, STAFF_EDITABLE_FIELDS)
    if "is_active" in changed and user.locked_at is not None:
        raise ValueError("This account is locked for inactivity: unlock it with a reason instead.")
    for name in changed:
        setattr(user, name, data[name])
    saved = list(changed)
    if "is_active" in changed and user.is_active:
        user.unlocked_at = timezone.now()  # reopened: the inactivity clock restarts, as at an unlock
        saved.append("unlocked_at")
    if saved:
        user.save(update_fields=saved)
    if groups is not None and set(groups) != set(user.groups.all()):
        user.groups.set(groups)
        changed.append("groups")
    if permissions is not None and set(permissions) != set(user.user_permissions.all()):
        user.user_permissions.set(permissions)
        changed.append("user_permissions")
    if changed:
        security_event_record(
            event_type=EventType.AUTH_STAFF_CHANGED,
            actor=actor,
            target=user,
            details={
                "fields": changed,
                "is_active": user.is_active,
                "is_staff": user.is_staff,
                "is_superuser": user.is_superuser,
                "groups": sorted(user.groups.values_list("name", flat=True)),
            },
        )
    return user


@transaction.atomic
def organization_update(*, actor: User | None, organization: Organization, data: dict[str, Any]) -> Organization:
    """Rename, re-slug, move time zone or (de)activate; an inactive organisation is hidden everywhere."""
    organization = Organization.objects.select_for_update().get(pk=organization.pk)
    changed = _changed_fields(organization, data, ORGANIZATION_EDITABLE_FIELDS)
    if changed:
        for name in changed:
            setattr(organization, name, data[name])
        organization.save(update_fields=changed)
        security_event_record(
            event_type=EventType.DIRECTORY_ORGANIZATION_UPDATED,
            actor=actor,
            organization=organization,
            target=organization,
            details={"fields": changed, "active": organization.active},
        )
    return organization


@transaction.atomic
def person_create(*, actor: User | None, organization: Organization, data: dict[str, Any]) -> Person:
    """A directory entry entered by hand. ``data`` holds already-validated field values
    (phone in E.164); the organisation is checked by the caller's scoping."""
    _reject_unknown_fields(data, PERSON_EDITABLE_FIELDS - {"organization"})
    person = Person.objects.create(organization=organization, **data)
    security_event_record(
        event_type=EventType.DIRECTORY_PERSON_CREATED,
        actor=actor,
        organization=organization,
        target=person,
        details={"privileged": person.privileged, "channels": [f for f in PERSON_CONTACT_FIELDS if getattr(person, f)]},
    )
    return person


@transaction.atomic
def person_update(*, actor: User | None, person: Person, data: dict[str, Any]) -> Person:
    """Apply already-validated ``data`` to ``person``, compared with the stored row.

    A changed email or phone of record stamps ``contact_changed_at`` and records
    ``directory.person_contact_changed`` (verification policies distrust a fresh
    contact); any other change records ``directory.person_updated``. Values stay out
    of the log: only field names, and the privileged flag's new value.
    """
    person = Person.objects.select_for_update().get(pk=person.pk)
    changed = _changed_fields(person, data, PERSON_EDITABLE_FIELDS)
    if not changed:
        return person
    now = timezone.now()
    for name in changed:
        setattr(person, name, data[name])
    person.updated_at = now
    contact = [name for name in changed if name in PERSON_CONTACT_FIELDS]
    other = [name for name in changed if name not in PERSON_CONTACT_FIELDS]
    if contact:
        person.contact_changed_at = now
    person.save()
    if contact:
        security_event_record(
            event_type=EventType.DIRECTORY_PERSON_CONTACT_CHANGED,
            actor=actor,
            organization=person.organization,
            target=person,
            details={"fields": contact},
        )
    if other:
        details: dict[str, Any] = {"fields": other}
        if "privileged" in other:
            details["privileged"] = person.privileged
        security_event_record(
            event_type=EventType.DIRECTORY_PERSON_UPDATED,
            actor=actor,
            organization=person.organization,
            target=person,
            details=details,
        )
    return person


@transaction.atomic
def person_delete(*, actor: User | None, person: Person) -> None:
    """Remove a directory entry; their direct reports keep no manager."""
    security_event_record(
        event_type=EventType.DIRECTORY_PERSON_DELETED,
        actor=actor,
        organization=person.organization,
        target=person,
        details={"employee_id": person.employee_id},
    )
    person.delete()


# --- Inactive staff accounts: locked by beat, unlocked by an org admin with a reason --------

UNLOCK_REASON_MIN = 5
UNLOCK_REASON_MAX = 200


class UnlockError(ServiceError):
    """An unlock was refused."""


def inactivity_cutoff(now: datetime) -> datetime:
    """Accounts whose last use is at or before this instant are due to be locked."""
    return now - timedelta(days=settings.STAFF_INACTIVE_LOCK_DAYS)


@transaction.atomic
def user_lock_inactive(*, user_id: int) -> bool:
    """Lock one account unused for STAFF_INACTIVE_LOCK_DAYS (no sign-in since, nor creation or
    unlock): ``is_active`` off, so allauth refuses the sign-in and any session is anonymous at
    its next request, and ``locked_at`` set, so an org admin can unlock it with a reason.
    Re-checks under the row lock (a sign-in may have happened since the sweep listed it).
    A superuser is locked too, unless it is the last active superuser: the portal always
    keeps one. Records ``auth.staff_locked``; the user is emailed after commit.
    Returns whether it locked."""
    now = timezone.now()
    user = selectors.staff_inactive_since(cutoff=inactivity_cutoff(now)).select_for_update().filter(pk=user_id).first()
    if user is None:
        return False
    if user.is_superuser:
        # Lock every active superuser's row, so two last superusers are never locked at once.
        others = [u.pk for u in User.objects.select_for_update().filter(is_active=True, is_superuser=True)]
        if set(others) <= {user.pk}:
            logger.warning("Not locking %s: the last active superuser (unused since before %s)", user.pk, now)
            return False
    user.is_active = False
    user.locked_at = now
    user.save(update_fields=["is_active", "locked_at"])
    last_use = max(t for t in (user.last_login, user.date_joined, user.unlocked_at) if t is not None)
    security_event_record(
        event_type=EventType.AUTH_STAFF_LOCKED,
        target=user,
        details={
            "days": settings.STAFF_INACTIVE_LOCK_DAYS,
            "last_use": last_use.isoformat(),
            "never_signed_in": user.last_login is None,
            "organizations": selectors.assigned_organization_ids(user=user),
        },
    )
    from accounts.tasks import staff_lock_notice

    transaction.on_commit(lambda: staff_lock_notice.delay(user.pk))
    return True


def staff_lock_inactive_due() -> int:
    """The beat sweep: lock every account due, each in its own transaction. Returns how many."""
    due = selectors.staff_inactive_since(cutoff=inactivity_cutoff(timezone.now())).order_by("pk")
    return sum(user_lock_inactive(user_id=pk) for pk in list(due.values_list("pk", flat=True)))


def _refuse_self_unlock(actor: User, request: HttpRequest | None) -> None:
    """Recorded in its own transaction so the refusal stays in the log, then raised."""
    with transaction.atomic():
        security_event_record(
            event_type=EventType.AUTH_STAFF_UNLOCK_REFUSED, actor=actor, target=actor, request=request
        )
    raise UnlockError("You cannot unlock or close your own account; another org admin must.")


def _lock_change_reason(*, actor: User, user: User, reason: str, request: HttpRequest | None, doing: str) -> str:
    """The reason, tidied; UnlockError when it is missing or ``actor`` is ``user`` (that
    refusal is recorded, outside the caller's transaction, so it stays in the log)."""
    if actor.pk == user.pk:
        _refuse_self_unlock(actor, request)
    reason = " ".join((reason or "").split())
    if not UNLOCK_REASON_MIN <= len(reason) <= UNLOCK_REASON_MAX:
        raise UnlockError(f"Give the reason for {doing} ({UNLOCK_REASON_MIN} to {UNLOCK_REASON_MAX} characters).")
    return reason


def _locked_row(*, actor: User, user: User, verb: str, allowed) -> tuple[User, datetime]:
    """The locked account, row-locked, and when it was locked; UnlockError when it is not
    locked or ``allowed`` (``selectors.may_unlock`` or ``may_close``) says no. Call inside a
    transaction."""
    locked = User.objects.select_for_update().get(pk=user.pk)
    if locked.locked_at is None:
        raise UnlockError(f"{locked} is not locked.")
    if not allowed(actor=actor, user=locked):
        raise UnlockError(f"You may not {verb} {locked}.")
    return locked, locked.locked_at


def user_close(*, actor: User, user: User, reason: str, request: HttpRequest | None = None) -> User:
    """Close an account locked for inactivity for good (the person left): it stays inactive and
    is no longer locked, so no org admin can unlock it; only a superuser can reactivate it,
    by editing the account in the admin. A reason, never one's own, and for an org admin only
    someone all of whose organisations are theirs (``selectors.may_close``): closing is for
    every organisation. Records ``auth.staff_closed`` with the reason."""
    reason = _lock_change_reason(actor=actor, user=user, reason=reason, request=request, doing="closing")
    with transaction.atomic():
        locked, locked_at = _locked_row(actor=actor, user=user, verb="close", allowed=selectors.may_close)
        locked.locked_at = None
        locked.save(update_fields=["locked_at"])
        security_event_record(
            event_type=EventType.AUTH_STAFF_CLOSED,
            actor=actor,
            target=locked,
            request=request,
            details={"reason": reason, "locked_at": locked_at.isoformat()},
        )
    return locked


def user_unlock(*, actor: User, user: User, reason: str, request: HttpRequest | None = None) -> User:
    """Unlock an account locked for inactivity, with a reason (``UNLOCK_REASON_MIN`` to
    ``UNLOCK_REASON_MAX`` characters). ``actor`` must pass ``selectors.may_unlock``: an org
    admin of one of the user's organisations (not for superusers) or a superuser; never the
    user (refused and recorded). The inactivity clock restarts at the unlock
    (``unlocked_at``). Records ``auth.staff_unlocked`` with the reason; the user is emailed."""
    reason = _lock_change_reason(actor=actor, user=user, reason=reason, request=request, doing="unlocking")
    with transaction.atomic():
        locked, locked_at = _locked_row(actor=actor, user=user, verb="unlock", allowed=selectors.may_unlock)
        now = timezone.now()
        locked.is_active = True
        locked.locked_at = None
        locked.unlocked_at = now
        locked.save(update_fields=["is_active", "locked_at", "unlocked_at"])
        security_event_record(
            event_type=EventType.AUTH_STAFF_UNLOCKED,
            actor=actor,
            target=locked,
            request=request,
            details={"reason": reason, "locked_at": locked_at.isoformat()},
        )
        from accounts.tasks import staff_unlock_notice

        transaction.on_commit(lambda: staff_unlock_notice.delay(locked.pk))
    return locked
