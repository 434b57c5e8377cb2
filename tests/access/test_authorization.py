"""The authorization check: grant rows, the database's clock, one indexed query.

Two clocks meet here. ``grant_allows`` compares with the database's ``now()``, which
time-machine cannot move (on SQLite it is CURRENT_TIMESTAMP computed by SQLite itself).
So the production path is tested with windows placed relative to the real database clock
(one second either side of it), and the half-open rule itself with ``at=`` while
time-machine moves Python's clock to exactly one second before and after expiry.
"""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from access.authorization import grant_allowing, grant_allows, granted_actions
from access.models import AccessRequest, Grant
from tests.access.factories import AccessRequestFactory, GrantFactory, RoleFactory, database_now, technician_for

ONE_SECOND = timedelta(seconds=1)
pytestmark = pytest.mark.django_db


@pytest.fixture
def holder(org):
    return technician_for(org)


def allows(holder, org, action="password_reset", **kwargs):
    return grant_allows(technician=holder, organization=org, action=action, **kwargs)


def test_a_grant_expiring_one_second_after_the_database_now_allows(holder, org):
    now = database_now()
    GrantFactory(technician=holder, organization=org, starts_at=now - timedelta(hours=1), expires_at=now + ONE_SECOND)
    assert allows(holder, org)


def test_a_grant_that_expired_one_second_before_the_database_now_allows_nothing(holder, org):
    now = database_now()
    GrantFactory(technician=holder, organization=org, starts_at=now - timedelta(hours=1), expires_at=now - ONE_SECOND)
    assert not allows(holder, org)
    assert grant_allowing(technician=holder, organization=org, action="password_reset") is None


def test_a_grant_starting_one_second_after_the_database_now_does_not_allow_yet(holder, org):
    now = database_now()
    GrantFactory(technician=holder, organization=org, starts_at=now + ONE_SECOND, expires_at=now + timedelta(hours=1))
    assert not allows(holder, org)


def test_a_grant_started_one_second_before_the_database_now_allows(holder, org):
    now = database_now()
    GrantFactory(technician=holder, organization=org, starts_at=now - ONE_SECOND, expires_at=now + timedelta(hours=1))
    assert allows(holder, org)


def test_the_window_is_half_open_at_the_boundary_as_time_machine_moves_the_clock(holder, org):
    expires_at = timezone.now().replace(microsecond=0) + timedelta(minutes=30)
    GrantFactory(technician=holder, organization=org, starts_at=expires_at - timedelta(hours=1), expires_at=expires_at)
    with time_machine.travel(expires_at - ONE_SECOND, tick=False):
        assert allows(holder, org, at=timezone.now())
    with time_machine.travel(expires_at, tick=False):
        assert not allows(holder, org, at=timezone.now())
    with time_machine.travel(expires_at + ONE_SECOND, tick=False):
        assert not allows(holder, org, at=timezone.now())


def test_the_python_clock_does_not_decide(holder, org):
    """Moving Python's clock back does not revive an expired grant: the database's clock decides."""
    now = database_now()
    GrantFactory(technician=holder, organization=org, starts_at=now - timedelta(hours=2), expires_at=now - ONE_SECOND)
    with time_machine.travel(now - timedelta(hours=1), tick=False):
        assert not allows(holder, org)


def test_a_revoked_grant_allows_nothing(holder, org):
    now = database_now()
    GrantFactory(technician=holder, organization=org, revoked_at=now - ONE_SECOND)
    assert not allows(holder, org)


def test_a_grant_for_organization_a_allows_nothing_in_organization_b(holder, org, other_org):
    GrantFactory(technician=holder, organization=org)
    assert allows(holder, org)
    assert not allows(holder, other_org)


def test_only_the_actions_of_the_role(holder, org):
    GrantFactory(technician=holder, organization=org, role=RoleFactory(actions=["account_unlock"]))
    assert allows(holder, org, "account_unlock")
    assert not allows(holder, org, "password_reset")
    assert not allows(holder, org, "other")


def test_privileged_people_need_a_role_that_covers_them(holder, org):
    GrantFactory(technician=holder, organization=org, role=RoleFactory(covers_privileged=False))
    assert allows(holder, org, privileged=False)
    assert not allows(holder, org, privileged=True)
    covering = RoleFactory(covers_privileged=True, actions=["password_reset"])
    GrantFactory(technician=holder, organization=org, role=covering)
    assert allows(holder, org, privileged=True)
    assert (
        grant_allowing(technician=holder, organization=org, action="password_reset", privileged=True).role == covering
    )


def test_another_technicians_grant_allows_nothing(holder, org):
    GrantFactory(technician=technician_for(org), organization=org)
    assert not allows(holder, org)


def test_a_deactivated_technician_or_organization_is_refused_without_a_query(holder, org):
    GrantFactory(technician=holder, organization=org)
    holder.is_active = False
    with CaptureQueriesContext(connection) as queries:
        assert not allows(holder, org)
    assert len(queries) == 0
    holder.is_active = True
    org.active = False
    assert not allows(holder, org)


def test_the_check_is_one_query_on_the_grant_rows(holder, org):
    GrantFactory(technician=holder, organization=org)
    GrantFactory(technician=holder, organization=org, role=RoleFactory(actions=["mfa_reset"]))
    with CaptureQueriesContext(connection) as queries:
        assert allows(holder, org, "mfa_reset", privileged=False)
    assert len(queries) == 1
    sql = queries[0]["sql"].lower()
    assert "access_grant" in sql and "guardian" not in sql
    with CaptureQueriesContext(connection) as queries:
        grant = grant_allowing(technician=holder, organization=org, action="mfa_reset")
        assert grant.role.actions == ["mfa_reset"]
    assert len(queries) == 1


def test_the_check_uses_the_authorization_index(holder, org, other_org):
    """With a realistic spread of rows (many technicians, mostly ended grants) and statistics,
    the planner reads the ``grant_authorization`` index."""
    now = timezone.now()
    technicians = [holder] + [technician_for(org) for _ in range(20)]
    roles = [RoleFactory() for _ in range(3)]
    requests, grants = [], []
    for n in range(400):
        technician, organization = technicians[n % len(technicians)], (org, other_org)[n % 2]
        ended = n % 10 != 0
        requests.append(AccessRequestFactory.build(technician=technician, role=roles[n % 3], organization=organization))
        starts_at = now - timedelta(days=n % 60, hours=2 if ended else 0, minutes=5)
        grants.append(
            Grant(
                technician=technician,
                role_id=requests[-1].role_id,
                organization=organization,
                starts_at=starts_at,
                expires_at=starts_at + timedelta(hours=1),
                revoked_at=starts_at + timedelta(minutes=30) if n % 3 == 0 else None,
            )
        )
    for access_request, grant in zip(AccessRequest.objects.bulk_create(requests), grants, strict=True):
        grant.request = access_request
    Grant.objects.bulk_create(grants)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    plan = granted_actions(holder, org, False, None).explain()
    assert "grant_authorization" in plan, plan
