"""Reads for Just-In-Time access: who may do what, and scoped lists for the portal pages.

None of these decides whether a grant allows an action: that is
``access.authorization.grant_allows``.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.contenttypes.models import ContentType
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce, Now
from django.http import Http404
from guardian.models import UserObjectPermission

from access.models import AccessRequest, Eligibility, Grant, Role
from accounts.models import Organization, User
from accounts.models import Role as StaffRole
from accounts.selectors import ORG_CODENAME, organization_list_for_user, user_works_on


def _assigned_user_ids(organization: Organization) -> QuerySet:
    """Ids of staff assigned to the organisation (its work_on_organization object permission)."""
    organization_type = ContentType.objects.get_for_model(Organization)
    return UserObjectPermission.objects.filter(
        content_type=organization_type,
        object_pk=str(organization.pk),
        permission__codename=ORG_CODENAME,
        permission__content_type=organization_type,
    ).values("user_id")


def may_administer_access(user: User, organization: Organization) -> bool:
    """Org admins of the organisation (assigned to it) and superusers manage eligibilities,
    revoke grants and review break-glass use."""
    if not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    return user.has_role(StaffRole.ORG_ADMIN) and user_works_on(user=user, organization=organization)


def may_request_access(user: User, organization: Organization) -> bool:
    """Technicians (or superusers) assigned to the organisation; eligibility is checked apart."""
    if not user.is_authenticated or not user.is_active:
        return False
    if not (user.is_superuser or user.has_role(StaffRole.TECHNICIAN)):
        return False
    return user_works_on(user=user, organization=organization)


def eligibility_current(
    *, technician: User, role: Role, organization: Organization, at: datetime
) -> Eligibility | None:
    return (
        Eligibility.objects.filter(technician=technician, role=role, organization=organization, ended_at__isnull=True)
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at))
        .first()
    )


def eligible_roles_for(*, technician: User, organization: Organization, at: datetime) -> QuerySet[Role]:
    """Active roles the technician may request (or, for break-glass roles, activate) there."""
    current = Eligibility.objects.filter(
        technician=technician, organization=organization, ended_at__isnull=True
    ).filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at))
    return Role.objects.filter(active=True, pk__in=current.values("role_id"))


def eligibility_list_for_organization(
    *, organization: Organization, current_only: bool = True
) -> QuerySet[Eligibility]:
    rows = Eligibility.objects.filter(organization=organization).select_related("technician", "role", "created_by")
    return rows.filter(ended_at__isnull=True) if current_only else rows


def approver_list_for(*, access_request: AccessRequest) -> QuerySet[User]:
    """The M who may approve: active members of the role's approver group who work on the
    request's organisation (assigned, or superusers), never the requester."""
    group_id = access_request.role.approver_group_id
    if group_id is None:
        return User.objects.none()
    return (
        User.objects.filter(is_active=True, groups=group_id)
        .filter(Q(is_superuser=True) | Q(pk__in=_assigned_user_ids(access_request.organization)))
        .exclude(pk=access_request.technician_id)
        .distinct()
    )


def may_approve(*, user: User, access_request: AccessRequest) -> bool:
    """Whether ``user`` is one of the request's approvers (the requester never is)."""
    if not user.is_authenticated or not user.is_active or user.pk == access_request.technician_id:
        return False
    group_id = access_request.role.approver_group_id
    if group_id is None or not user.groups.filter(pk=group_id).exists():
        return False
    return user_works_on(user=user, organization=access_request.organization)


def org_admin_list_for(*, organization: Organization) -> QuerySet[User]:
    """Who is alerted of break-glass use: the organisation's assigned, active org admins; when
    it has none, every active superuser, so an alert always reaches someone."""
    admins = User.objects.filter(
        is_active=True, groups__name=StaffRole.ORG_ADMIN.value, pk__in=_assigned_user_ids(organization)
    ).distinct()
    if admins.exists():
        return admins
    return User.objects.filter(is_active=True, is_superuser=True)


def access_request_list_for_technician(*, technician: User) -> QuerySet[AccessRequest]:
    return AccessRequest.objects.filter(technician=technician).select_related("role", "organization")


def access_request_list_for_user(*, user: User) -> QuerySet[AccessRequest]:
    """Requests of the organisations the user works on (approvers', org admins' and auditors' view)."""
    return AccessRequest.objects.filter(organization__in=organization_list_for_user(user=user)).select_related(
        "role", "organization", "technician"
    )


