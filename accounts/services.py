"""Writes for staff, organisations and the directory. Each takes ``actor``, runs in a
transaction and records its security event in that same transaction."""

from __future__ import annotations

from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group
from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import Organization, Role, User
from accounts.selectors import ORG_PERMISSION
from audit.events import EventType
from audit.recorder import security_event_record


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
    security_event_record(
        event_type=EventType.DIRECTORY_STAFF_ASSIGNED, actor=actor, organization=organization, target=user
    )


@transaction.atomic
def organization_unassign_staff(*, actor: User | None, organization: Organization, user: User) -> None:
    remove_perm(ORG_PERMISSION, user, organization)
    security_event_record(
        event_type=EventType.DIRECTORY_STAFF_UNASSIGNED, actor=actor, organization=organization, target=user
    )
