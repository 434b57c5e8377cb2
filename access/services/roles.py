"""JIT roles: defined by superusers (in the admin), used by every organisation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from access.mirror import mirror_sync, technician_lock
from access.models import MIRRORABLE_PERMISSIONS, Grant, Role
from access.services._common import AccessError, record, seconds
from accounts.models import User
from audit.events import EventType

ROLE_FIELDS = frozenset(
    {
        "name",
        "description",
        "actions",
        "covers_privileged",
        "max_duration",
        "approvals_required",
        "approver_group",
        "requires_mfa_reauth",
        "break_glass",
        "active",
    }
)
# A change to one of these changes what grants in force carry: their mirror is re-synced.
_MIRRORED = frozenset({"actions", "covers_privileged", "permissions"})


def _check_actor(actor: User | None) -> None:
    if actor is not None and not (actor.is_active and actor.is_superuser):
        raise AccessError("Only superusers define JIT roles.")


def _check_fields(data: dict[str, Any]) -> None:
    unknown = set(data) - ROLE_FIELDS
    if unknown:
        raise ValueError(f"Not a role field: {sorted(unknown)}")


def _validated(role: Role) -> None:
    try:
        role.full_clean()
    except ValidationError as exc:
        raise AccessError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None


def _set_permissions(role: Role, permissions: Iterable[Permission]) -> bool:
    wanted = {p.pk for p in permissions}
    allowed = set(Permission.objects.filter(MIRRORABLE_PERMISSIONS, pk__in=wanted).values_list("pk", flat=True))
    if allowed != wanted:
        raise AccessError("A role carries only object permissions on organisations (not the assignment itself).")
    if wanted == set(role.permissions.values_list("pk", flat=True)):
        return False
    role.permissions.set(wanted)
    return True


def _summary(role: Role) -> dict[str, Any]:
    return {
        "actions": sorted(role.actions),
        "covers_privileged": role.covers_privileged,
        "max_duration_s": seconds(role.max_duration),
        "approvals_required": role.approvals_required,
        "approver_group": role.approver_group.name if role.approver_group else None,
        "requires_mfa_reauth": role.requires_mfa_reauth,
        "break_glass": role.break_glass,
        "active": role.active,
        "permissions": sorted(role.permissions.values_list("codename", flat=True)),
    }


@transaction.atomic
def role_create(
    *,
    actor: User | None,
    data: dict[str, Any],
    permissions: Iterable[Permission] = (),
    request: HttpRequest | None = None,
) -> Role:
    """A new role from ``data`` (fields in ROLE_FIELDS). Superusers only (``actor=None``:
    the system, e.g. demo data). Validated by ``Role.clean``: actions among the grantable
    ones, maximum duration within 8 h (break-glass: within ACCESS_BREAK_GLASS_MAX_MINUTES),
    an approver group unless break-glass."""
    _check_actor(actor)
    _check_fields(data)
    role = Role(**data)
    _validated(role)
    role.save()
    _set_permissions(role, permissions)
    record(
        EventType.ACCESS_ROLE_CREATED, actor=actor, organization=None, target=role, request=request, **_summary(role)
    )
    return role


@transaction.atomic
def role_update(
    *,
    actor: User | None,
    role: Role,
    data: dict[str, Any],
    permissions: Iterable[Permission] | None = None,
    request: HttpRequest | None = None,
) -> Role:
    """Change a role (``permissions=None``: leave them). Takes effect at once for grants in
    force, since the check reads the role: narrowing a role narrows them, and their mirror
    is re-synced. Grant windows are never changed."""
    _check_actor(actor)
    _check_fields(data)
    role = Role.objects.select_for_update().get(pk=role.pk)
    changed = sorted(name for name, value in data.items() if getattr(role, name) != value)
    for name in changed:
        setattr(role, name, data[name])
    _validated(role)
    if changed:
        role.updated_at = timezone.now()
        role.save()
    if permissions is not None and _set_permissions(role, permissions):
        changed.append("permissions")
    if changed:
        if _MIRRORED.intersection(changed):
            _resync_grants_in_force(role)
        record(
            EventType.ACCESS_ROLE_CHANGED,
            actor=actor,
            organization=None,
            target=role,
            request=request,
            fields=changed,
            **_summary(role),
        )
    return role


def _resync_grants_in_force(role: Role) -> None:
    now = timezone.now()
    pairs = set(
        Grant.objects.filter(role=role, revoked_at__isnull=True, starts_at__lte=now, expires_at__gt=now).values_list(
            "technician_id", "organization_id"
        )
    )
    for technician_id, organization_id in sorted(pairs):
        technician_lock(technician_id)
        mirror_sync(technician_id=technician_id, organization_id=organization_id, now=now)
