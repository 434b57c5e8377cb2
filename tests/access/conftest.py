from datetime import timedelta

import pytest

from access import services
from access.models import AccessRequest
from tests.access.factories import (
    EligibilityFactory,
    RoleFactory,
    approver_for,
    org_admin_for,
    technician_for,
)
from tests.accounts.factories import OrganizationFactory


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def other_org(db):
    return OrganizationFactory()


@pytest.fixture
def role(db):
    return RoleFactory()


@pytest.fixture
def technician(org):
    return technician_for(org)


@pytest.fixture
def approvers(org):
    return [approver_for(org) for _ in range(3)]


@pytest.fixture
def org_admin(org):
    return org_admin_for(org)


@pytest.fixture
def eligible(technician, role, org):
    return EligibilityFactory(technician=technician, role=role, organization=org)


@pytest.fixture
def ask(technician, role, org, eligible, approvers):
    """``ask(**overrides)``: the technician requests the role through the service."""

    def ask(**overrides):
        kwargs = {
            "actor": technician,
            "role": role,
            "organization": org,
            "justification": "Caller locked out before payroll run",
            "ticket_reference": "INC-1001",
            "duration": timedelta(hours=1),
            **overrides,
        }
        return services.access_request_create(**kwargs)

    return ask


@pytest.fixture
def approved(ask, approvers):
    """An approved request of the technician's (one approval, the role's N)."""

    def approved(**overrides) -> AccessRequest:
        access_request = ask(**overrides)
        return services.access_request_approve(actor=approvers[0], access_request=access_request)

    return approved


@pytest.fixture
def activate(technician):
    def activate(access_request, **kwargs):
        return services.grant_activate(actor=technician, access_request=access_request, **kwargs)

    return activate
