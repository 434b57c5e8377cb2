"""``mfa_reauthenticated_at`` reads allauth's record of MFA steps in the session."""

from datetime import UTC, datetime

import pytest
import time_machine
from allauth.account.internal.flows.login import record_authentication
from django.contrib.sessions.backends.cache import SessionStore
from django.test import RequestFactory

from access.reauth import mfa_reauthenticated_at

pytestmark = pytest.mark.django_db


@pytest.fixture
def request_for(technician):
    request = RequestFactory().get("/")
    request.user = technician
    request.session = SessionStore()
    return request


def test_none_without_an_mfa_step(request_for, technician):
    record_authentication(request_for, technician, method="password")
    assert mfa_reauthenticated_at(request_for) is None


def test_the_latest_mfa_step_counts(request_for, technician):
    with time_machine.travel(datetime(2026, 3, 1, 9, 0, tzinfo=UTC), tick=False):
        record_authentication(request_for, technician, method="mfa", type="totp")
    with time_machine.travel(datetime(2026, 3, 1, 9, 40, tzinfo=UTC), tick=False):
        record_authentication(request_for, technician, method="password", reauthenticated=True)
        record_authentication(request_for, technician, method="mfa", type="totp", reauthenticated=True)
    assert mfa_reauthenticated_at(request_for) == datetime(2026, 3, 1, 9, 40, tzinfo=UTC)


def test_another_users_records_do_not_count(request_for, technician, approvers):
    record_authentication(request_for, approvers[0], method="mfa", type="totp")
    assert mfa_reauthenticated_at(request_for) is None
