"""Approvals and activations under concurrent requests, with real transactions (PostgreSQL in CI)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from access import services
from access.models import AccessRequest, Approval, Grant
from access.services import AccessError
from accounts.models import Role as StaffRole
from tests.access.factories import EligibilityFactory, RoleFactory
from tests.accounts.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def all_at_once(works):
    """Run each callable in its own thread, released together; each thread closes its connection."""
    barrier = threading.Barrier(len(works))

    def one(work):
        barrier.wait()
        try:
            return work()
        except AccessError:
            return "refused"
        finally:
            connection.close()

    with ThreadPoolExecutor(len(works)) as pool:
        return list(pool.map(one, works))


@pytest.fixture
def setup():
    org = OrganizationFactory()
    technician = UserFactory(roles=[StaffRole.TECHNICIAN], organizations=[org])
    approvers = [UserFactory(roles=[StaffRole.APPROVER], organizations=[org]) for _ in range(6)]
    role = RoleFactory(approvals_required=2)
    EligibilityFactory(technician=technician, role=role, organization=org)
    access_request = services.access_request_create(
        actor=technician, role=role, organization=org, justification="Concurrent approvals", ticket_reference="I-1"
    )
    return technician, approvers, access_request


def test_concurrent_approvals_approve_once_and_activate_once(setup):
    technician, approvers, access_request = setup

    results = all_at_once(
        [lambda a=a: services.access_request_approve(actor=a, access_request=access_request) for a in approvers]
    )

    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.APPROVED
    # Exactly the first two count; the rest find it no longer pending.
    assert Approval.objects.filter(request=access_request).count() == 2
    assert results.count("refused") == len(approvers) - 2

    results = all_at_once(
        [lambda: services.grant_activate(actor=technician, access_request=access_request) for _ in range(8)]
    )

    assert Grant.objects.filter(request=access_request).count() == 1
    assert results.count("refused") == 7


def test_the_same_approver_approving_concurrently_counts_once(setup):
    _, approvers, access_request = setup

    all_at_once([lambda: services.access_request_approve(actor=approvers[0], access_request=access_request)] * 6)

    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.PENDING
    assert Approval.objects.filter(request=access_request).count() == 1
