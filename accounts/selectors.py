"""Reads, always scoped to the organisations a staff user is assigned to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import cast

import phonenumbers
from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db.models import BigIntegerField, Q, QuerySet, Value
from django.db.models.functions import Cast, StrIndex
from django.db.models.lookups import GreaterThan
from django.http import Http404
from guardian.models import UserObjectPermission
from guardian.shortcuts import get_users_with_perms

from accounts.models import ImportJob, Organization, Person, Role, User, role_sql
from accounts.rows import JoinedRead, placeholders, possible_key, statement_cursor

ORG_PERMISSION = "accounts.work_on_organization"
ORG_CODENAME = "work_on_organization"
SEARCH_MIN_LENGTH = 2
SEARCH_LIMIT = 50
SEARCH_CANDIDATES = 1_000  # matches sorted by name for one search; bounds its cost
_PHONE_SEPARATORS = str.maketrans("", "", " -().")
_FULL_NUMBER_MIN_DIGITS = 7


def _assigned_organization_ids(user: User) -> QuerySet:
    """The ids of organisations the user is assigned to, as a subquery over django-guardian's
    user object permissions (assignment is always per user: organization_assign_staff).
    One plain subquery, cheaper to build and run than guardian's general lookup, which
    every scoped page pays."""
    organization_type = ContentType.objects.get_for_model(Organization)  # cached by Django
    return (
        UserObjectPermission.objects.filter(
            user=user,
            content_type=organization_type,
            permission__codename=ORG_CODENAME,
            permission__content_type=organization_type,
        )
        .annotate(organization_id=Cast("object_pk", BigIntegerField()))
        .values("organization_id")
    )


_scope_memo: ContextVar[dict[tuple[int, bool], tuple[int, ...]] | None] = ContextVar("scope_memo", default=None)


@contextmanager
def organization_scope_memo() -> Iterator[None]:
    """Inside, ``organization_ids_for_user`` asks the database once per user: a request's
    scoped reads share one answer (``accounts.middleware.OrganizationScopeMiddleware``).
    Outside (tasks, management commands, shells) every call asks."""
    token = _scope_memo.set({})
    try:
        yield
    finally:
        _scope_memo.reset(token)


def organization_ids_for_user(*, user: User) -> tuple[int, ...]:
    """The ids of the active organisations the user works on (every active one for a
    superuser). One small query, remembered for the rest of the request."""
    if not user.is_authenticated or not user.is_active:
        return ()
    memo = _scope_memo.get()
    key = (user.pk, user.is_superuser)
    if memo is not None and key in memo:
        return memo[key]
    if user.is_superuser:
        ids = tuple(Organization.objects.filter(active=True).order_by("pk").values_list("pk", flat=True))
    else:
        with statement_cursor() as cursor:
            cursor.execute(_ASSIGNED_ACTIVE_SQL, [*_ASSIGNED_PARAMS, user.pk])
            ids = tuple(row[0] for row in cursor.fetchall())
    if memo is not None:
        memo[key] = ids
    return ids


def organization_scope_forget(user: User) -> None:
    """Forget the request's memo of the user's organisations (their assignments changed)."""
    memo = _scope_memo.get()
    if memo is not None:
        memo.pop((user.pk, False), None)
        memo.pop((user.pk, True), None)


# ``_assigned_organization_ids`` joined to the active organisations, written out: every
# signed-in request asks it, and building it through the ORM (a cast, three joins) cost
# more than the rest of a small request. Same tables and conditions; SQLite and PostgreSQL.
# Its values: _ASSIGNED_PARAMS, then the user's id.
_ASSIGNED_ACTIVE_JOIN = f"""{UserObjectPermission._meta.db_table} p
JOIN {Permission._meta.db_table} a ON a.id = p.permission_id AND a.codename = %s
JOIN {ContentType._meta.db_table} t ON t.id = a.content_type_id AND t.id = p.content_type_id
    AND t.app_label = %s AND t.model = %s
