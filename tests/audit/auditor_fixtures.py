"""Fixtures of the auditor pages' tests: two client organisations, staff of every role, and
events recorded through the recorder. conftest.py star-imports them."""

from datetime import UTC, datetime

import pytest
import time_machine

__all__ = [
    "T0",
    "as_user",
    "auditor_a",
    "events",
    "org_a",
    "org_admin_a",
    "org_b",
    "person_a",
    "person_b",
    "record",
    "staff",
    "superuser",
    "technician_a",
    "technician_b",
]

from accounts.models import Role
from audit.events import ActorKind, EventType
from audit.recorder import security_event_record
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def record(event_type, *, at=T0, organization=None, actor=None, target=None, end_user=False, **details):
    """One event recorded at ``at`` (the clock stands still, so several can share it)."""
    with time_machine.travel(at, tick=False):
        return security_event_record(
            event_type=event_type,
            actor=actor,
            actor_kind=ActorKind.END_USER if end_user else None,
            organization=organization,
            target=target,
            details=details,
        )


def staff(*roles, organizations=()):
    return UserFactory(roles=list(roles), organizations=list(organizations), mfa=True)


@pytest.fixture
def org_a(db):
    return OrganizationFactory(name="Alpha Corp", slug="alpha")


@pytest.fixture
def org_b(db):
    return OrganizationFactory(name="Beta Ltd", slug="beta")


@pytest.fixture
def person_a(org_a):
    return PersonFactory(organization=org_a, full_name="Ada Alpha")


@pytest.fixture
def person_b(org_b):
    return PersonFactory(organization=org_b, full_name="Bob Beta")


@pytest.fixture
def technician_a(org_a):
    return staff(Role.TECHNICIAN, organizations=[org_a])


@pytest.fixture
def technician_b(org_b):
    return staff(Role.TECHNICIAN, organizations=[org_b])


@pytest.fixture
def auditor_a(org_a):
    return staff(Role.AUDITOR, organizations=[org_a])


@pytest.fixture
def org_admin_a(org_a):
    return staff(Role.ORG_ADMIN, organizations=[org_a])


@pytest.fixture
def superuser(db):
    return UserFactory(is_superuser=True, is_staff=True, mfa=True)


@pytest.fixture
def as_user(client):
    """``as_user(user)``: the test client, signed in as ``user`` (who has MFA)."""

    def sign_in(user):
        client.force_login(user)
        return client

    return sign_in


@pytest.fixture
def events(org_a, org_b, person_a, person_b, technician_a, technician_b):
    """A few events in each organisation: ``events["a"]`` and ``events["b"]``, oldest first."""
    a = [
        record(
            EventType.VERIFICATION_REQUEST_CREATED,
            at=T0.replace(minute=1),
            organization=org_a,
            actor=technician_a,
            target=person_a,
            ticket="INC-A1",
        ),
        record(
            EventType.VERIFICATION_CHALLENGE_SENT,
            at=T0.replace(minute=2),
            organization=org_a,
            actor=technician_a,
            target=person_a,
            method="sms_code",
        ),
        record(
            EventType.DIRECTORY_PERSON_UPDATED,
            at=T0.replace(day=5),
            organization=org_a,
            actor=technician_a,
            target=person_a,
            fields=["department"],
        ),
    ]
    b = [
        record(
            EventType.VERIFICATION_REQUEST_CREATED,
            at=T0.replace(minute=3),
            organization=org_b,
            actor=technician_b,
            target=person_b,
            ticket="INC-B1",
        ),
        record(
            EventType.VERIFICATION_FRAUD_REPORTED,
            at=T0.replace(minute=4),
            organization=org_b,
            target=person_b,
            end_user=True,
            person=person_b.pk,
        ),
    ]
    return {"a": a, "b": b}
