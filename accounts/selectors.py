"""Reads, always scoped to the organisations a staff user is assigned to."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404
from guardian.shortcuts import get_objects_for_user, get_users_with_perms

from accounts.models import Organization, Person, User

ORG_PERMISSION = "accounts.work_on_organization"
SEARCH_MIN_LENGTH = 2
SEARCH_LIMIT = 50


def organization_list_for_user(*, user: User) -> QuerySet[Organization]:
    """Active organisations the user is assigned to; superusers see all of them."""
    if not user.is_authenticated or not user.is_active:
        return Organization.objects.none()
    if user.is_superuser:
        return Organization.objects.filter(active=True)
    return get_objects_for_user(user, ORG_PERMISSION, klass=Organization, accept_global_perms=False).filter(active=True)


def organization_get_for_user(*, user: User, slug: str) -> Organization:
    """The organisation, or Http404 when it does not exist or the user is not assigned to it."""
    try:
        return organization_list_for_user(user=user).get(slug=slug)
    except Organization.DoesNotExist:
        raise Http404("No such organisation") from None


def person_list_for_user(*, user: User) -> QuerySet[Person]:
    return Person.objects.filter(organization__in=organization_list_for_user(user=user))


def person_get_for_user(*, user: User, pk: int) -> Person:
    """The person, or Http404 when they belong to an organisation the user may not see."""
    try:
        return person_list_for_user(user=user).select_related("organization", "manager").get(pk=pk)
    except Person.DoesNotExist:
        raise Http404("No such person") from None


def person_search(*, user: User, query: str, organization: Organization | None = None) -> list[Person]:
    """Up to SEARCH_LIMIT people whose name, email, employee id or phone contains the query.

    One indexed substring match on ``search_text`` (a trigram index on PostgreSQL),
    scoped to the user's organisations. Phone queries match with or without spaces.
    """
    needle = " ".join(query.lower().split())
    if len(needle) < SEARCH_MIN_LENGTH:
        return []
    if needle.replace(" ", "").replace("-", "").lstrip("+").isdigit():
        needle = needle.replace(" ", "").replace("-", "")
    people = person_list_for_user(user=user)
    if organization is not None:
        people = people.filter(organization=organization)
    return list(
        people.filter(search_text__contains=needle)
        .select_related("organization")
        .order_by("full_name", "id")[:SEARCH_LIMIT]
    )


def staff_for_organization(*, organization: Organization) -> QuerySet[User]:
    return get_users_with_perms(organization, only_with_perms_in=["work_on_organization"], with_superusers=False)
