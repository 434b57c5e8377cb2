"""The queries a verification round trip costs (the benchmark's path, bench/verification.py):
create the request, send an SMS code (htmx), type the code in (htmx). Counts, never times.

Under pytest each ``transaction.atomic`` is a savepoint inside the test's transaction, so
the counts include SAVEPOINT/RELEASE where production has BEGIN/COMMIT."""

import re

import pytest
from django.db import connection
from django.urls import reverse

from accounts import services as account_services
from accounts.models import User
from accounts.selectors import organization_ids_for_user, organization_scope_memo
from tests.accounts.factories import OrganizationFactory
from tests.validation.factories import technician_for
from tests.validation.helpers import code_in, last_text
from validation.models import Action, Challenge, VerificationRequest
from validation.services.policies import policy_for

CACHE_SESSIONS = "django.contrib.sessions.backends.cache"
HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def tech_client(client, settings, org):
    settings.SESSION_ENGINE = CACHE_SESSIONS
    technician = technician_for(org, mfa=True)
    client.force_login(technician)
    client.get(reverse("validation:list"))  # the first request stamps the session
    return client


def test_a_round_trip_costs_a_bounded_number_of_queries(
    tech_client, org, person, outbox, django_capture_on_commit_callbacks, django_assert_max_num_queries
):
    policy_for(organization=org, action=Action.OTHER)  # an organisation's first request makes its policy
    # PostgreSQL makes the person's state row and reads their lock in one statement, SQLite in two.
    # The technician's role was read with them.
    with django_assert_max_num_queries(8 if connection.vendor == "postgresql" else 9):
        response = tech_client.post(
            reverse("validation:start", args=[person.pk]), {"action": "other", "ticket_reference": "INC-1"}
        )
    assert response.status_code == 302
    verification = VerificationRequest.objects.get()
    # PostgreSQL inserts the challenge and bumps the live view's version in one statement. The
    # person's lock is read with the locked request.
    sends = 12 if connection.vendor == "postgresql" else 13
    with django_capture_on_commit_callbacks() as queued, django_assert_max_num_queries(sends):
        response = tech_client.post(reverse("validation:send", args=[verification.pk]), {"method": "sms_code"}, **HX)
    assert response.status_code == 200 and "Check code" in response.content.decode()
    # The worker's send (the development outbox): it locks the challenge alone to store its
    # code, and PostgreSQL marks it sent, bumps the live view's version and records the event
    # in one statement.
    with django_assert_max_num_queries(9 if connection.vendor == "postgresql" else 10):
        for callback in queued:
            callback()
    challenge = Challenge.objects.get()
    assert challenge.status == Challenge.Status.SENT
    code = code_in(last_text(person.phone))
    url = re.search(r'hx-post="(/verifications/\d+/challenges/\d+/code/)"', response.content.decode()).group(1)
    # No other challenge open: none to close. The challenge is read with its siblings, which
    # the policy is then re-evaluated from. PostgreSQL approves the challenge with its event
    # in one statement, and marks the request verified, resets the failure counter and
    # records that event in another; SQLite takes five.
    with django_assert_max_num_queries(10 if connection.vendor == "postgresql" else 13):
        response = tech_client.post(url, {"code": code}, **HX)
    assert "Verified until" in response.content.decode()


def test_a_request_reads_the_users_organisations_once(tech_client, person, django_assert_max_num_queries):
    verification_url = reverse("validation:start", args=[person.pk])
    with django_assert_max_num_queries(20) as captured:
        tech_client.get(verification_url)
    [scope_read] = [q["sql"] for q in captured.captured_queries if "guardian_userobjectpermission" in q["sql"]]
    assert "accounts_user u" in scope_read  # read with the signed-in user, in one statement


def test_an_assignment_removed_is_in_force_from_the_next_request(tech_client, org, person):
    url = reverse("validation:start", args=[person.pk])
    assert tech_client.get(url).status_code == 200
    technician = User.objects.get(pk=tech_client.session["_auth_user_id"])
    account_services.organization_unassign_staff(actor=None, organization=org, user=technician)
    assert tech_client.get(url).status_code == 404


def test_an_organisation_deactivated_is_out_of_scope_from_the_next_request(tech_client, org, person):
    url = reverse("validation:start", args=[person.pk])
    assert tech_client.get(url).status_code == 200
    org.active = False
    org.save(update_fields=["active"])
    assert tech_client.get(url).status_code == 404


def test_outside_a_request_every_call_asks_and_a_change_is_forgotten_inside(org, django_assert_num_queries):
    technician = technician_for(org)
    other = OrganizationFactory()
    with django_assert_num_queries(2):
        assert organization_ids_for_user(user=technician) == (org.pk,)
        assert organization_ids_for_user(user=technician) == (org.pk,)
    with organization_scope_memo():
        with django_assert_num_queries(1):
            organization_ids_for_user(user=technician)
            organization_ids_for_user(user=technician)
        account_services.organization_assign_staff(actor=None, organization=other, user=technician)
        assert organization_ids_for_user(user=technician) == tuple(sorted((org.pk, other.pk)))


def _locks(captured) -> list[str]:
    """The row locks the statements asked for, in order ("r", "c", "s": request, challenge,
    the person's verification state)."""
    return [m.group(1) for q in captured for m in [re.search(r"FOR UPDATE OF (\w+)\s*$", q["sql"])] if m]


def test_the_written_out_round_trip_takes_its_row_locks_in_the_documented_order(
    tech_client, org, person, outbox, django_capture_on_commit_callbacks
):
    """Each send and answer locks the request's row, and an answer first the person's state
    and last the challenge's; the worker's first transaction locks only the challenge, and
    writes nothing else (the lock order of ``validation.services._common.request_lock``,
    which keeps concurrent answers, sends and fraud reports from deadlocking). Only
    PostgreSQL locks rows."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    if connection.vendor != "postgresql":
        pytest.skip("row locks are PostgreSQL's (SQLite locks the whole file)")
    policy_for(organization=org, action=Action.OTHER)
    tech_client.post(reverse("validation:start", args=[person.pk]), {"action": "other", "ticket_reference": "INC-2"})
    verification = VerificationRequest.objects.get()
    with CaptureQueriesContext(connection) as sent, django_capture_on_commit_callbacks() as queued:
        response = tech_client.post(reverse("validation:send", args=[verification.pk]), {"method": "sms_code"}, **HX)
    assert _locks(sent.captured_queries) == ["r"]
    with CaptureQueriesContext(connection) as dispatched:
        for callback in queued:
            callback()
    assert _locks(dispatched.captured_queries) == ["c"]
    url = re.search(r'hx-post="(/verifications/\d+/challenges/\d+/code/)"', response.content.decode()).group(1)
    with CaptureQueriesContext(connection) as answered:
        response = tech_client.post(url, {"code": code_in(last_text(person.phone))}, **HX)
    assert "Verified until" in response.content.decode()
    assert _locks(answered.captured_queries) == ["s", "r", "c"]
