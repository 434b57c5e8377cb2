"""Factories for JIT access. Rows built here skip the services (fixtures only); tests of
behaviour go through ``access.services``."""

from datetime import timedelta

import factory
from django.contrib.auth.models import Group
from django.db.models.functions import Now
from django.utils import timezone

from access.models import AccessRequest, Eligibility, Grant, Role
from accounts.models import Role as StaffRole
from tests.accounts.factories import OrganizationFactory, UserFactory

RESET_ACTIONS = ["password_reset", "account_unlock"]


def approver_group() -> Group:
    # get_or_create: transactional tests flush the groups the data migration made.
    return Group.objects.get_or_create(name=StaffRole.APPROVER.value)[0]


class RoleFactory(factory.django.DjangoModelFactory):
    """Password reset and unlock for non-privileged people, 1 approval from the Approver group."""

    class Meta:
        model = Role
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"Helpdesk role {n}")
    actions = factory.LazyFunction(lambda: list(RESET_ACTIONS))
    max_duration = timedelta(hours=2)
    approvals_required = 1
    approver_group = factory.LazyFunction(approver_group)
    requires_mfa_reauth = False


class BreakGlassRoleFactory(RoleFactory):
    name = factory.Sequence(lambda n: f"Break-glass {n}")
    actions = factory.LazyFunction(lambda: ["password_reset", "mfa_reset", "account_unlock", "contact_change"])
    covers_privileged = True
    max_duration = timedelta(minutes=30)
    approver_group = None
    break_glass = True


class EligibilityFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Eligibility

    technician = factory.SubFactory(UserFactory)
    role = factory.SubFactory(RoleFactory)
    organization = factory.SubFactory(OrganizationFactory)


class AccessRequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AccessRequest

    technician = factory.SubFactory(UserFactory)
    role = factory.SubFactory(RoleFactory)
    organization = factory.SubFactory(OrganizationFactory)
    justification = "Caller locked out before payroll run"
    ticket_reference = factory.Sequence(lambda n: f"INC-{n}")
    requested_duration = timedelta(hours=1)
    status = AccessRequest.Status.ACTIVE
    review_expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=24))


class GrantFactory(factory.django.DjangoModelFactory):
    """A grant row with the window you give (``starts_at``/``expires_at``), in force by default."""

    class Meta:
        model = Grant

    technician = factory.SubFactory(UserFactory)
    role = factory.SubFactory(RoleFactory)
    organization = factory.SubFactory(OrganizationFactory)
    request = factory.SubFactory(
        AccessRequestFactory,
        technician=factory.SelfAttribute("..technician"),
        role=factory.SelfAttribute("..role"),
        organization=factory.SelfAttribute("..organization"),
    )
    starts_at = factory.LazyFunction(lambda: timezone.now() - timedelta(minutes=5))
    expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(minutes=55))


def technician_for(organization, **kwargs):
    return UserFactory(roles=[StaffRole.TECHNICIAN], organizations=[organization], **kwargs)


def approver_for(organization, **kwargs):
    return UserFactory(roles=[StaffRole.APPROVER], organizations=[organization], **kwargs)


def org_admin_for(organization, **kwargs):
    return UserFactory(roles=[StaffRole.ORG_ADMIN], organizations=[organization], **kwargs)


def database_now():
    """The database's clock (what the authorization check compares with), not Python's."""
    from django.contrib.contenttypes.models import ContentType

    return ContentType.objects.annotate(now=Now()).values_list("now", flat=True)[0]