def approval_queue_for(*, user: User) -> QuerySet[AccessRequest]:
    """Pending requests ``user`` may still decide: their approver group, their organisations,
    not their own, not already answered by them, review time not over."""
    if not user.is_authenticated or not user.is_active:
        return AccessRequest.objects.none()
    return (
        AccessRequest.objects.filter(
            status=AccessRequest.Status.PENDING,
            review_expires_at__gt=Now(),
            role__approver_group__in=user.groups.values("pk"),
            organization__in=organization_list_for_user(user=user),
        )
        .exclude(technician=user)
        .exclude(approvals__approver=user)
        .select_related("role", "organization", "technician")
        .order_by("created_at", "id")
    )


def grants_in_force() -> QuerySet[Grant]:
    """Grants in force by the database's clock, for listings and countdowns."""
    return Grant.objects.filter(revoked_at__isnull=True, starts_at__lte=Now(), expires_at__gt=Now())


def grant_list_for_technician(*, technician: User, in_force_only: bool = False) -> QuerySet[Grant]:
    """The technician's grants ("my grants"); with ``in_force_only``, those in force now.
    Scheduled grants that have not started yet are in the full list."""
    rows = grants_in_force() if in_force_only else Grant.objects.all()
    return rows.filter(technician=technician).select_related("role", "organization", "request")


def grant_list_for_organization(*, organization: Organization, in_force_only: bool = True) -> QuerySet[Grant]:
    rows = grants_in_force() if in_force_only else Grant.objects.all()
    return rows.filter(organization=organization).select_related("role", "technician", "request")


def grant_history_for(*, technician: User, limit: int = 10) -> list[Grant]:
    """The technician's most recent grants in every organisation, which approvers see next
    to a request (how often, what for, whether any was revoked)."""
    rows = Grant.objects.filter(technician=technician).select_related("role", "organization", "request")
    return list(rows.order_by("-starts_at", "-id")[:limit])


def break_glass_reviews_pending(*, organization: Organization) -> QuerySet[Grant]:
    return Grant.objects.filter(
        organization=organization, review_required=True, reviewed_at__isnull=True
    ).select_related("role", "technician", "request")


# --- Scoped reads for the portal pages (another organisation's row is a 404) ---------------


def _visible_to(user: User) -> Q:
    """The user's own rows, and the rows of organisations they work on (colleagues,
    approvers, org admins and auditors read them; the services decide who may act)."""
    return Q(technician=user) | Q(organization__in=organization_list_for_user(user=user))


def access_request_list_visible_to(*, user: User) -> QuerySet[AccessRequest]:
    """Requests the user may read: their own and those of organisations they work on."""
    if not user.is_authenticated or not user.is_active:
        return AccessRequest.objects.none()
    return AccessRequest.objects.filter(_visible_to(user))


def grant_list_visible_to(*, user: User) -> QuerySet[Grant]:
    """Grants the user may read, like ``access_request_list_visible_to``."""
    if not user.is_authenticated or not user.is_active:
        return Grant.objects.none()
    return Grant.objects.filter(_visible_to(user))


def access_request_get_for_user(*, user: User, pk: int) -> AccessRequest:
    """The request with its role, organisation and technician; Http404 when it does not
    exist or is neither the user's own nor of an organisation they work on."""
    try:
        return (
            access_request_list_visible_to(user=user)
            .select_related("role", "organization", "technician", "extends")
            .get(pk=pk)
        )
    except AccessRequest.DoesNotExist:
        raise Http404("No such access request") from None


def grant_get_for_user(*, user: User, pk: int) -> Grant:
    """The grant with its role, organisation, technician and request; Http404 like
    ``access_request_get_for_user``."""
    try:
        return (
            grant_list_visible_to(user=user)
            .select_related("role", "organization", "technician", "request", "revoked_by", "reviewed_by")
            .get(pk=pk)
        )
    except Grant.DoesNotExist:
        raise Http404("No such grant") from None


def eligibility_list_for_user(*, user: User) -> QuerySet[Eligibility]:
    """Eligibilities (current and ended) of the organisations the user works on."""
    return Eligibility.objects.filter(organization__in=organization_list_for_user(user=user))


