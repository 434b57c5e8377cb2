"""A grant's expiry through a real Celery worker process on Redis and PostgreSQL.

Needs REDIS_URL and a PostgreSQL DATABASE_URL (what .ci/run sets). Without them it is
skipped locally; under CI=true tests/conftest.py has already stopped the run instead.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone
from guardian.models import UserObjectPermission

from access import services
from access.authorization import grant_allows
from accounts.models import Role as StaffRole
from tests.access.factories import EligibilityFactory, RoleFactory
from tests.accounts.factories import OrganizationFactory, UserFactory
from tests.celery_worker import INTEGRATION_MARKS, running_worker

pytestmark = INTEGRATION_MARKS


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    with running_worker(tmp_path, name="access") as worker:
        yield worker


def test_a_three_second_grants_permissions_are_gone_within_a_second_of_expiry(celery_worker, tasks_go_to_the_broker):
    org = OrganizationFactory()
    technician = UserFactory(roles=[StaffRole.TECHNICIAN], organizations=[org])
    approver = UserFactory(roles=[StaffRole.APPROVER], organizations=[org])
    role = RoleFactory(actions=["password_reset", "mfa_reset"])
    EligibilityFactory(technician=technician, role=role, organization=org)
    access_request = services.access_request_create(
        actor=technician,
        role=role,
        organization=org,
        justification="Three seconds is plenty",
        ticket_reference="INC-3",
        duration=timedelta(seconds=3),
    )
    services.access_request_approve(actor=approver, access_request=access_request)
    grant = services.grant_activate(actor=technician, access_request=access_request)  # commits: task is queued
    mirrored = UserObjectPermission.objects.filter(
        user=technician, object_pk=str(org.pk), permission__codename__startswith="jit_"
    )
    assert mirrored.count() == 2
    assert grant_allows(technician=technician, organization=org, action="password_reset")

    deadline = grant.expires_at + timedelta(seconds=5)
    while mirrored.exists() and timezone.now() < deadline:
        time.sleep(0.02)
    gone_at = timezone.now()

    assert not mirrored.exists(), celery_worker.log_path.read_text()[-4000:]
    assert gone_at - grant.expires_at < timedelta(seconds=1), celery_worker.log_path.read_text()[-4000:]
    assert not grant_allows(technician=technician, organization=org, action="password_reset")
    grant.refresh_from_db()
    assert grant.mirror_cleaned_at >= grant.expires_at
    assert timedelta(0) <= grant.cleanup_lag < timedelta(seconds=1)
    assert grant.request.status == "ended"
