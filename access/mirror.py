"""The django-guardian mirror of grants in force: object permissions on the organisation,
for listings and the admin. Never the check (that is ``access.authorization``).

Each role action is mirrored as ``accounts.jit_<action>`` (``accounts.jit_privileged``
when the role covers privileged people), plus the role's own ``permissions``. The mirror
owns every object permission on an organisation except ``work_on_organization`` (the
assignment): a sync makes those exactly what the grants in force carry, so revoking one
grant never removes a permission another grant still covers.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from guardian.models import UserObjectPermission

from access import params
from access.models import Grant, Role
from accounts.models import Organization, User
from accounts.selectors import ORG_CODENAME

PRIVILEGED_CODENAME = "jit_privileged"
ACTION_LABELS = {
    "password_reset": "Can reset passwords (JIT grant)",
    "mfa_reset": "Can reset MFA (JIT grant)",
    "account_unlock": "Can unlock accounts (JIT grant)",
    "contact_change": "Can change contact details (JIT grant)",
}


def action_codename(action: str) -> str:
    return f"jit_{action}"


def _organization_type() -> ContentType:
    return ContentType.objects.get_for_model(Organization)  # cached by Django


def mirror_permissions_ensure(**kwargs) -> dict[str, Permission]:
    """The ``jit_*`` permissions on Organization, created if missing (post_migrate and first use)."""
    organization_type = _organization_type()
    wanted = {action_codename(a): ACTION_LABELS[a] for a in params.GRANTABLE_ACTIONS}
    wanted[PRIVILEGED_CODENAME] = "May act on privileged people (JIT grant)"
    found = {
        p.codename: p for p in Permission.objects.filter(content_type=organization_type, codename__in=list(wanted))
    }
    for codename, name in wanted.items():
        if codename not in found:
            found[codename], _ = Permission.objects.get_or_create(
                content_type=organization_type, codename=codename, defaults={"name": name}
            )
    return found


def role_permission_ids(role: Role, jit: dict[str, Permission]) -> set[int]:
    ids = {jit[action_codename(a)].pk for a in role.actions or [] if action_codename(a) in jit}
    if role.covers_privileged:
        ids.add(jit[PRIVILEGED_CODENAME].pk)
    ids.update(p.pk for p in role.permissions.all())
    return ids


def technician_lock(technician_id: int) -> None:
    """Serialise mirror syncs for one technician (their User row, FOR UPDATE). Callers lock
    their grant or request row first and this one last, so no two transactions wait in a circle."""
    list(User.objects.select_for_update().filter(pk=technician_id).values_list("pk", flat=True))


def mirror_sync(*, technician_id: int, organization_id: int, now: datetime) -> tuple[int, int]:
    """Make the technician's mirrored permissions on the organisation exactly those of their
    grants in force at ``now``. The caller holds ``technician_lock``. Returns (added, removed)."""
    jit = mirror_permissions_ensure()
    in_force = (
        Grant.objects.filter(
            technician_id=technician_id,
            organization_id=organization_id,
            revoked_at__isnull=True,
            starts_at__lte=now,
            expires_at__gt=now,
        )
        .select_related("role")
        .prefetch_related("role__permissions")
    )
    wanted: set[int] = set()
    for grant in in_force:
        wanted |= role_permission_ids(grant.role, jit)
    organization_type = _organization_type()
    held_rows = UserObjectPermission.objects.filter(
        user_id=technician_id,
        content_type=organization_type,
        object_pk=str(organization_id),
        permission__content_type=organization_type,
    ).exclude(permission__codename=ORG_CODENAME)
    held = dict(held_rows.values_list("permission_id", "pk"))
    extra = [pk for permission_id, pk in held.items() if permission_id not in wanted]
    if extra:
        UserObjectPermission.objects.filter(pk__in=extra).delete()
    missing = wanted - held.keys()
    if missing:
        UserObjectPermission.objects.bulk_create(
            [
                UserObjectPermission(
                    user_id=technician_id,
                    permission_id=permission_id,
                    content_type=organization_type,
                    object_pk=str(organization_id),
                )
                for permission_id in sorted(missing)
            ],
            ignore_conflicts=True,
        )
    return len(missing), len(extra)