def technician_list_for_user(*, user: User) -> QuerySet[User]:
    """Active technicians assigned to at least one organisation the user works on (every
    active technician for superusers): whom the admin offers to make eligible."""
    technicians = User.objects.filter(is_active=True, groups__name=StaffRole.TECHNICIAN.value)
    if not user.is_superuser:
        organization_type = ContentType.objects.get_for_model(Organization)
        organization_ids = [str(pk) for pk in organization_list_for_user(user=user).values_list("pk", flat=True)]
        assigned = UserObjectPermission.objects.filter(
            content_type=organization_type,
            object_pk__in=organization_ids,
            permission__codename=ORG_CODENAME,
            permission__content_type=organization_type,
        ).values("user_id")
        technicians = technicians.filter(pk__in=assigned)
    return technicians.distinct().order_by("full_name", "email")


def grant_list_current_for_technician(*, technician: User) -> QuerySet[Grant]:
    """The technician's grants in force or scheduled (not revoked, not expired by the
    database's clock), soonest expiry first: what "my grants" counts down."""
    return (
        Grant.objects.filter(technician=technician, revoked_at__isnull=True, expires_at__gt=Now())
        .select_related("role", "organization", "request")
        .order_by("expires_at", "id")
    )


def access_request_list_open_for_technician(*, technician: User) -> QuerySet[AccessRequest]:
    """The technician's pending and approved (not yet activated) requests, newest first."""
    return access_request_list_for_technician(technician=technician).filter(status__in=AccessRequest.OPEN_STATUSES)


def eligibility_list_for_technician(*, technician: User, at: datetime) -> QuerySet[Eligibility]:
    """Current eligibilities for active roles in organisations the technician works on:
    what they may request (or, for break-glass roles, activate)."""
    return (
        Eligibility.objects.filter(
            technician=technician,
            ended_at__isnull=True,
            role__active=True,
            organization__in=organization_list_for_user(user=technician),
        )
        .filter(Q(valid_until__isnull=True) | Q(valid_until__gt=at))
        .select_related("role", "organization")
        .order_by("organization__name", "role__name")
    )


def eligibility_get_for_organization(*, organization: Organization, pk: int) -> Eligibility:
    try:
        return Eligibility.objects.select_related("technician", "role").get(organization=organization, pk=pk)
    except Eligibility.DoesNotExist:
        raise Http404("No such eligibility") from None


def technician_list_for_organization(*, organization: Organization) -> QuerySet[User]:
    """Active technicians assigned to the organisation: who an org admin may make eligible."""
    return (
        User.objects.filter(
            is_active=True, groups__name=StaffRole.TECHNICIAN.value, pk__in=_assigned_user_ids(organization)
        )
        .distinct()
        .order_by("full_name", "email")
    )


def may_approve_any(user: User) -> bool:
    """For the navigation: whether the user is in the approver group of any active role."""
    if not user.is_authenticated or not user.is_active:
        return False
    return Role.objects.filter(active=True, approver_group__in=user.groups.values("pk")).exists()


def grant_state(grant: Grant, *, at: datetime) -> str:
    """For displays: scheduled, active, released (by the technician), revoked or expired.
    Decisions use ``access.authorization``."""
    if grant.revoked_at is not None:
        return "released" if grant.revoked_by_id == grant.technician_id else "revoked"
    if grant.expires_at <= at:
        return "expired"
    return "scheduled" if grant.starts_at > at else "active"


def _count_per_role(rows: QuerySet) -> Coalesce:
    """A subquery counting ``rows`` (already filtered) of the outer role."""
    counted = rows.filter(role=OuterRef("pk")).order_by().values("role").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(counted), 0)


def role_list_for_organization(*, organization: Organization) -> QuerySet[Role]:
    """Every role (roles are defined once, for all organisations) with how many technicians
    are currently eligible for it in the organisation and how many grants of it are in force."""
    current = Eligibility.objects.filter(organization=organization, ended_at__isnull=True).filter(
        Q(valid_until__isnull=True) | Q(valid_until__gt=Now())
    )
    in_force = grants_in_force().filter(organization=organization)
    return (
        Role.objects.select_related("approver_group")
        .annotate(eligible_count=_count_per_role(current), in_force_count=_count_per_role(in_force))
        .order_by("-active", "name")
    )


def grant_list_current_for_organization(*, organization: Organization) -> QuerySet[Grant]:
    """Grants in force or scheduled in the organisation (not revoked, not expired), by expiry."""
    return (
        Grant.objects.filter(organization=organization, revoked_at__isnull=True, expires_at__gt=Now())
        .select_related("role", "technician", "request")
        .order_by("expires_at", "id")
    )