JOIN {Organization._meta.db_table} o ON p.object_pk = CAST(o.id AS VARCHAR(255)) AND o.active"""  # noqa: S608
_ASSIGNED_PARAMS = (ORG_CODENAME, "accounts", "organization")
_ASSIGNED_ACTIVE_SQL = f"SELECT o.id FROM {_ASSIGNED_ACTIVE_JOIN} WHERE p.user_id = %s ORDER BY o.id"  # noqa: S608

_USER = JoinedRead(User, "u")
_ROLES = [str(role) for role in Role]
_ROLE_SQL = f"EXISTS ({role_sql(user='u.id')})"
# The user, then whether they have each role (_ROLES), one row per assigned active
# organisation (one row with NULL for none). Its values: the roles, _ASSIGNED_PARAMS, the id.
_USER_WITH_SCOPE_SQL = (
    f"SELECT {_USER.select_sql}, {', '.join([_ROLE_SQL] * len(_ROLES))}, o.id "  # noqa: S608 - names from the models
    f"FROM {_USER.from_sql} LEFT JOIN ({_ASSIGNED_ACTIVE_JOIN}) ON p.user_id = u.id WHERE u.id = %s ORDER BY o.id"
)


def user_get_with_scope(*, pk: int) -> User | None:
    """The user ``pk`` (None when there is none), for the sign-in backends' ``get_user``:
    read in one statement with the organisations they are assigned to, which the request's
    memo (``organization_scope_memo``) then holds, so a signed-in request asks one statement
    where it asked two. Outside a memo (no request) only the user is kept."""
    if not possible_key(pk):
        return None
    with statement_cursor() as cursor:
        cursor.execute(_USER_WITH_SCOPE_SQL, [*_ROLES, *_ASSIGNED_PARAMS, pk])
        rows = cursor.fetchall()
    if not rows:
        return None
    user = _USER.instance(rows[0])
    flags = rows[0][_USER.width : _USER.width + len(_ROLES)]
    user.remember_roles(role for role, flag in zip(_ROLES, flags, strict=True) if flag)
    memo = _scope_memo.get()
    if memo is not None and user.is_active and not user.is_superuser:
        memo[(user.pk, False)] = tuple(row[-1] for row in rows if row[-1] is not None)
    return user


def organization_list_for_user(*, user: User) -> QuerySet[Organization]:
    """Active organisations the user is assigned to; superusers see all of them."""
    if not user.is_authenticated or not user.is_active:
        return Organization.objects.none()
    if user.is_superuser:
        return Organization.objects.filter(active=True)
    return Organization.objects.filter(pk__in=organization_ids_for_user(user=user))


def user_works_on(*, user: User, organization: Organization) -> bool:
    """Whether the user may work on the organisation's people: assigned (or a superuser),
    active, and the organisation active."""
    if not organization.active:
        return False
    return organization.pk in organization_ids_for_user(user=user)


def organization_get_for_user(*, user: User, slug: str) -> Organization:
    """The organisation, or Http404 when it does not exist or the user is not assigned to it."""
    try:
        return organization_list_for_user(user=user).get(slug=slug)
    except Organization.DoesNotExist:
        raise Http404("No such organisation") from None


def person_list_for_user(*, user: User) -> QuerySet[Person]:
    return Person.objects.filter(organization_id__in=organization_ids_for_user(user=user))


def person_get_for_user(*, user: User, pk: int) -> Person:
    """The person with their organisation and manager, or Http404 when they belong to an
    organisation the user may not see. Every verification starts here: written out
    (``accounts.rows``)."""
    scope = in_scope(user=user, alias="p", pk=pk)
    person = _PERSON.fetch(*scope) if scope else None
    if person is None:
        raise Http404("No such person")
    return person


_PERSON = JoinedRead(Person, "p", ("p", "organization", "o"), ("p", "manager", "m"))


def in_scope(*, user: User, alias: str, pk: int) -> tuple[str, list[int]] | None:
    """For a written-out read (``accounts.rows``) of the row ``pk`` of a table (alias
    ``alias``) with an ``organization_id``: the condition that it is that row and in one of
    the user's organisations, and its values; None when nothing can match (no organisation,
    or a key no row can have, which the database would refuse)."""
    organization_ids = organization_ids_for_user(user=user)
    if not organization_ids or not possible_key(pk):
        return None
    where = f"{alias}.id = %s AND {alias}.organization_id IN ({placeholders(len(organization_ids))})"
    return where, [pk, *organization_ids]


def import_job_list_for_user(*, user: User) -> QuerySet[ImportJob]:
    """Directory import jobs of the user's organisations, without the uploaded CSV text."""
    return ImportJob.objects.filter(organization__in=organization_list_for_user(user=user)).defer("csv_text")


