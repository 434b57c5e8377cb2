"""One verification, many simultaneous attempts: the action is performed once (PostgreSQL,
real transactions, threads released together)."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from access.action_models import HelpdeskAction
from access.services import AccessError
from access.services.actions import helpdesk_action_perform
from audit.models import SecurityEvent
from tests.access.factories import GrantFactory, RoleFactory, technician_for
from tests.access.test_actions import verified
from tests.accounts.factories import OrganizationFactory, PersonFactory

pytestmark = pytest.mark.django_db(transaction=True)
ATTEMPTS = 8


def all_at_once(work, count=ATTEMPTS):
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        try:
            return work()
        except AccessError as exc:
            return type(exc).__name__
        finally:
            connection.close()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks need PostgreSQL")
def test_two_concurrent_attempts_with_one_verification_perform_the_action_once():
    org = OrganizationFactory()
    person = PersonFactory(organization=org)
    technician = technician_for(org)
    GrantFactory(technician=technician, role=RoleFactory(actions=["mfa_reset"]), organization=org)
    verification = verified(technician, person, "mfa_reset")

    results = all_at_once(
        lambda: helpdesk_action_perform(actor=technician, person=person, action="mfa_reset", verification=verification)
    )

    assert sum(not isinstance(r, str) for r in results) == 1
    assert results.count("ActionRefused") == ATTEMPTS - 1
    assert HelpdeskAction.objects.count() == 1
    assert SecurityEvent.objects.filter(event_type="action.performed").count() == 1
    assert SecurityEvent.objects.filter(event_type="action.refused").count() == ATTEMPTS - 1
    verification.refresh_from_db()
    assert verification.consumed_at is not None