def person_search_filter(*, query: str) -> Q | None:
    """The match ``person_search`` applies, for other scoped lists (admin search and
    autocomplete) to search exactly alike; ``None`` when the query is too short.

    Phone-like queries ("+1 (202) 555-0123", "202.555.0123") drop their separators;
    a complete number in the default region's national format also matches its E.164 form.
    """
    needle = " ".join(query.lower().split())
    compact = needle.translate(_PHONE_SEPARATORS)
    phone_like = compact.lstrip("+").isdigit() and "+" not in compact[1:]
    if phone_like:
        needle = compact
    if len(needle) < SEARCH_MIN_LENGTH:
        return None
    match = _contains(needle)
    if phone_like and len(compact) >= _FULL_NUMBER_MIN_DIGITS:
        e164 = _as_e164(compact)
        if e164 and needle not in e164:
            match |= Q(search_text__contains=e164)
    return match


def person_search(*, user: User, query: str, organization: Organization | None = None) -> list[Person]:
    """Up to SEARCH_LIMIT people, by name, whose name, email, employee id or phone
    contains the query, in the user's organisations (or just ``organization``).

    One indexed substring match on ``search_text`` (a trigram index on PostgreSQL).
    Phone queries match with or without separators. When more than SEARCH_CANDIDATES
    people match, the result is the first by name among SEARCH_CANDIDATES of them; the
    page then asks for a narrower query anyway.
    """
    match = person_search_filter(query=query)
    if match is None:
        return []
    # Literal organisation ids rather than a join to guardian's tables, so the planner
    # can use its statistics for them.
    organization_ids = list(organization_list_for_user(user=user).values_list("pk", flat=True))
    if organization is not None:
        organization_ids = [pk for pk in organization_ids if pk == organization.pk]
    if not organization_ids:
        return []
    # Collect matches unordered (the trigram index for rare needles, a scan that stops
    # early for common ones), then sort. Walking the name index in order instead looks
    # cheap to the planner but reads most of it when the matches share a first name
    # ("micha"): see docs/benchmarks.md.
    matching = Person.objects.filter(organization_id__in=organization_ids).filter(match)
    candidates = matching.order_by().values("pk")[:SEARCH_CANDIDATES]
    people = Person.objects.filter(pk__in=candidates).select_related("organization").order_by("full_name", "id")
    return list(people[:SEARCH_LIMIT])


def _contains(needle: str) -> Q:
    """``search_text`` contains ``needle``.

    Everyone in an organisation shares its email domain, so the domain's trigrams are in
    every row and a full address makes the trigram index read long posting lists. The
    index then looks for the part up to the "@" only, and the whole address is checked
    on the few rows it finds (STRPOS uses no index).
    """
    local, at, domain = needle.partition("@")
    if at and domain and len(local) >= 3:
        return Q(search_text__contains=local + at) & Q(GreaterThan(StrIndex("search_text", Value(needle)), 0))
    return Q(search_text__contains=needle)


def _as_e164(digits: str) -> str | None:
    try:
        number = phonenumbers.parse(digits, settings.DIRECTORY_DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def staff_for_organization(*, organization: Organization) -> QuerySet[User]:
    users = get_users_with_perms(organization, only_with_perms_in=["work_on_organization"], with_superusers=False)
    return cast(QuerySet[User], users)  # a queryset of users when attach_perms is off


# --- Inactive staff accounts (accounts.services.user_lock_inactive / user_unlock) ----------


def staff_ids_assigned_to(*, organization_ids) -> QuerySet:
    """Ids of staff assigned to any of ``organization_ids`` (a list or a values() subquery),
    active or not: a locked account keeps its assignments."""
    organization_type = ContentType.objects.get_for_model(Organization)
    return (
        UserObjectPermission.objects.filter(
            content_type=organization_type,
            permission__codename=ORG_CODENAME,
            permission__content_type=organization_type,
        )
        .annotate(organization_id=Cast("object_pk", BigIntegerField()))
        .filter(organization_id__in=organization_ids)
        .values("user_id")
    )


def assigned_organization_ids(*, user: User) -> list[int]:
    """The organisations a staff member is assigned to, whether or not the account is active."""
    return list(_assigned_organization_ids(user).values_list("organization_id", flat=True))


def staff_inactive_since(*, cutoff) -> QuerySet[User]:
    """Active, unlocked accounts with no sign-in, creation or unlock after ``cutoff``: their
    last use (the latest of ``last_login``, ``date_joined`` and ``unlocked_at``) is at or
    before it. A session lasts at most SESSION_ABSOLUTE_LIMIT after its sign-in, so
    ``last_login`` is within that of the last request."""
    return (
        User.objects.filter(is_active=True, locked_at__isnull=True, date_joined__lte=cutoff)
        .filter(Q(last_login__isnull=True) | Q(last_login__lte=cutoff))
        .filter(Q(unlocked_at__isnull=True) | Q(unlocked_at__lte=cutoff))
    )


def locked_staff_for_organization(*, organization: Organization) -> QuerySet[User]:
    """Accounts locked for inactivity among the organisation's assigned staff, oldest lock first."""
    return User.objects.filter(
        locked_at__isnull=False, pk__in=staff_ids_assigned_to(organization_ids=[organization.pk])
    ).order_by("locked_at", "email")


def locked_staff_get_for_organization(*, organization: Organization, pk: int) -> User:
    """A locked staff member of the organisation, or Http404 (another organisation's staff,
    an unlocked account, no such account)."""
    try:
        return locked_staff_for_organization(organization=organization).get(pk=pk)
    except User.DoesNotExist:
        raise Http404("No such locked account") from None


def org_admins_of_staff(*, user: User) -> QuerySet[User]:
    """Active org admins assigned to any organisation ``user`` is assigned to (never ``user``):
    whom a locked staff member can ask to unlock them."""
    shared = staff_ids_assigned_to(organization_ids=_assigned_organization_ids(user))
    return (
        User.objects.filter(is_active=True, groups__name=Role.ORG_ADMIN.value, pk__in=shared)
        .exclude(pk=user.pk)
        .distinct()
        .order_by("full_name", "email")
    )


def may_unlock(*, actor: User, user: User) -> bool:
    """Superusers unlock anyone but themselves. An org admin unlocks a non-superuser who is
    assigned to one of the active organisations the org admin is assigned to. Nobody unlocks
    their own account."""
    if not actor.is_authenticated or not actor.is_active or actor.pk == user.pk:
        return False
    if actor.is_superuser:
        return True
    if user.is_superuser or not actor.has_role(Role.ORG_ADMIN):
        return False
    mine = organization_list_for_user(user=actor).values("pk")
    return staff_ids_assigned_to(organization_ids=mine).filter(user_id=user.pk).exists()


def may_close(*, actor: User, user: User) -> bool:
    """Closing an account is for good and across every organisation, so an org admin closes
    only someone all of whose organisations are theirs (``may_unlock``, and no assignment
    elsewhere); superusers close anyone but themselves."""
    if not may_unlock(actor=actor, user=user):
        return False
    if actor.is_superuser:
        return True
    return set(assigned_organization_ids(user=user)) <= set(organization_ids_for_user(user=actor))


def org_admins_of_organization(*, organization: Organization) -> QuerySet[User]:
    """The organisation's active, assigned org admins (no superuser fallback)."""
    return (
        User.objects.filter(
            is_active=True,
            groups__name=Role.ORG_ADMIN.value,
            pk__in=staff_ids_assigned_to(organization_ids=[organization.pk]),
        )
        .distinct()
        .order_by("email")
    )
