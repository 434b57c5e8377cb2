"""Gated helpdesk actions: allowed only with an active grant covering the action in the
person's organisation and the technician's own verified, unused, fresh verification for that
person and action. Each refusal names what is missing and links to its fix; performing
consumes the verification in the same transaction as the record and its event."""

import logging
from datetime import timedelta

import pytest
import time_machine
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django.utils import timezone

from access.action_models import DirectoryConnectorConfig, HelpdeskAction
from access.action_selectors import connector_for
from access.connectors import CONNECTORS, ActionResult, DirectoryConnector
from access.services import AccessError
from access.services.actions import (
    ActionFailed,
    ActionRefused,
    helpdesk_action_perform,
    temporary_password_generate,
)
from access.services.connectors import directory_connector_set
from audit.models import SecurityEvent
from tests.access.factories import GrantFactory, RoleFactory, database_now, technician_for
from tests.accounts.factories import OrganizationFactory, PersonFactory
from validation.models import Challenge, VerificationRequest

pytestmark = pytest.mark.django_db

ALL_ACTIONS = ["password_reset", "mfa_reset", "account_unlock", "contact_change"]


def verified(technician, person, action, *, at=None, **fields):
    """A verification row in the state the verification services leave it in once the
    policy is met (tests/validation covers getting there)."""
    at = at or timezone.now()
    return VerificationRequest.objects.create(
        organization=person.organization,
        person=person,
        technician=technician,
        action=action,
        ticket_reference="INC-77",
        status=VerificationRequest.Status.VERIFIED,
        created_at=at - timedelta(minutes=1),
        verified_at=at,
        expires_at=at + timedelta(minutes=15),
        **{"policy_snapshot": {"privileged": person.privileged}, **fields},
    )


@pytest.fixture
def person(org):
    return PersonFactory(organization=org, full_name="Ada Quartermain")


@pytest.fixture
def helpdesk_role(db):
    return RoleFactory(name="Helpdesk resets", actions=list(ALL_ACTIONS))


@pytest.fixture
def grant(technician, helpdesk_role, org):
    return GrantFactory(technician=technician, role=helpdesk_role, organization=org)


def perform(technician, person, action, verification, **kwargs):
    return helpdesk_action_perform(actor=technician, person=person, action=action, verification=verification, **kwargs)


def refusal(technician, person, action, verification) -> ActionRefused:
    with pytest.raises(ActionRefused) as caught:
        perform(technician, person, action, verification)
    return caught.value


def assert_nothing_done(verification):
    assert not HelpdeskAction.objects.exists()
    if verification is not None:
        verification.refresh_from_db()
        assert verification.consumed_at is None
    refused = SecurityEvent.objects.filter(event_type="action.refused")
    assert refused.count() == 1


# --- Performed ------------------------------------------------------------------------------


def test_an_mfa_reset_with_a_grant_and_a_verification_is_recorded_and_consumes_it(technician, person, grant):
    verification = verified(technician, person, "mfa_reset")

    outcome = perform(technician, person, "mfa_reset", verification)

    done = outcome.record
    assert outcome.temporary_password is None
    assert (done.person, done.technician, done.grant, done.connector) == (person, technician, grant, "record_only")
    assert done.reference.startswith("HD-") and done.reference in done.message
    verification.refresh_from_db()
    assert verification.consumed_at is not None and done.verification == verification
    event = SecurityEvent.objects.get(event_type="action.performed")
    assert event.details["person"] == person.pk and event.details["grant"] == grant.pk
    assert event.details["verification"] == verification.pk and event.details["reference"] == done.reference
    assert SecurityEvent.objects.filter(event_type="verification.request_consumed").count() == 1


def test_a_performed_action_shows_in_the_compliance_report_with_its_verification_and_grant(
    technician, person, grant, org
):
    from audit.report import compliance_report

    verification = verified(technician, person, "mfa_reset")
    done = perform(technician, person, "mfa_reset", verification).record
    refusal(technician, person, "password_reset", None)

    today = timezone.now().date()
    report = compliance_report(organization=org, since=today, until=today)
    (row,) = report.actions
    assert (row.verification, row.grant, row.role) == (str(verification.pk), str(grant.pk), grant.role.name)
    assert row.event.target_label == str(done)
    assert report.action_counts == {"performed": 1, "refused": 1, "failed": 0}


def test_references_are_unique_and_unguessable(technician, person, grant):
    references = {
        perform(technician, person, "account_unlock", verified(technician, person, "account_unlock")).record.reference
        for _ in range(5)
    }
    assert len(references) == 5
    assert all(len(r) == 13 and r[3:].isalnum() for r in references)


# --- Refused: the grant ---------------------------------------------------------------------


def test_refused_without_a_grant(technician, person):
    verification = verified(technician, person, "password_reset")

    refused = refusal(technician, person, "password_reset", verification)

    assert [m.kind for m in refused.missing] == ["grant"]
    assert "No active grant covers a password reset" in refused.missing[0].message
    assert refused.missing[0].fix_url == reverse("access:request_create")
    assert_nothing_done(verification)


def test_refused_with_a_grant_for_another_organisation(technician, person, helpdesk_role):
    elsewhere = OrganizationFactory()
    GrantFactory(technician=technician, role=helpdesk_role, organization=elsewhere)
    verification = verified(technician, person, "account_unlock")

    assert [m.kind for m in refusal(technician, person, "account_unlock", verification).missing] == ["grant"]
    assert_nothing_done(verification)


def test_refused_with_a_grant_for_another_action(technician, person, org):
    GrantFactory(technician=technician, role=RoleFactory(actions=["account_unlock"]), organization=org)
    verification = verified(technician, person, "mfa_reset")

    assert [m.kind for m in refusal(technician, person, "mfa_reset", verification).missing] == ["grant"]
    assert_nothing_done(verification)


def test_refused_with_a_grant_that_ended_a_second_ago(technician, person, helpdesk_role, org):
    # The grant check reads the database's clock, which time-machine cannot move: the window
    # is placed one second before the database's now (tests/access/test_authorization.py).
    now = database_now()
    GrantFactory(
        technician=technician,
        role=helpdesk_role,
        organization=org,
        starts_at=now - timedelta(hours=1),
        expires_at=now - timedelta(seconds=1),
    )
    verification = verified(technician, person, "password_reset")

    assert [m.kind for m in refusal(technician, person, "password_reset", verification).missing] == ["grant"]
    assert_nothing_done(verification)


def test_a_privileged_person_needs_a_role_covering_privileged_people(technician, org, helpdesk_role):
    boss = PersonFactory(organization=org, privileged=True)
    GrantFactory(technician=technician, role=helpdesk_role, organization=org)
    verification = verified(technician, boss, "mfa_reset")

    refused = refusal(technician, boss, "mfa_reset", verification)
    assert [m.kind for m in refused.missing] == ["grant"]
    assert "for a privileged person" in refused.missing[0].message
    assert_nothing_done(verification)

    covering = RoleFactory(actions=["mfa_reset"], covers_privileged=True)
    GrantFactory(technician=technician, role=covering, organization=org)
    assert perform(technician, boss, "mfa_reset", verification).record.grant.role == covering


def test_a_verification_made_before_the_person_became_privileged_does_not_cover_them(technician, org):
    covering = RoleFactory(actions=["mfa_reset"], covers_privileged=True)
    GrantFactory(technician=technician, role=covering, organization=org)
    person = PersonFactory(organization=org, privileged=False)
    verification = verified(technician, person, "mfa_reset")  # under the ordinary policy
    person.privileged = True
    person.save(update_fields=["privileged"])

    refused = refusal(technician, person, "mfa_reset", verification)
    assert [m.kind for m in refused.missing] == ["verification"]
    assert "became privileged" in refused.missing[0].message
    assert_nothing_done(verification)


def test_a_verification_that_expires_while_the_directory_is_called_still_records_the_change(
    technician, person, grant, monkeypatch
):
    """Consumed before the connector is called: once the directory has changed, the portal
    records it, however long the call took."""
    from access.connectors.record_only import RecordOnlyConnector

    real_unlock = RecordOnlyConnector.unlock
    with time_machine.travel(timezone.now(), tick=False) as clock:
        last_second = timezone.now() - timedelta(minutes=14, seconds=59)
        verification = verified(technician, person, "account_unlock", at=last_second)

        def slow_unlock(self, context):
            clock.shift(timedelta(seconds=5))  # the call outlasts the verification's last second
            return real_unlock(self, context)

        monkeypatch.setattr(RecordOnlyConnector, "unlock", slow_unlock)
        done = perform(technician, person, "account_unlock", verification).record
    verification.refresh_from_db()
    assert verification.consumed_at is not None and done.verification == verification


def test_the_fix_for_a_missing_grant_is_the_approved_request_to_activate(technician, person, org, approvers):
    from access import services
    from tests.access.factories import EligibilityFactory

    role = RoleFactory(actions=["mfa_reset"])
    eligibility = EligibilityFactory(technician=technician, role=role, organization=org)
    verification = verified(technician, person, "mfa_reset")
    fix = refusal(technician, person, "mfa_reset", verification).missing[0]
    assert fix.fix_url == reverse("access:request_create") + f"?eligibility={eligibility.pk}"
    assert fix.fix_label == f"Request {role}"

    access_request = services.access_request_create(
        actor=technician,
        role=role,
        organization=org,
        justification="Caller lost their phone with the authenticator",
        ticket_reference="INC-77",
        duration=timedelta(hours=1),
    )
    services.access_request_approve(actor=approvers[0], access_request=access_request)
    fix = refusal(technician, person, "mfa_reset", verification).missing[0]
    assert fix.fix_url == reverse("access:request_detail", args=[access_request.pk])
    assert fix.fix_label == f"Activate {role}"


# --- Refused: the verification ---------------------------------------------------------------


def test_refused_without_a_verification(technician, person, grant):
    refused = refusal(technician, person, "password_reset", None)

    assert [m.kind for m in refused.missing] == ["verification"]
    assert refused.missing[0].fix_url == reverse("validation:start", args=[person.pk]) + "?action=password_reset"
    assert_nothing_done(None)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ("action", "covers a password reset, not this action"),
        ("person", "is for another person"),
        ("technician", "made by another technician"),
    ],
)
def test_refused_with_a_verification_for_another_action_person_or_technician(
    technician, person, grant, org, change, says
):
    owner, subject, action = technician, person, "mfa_reset"
    if change == "action":
        action = "password_reset"
    elif change == "person":
        subject = PersonFactory(organization=org)
    else:
        owner = technician_for(org)
    verification = verified(owner, subject, action)

    refused = refusal(technician, person, "mfa_reset", verification)

    assert [m.kind for m in refused.missing] == ["verification"]
    assert says in refused.missing[0].message
    assert_nothing_done(verification)


def test_refused_with_a_verification_16_minutes_old_and_allowed_at_14(technician, person, grant):
    verification = verified(technician, person, "account_unlock")
    with time_machine.travel(verification.verified_at + timedelta(minutes=16), tick=False):
        refused = refusal(technician, person, "account_unlock", verification)
    assert [m.kind for m in refused.missing] == ["verification"]
    assert "more than 15 minutes old" in refused.missing[0].message
    assert_nothing_done(verification)

    with time_machine.travel(verification.verified_at + timedelta(minutes=14, seconds=59), tick=False):
        assert perform(technician, person, "account_unlock", verification).record


def test_refused_with_a_verification_already_consumed(technician, person, grant):
    verification = verified(technician, person, "account_unlock")
    perform(technician, person, "account_unlock", verification)

    refused = refusal(technician, person, "account_unlock", verification)

    assert [m.kind for m in refused.missing] == ["verification"]
    assert "already been used" in refused.missing[0].message
    assert HelpdeskAction.objects.count() == 1


def test_refused_with_neither_names_both(technician, person):
    refused = refusal(technician, person, "contact_change", None)
    assert [m.kind for m in refused.missing] == ["grant", "verification"]
    event = SecurityEvent.objects.get(event_type="action.refused")
    assert event.details["missing"] == ["grant", "verification"] and event.details["person"] == person.pk


# --- The directory connector --------------------------------------------------------------


class FailingDirectory(DirectoryConnector):
    """A test double of an outside directory that is down (or, ``raises``, of a buggy connector)."""

    name = "failing_test"
    label = "Failing test directory"
    raises = False

    def _fail(self, *args, **kwargs):
        if self.raises:
            raise ConnectionResetError("directory went away mid-call")
        return ActionResult.failure("The directory answered HTTP 503; try again shortly.", permanent=False)

    reset_password = reset_mfa = unlock = update_contact = _fail


@pytest.fixture
def failing_directory(monkeypatch, org):
    monkeypatch.setitem(CONNECTORS, FailingDirectory.name, FailingDirectory)
    DirectoryConnectorConfig.objects.create(organization=org, connector=FailingDirectory.name)
    return FailingDirectory


@pytest.mark.parametrize("raises", [False, True])
def test_a_connector_failure_leaves_the_verification_unconsumed_and_says_so(
    technician, person, grant, org, failing_directory, monkeypatch, raises
):
    monkeypatch.setattr(failing_directory, "raises", raises)
    verification = verified(technician, person, "mfa_reset")

    with pytest.raises(ActionFailed) as caught:
        perform(technician, person, "mfa_reset", verification)

    assert not caught.value.permanent
    expected = "HTTP 503" if not raises else "failing_test failed unexpectedly"
    assert expected in caught.value.message
    verification.refresh_from_db()
    assert verification.consumed_at is None and not HelpdeskAction.objects.exists()
    failed = SecurityEvent.objects.get(event_type="action.failed")
    assert failed.details["connector"] == "failing_test" and failed.details["verification"] == verification.pk
    assert not SecurityEvent.objects.filter(event_type__in=["action.performed", "verification.request_consumed"])

    # The directory is back: the same verification still covers the action, once.
    DirectoryConnectorConfig.objects.filter(organization=org).update(connector="record_only")
    assert perform(technician, person, "mfa_reset", verification).record.verification == verification


def test_an_organisation_without_a_connector_row_uses_the_default_setting(settings, org):
    settings.DIRECTORY_CONNECTOR_DEFAULT = "record_only"
    assert connector_for(organization=org).name == "record_only"
    settings.DIRECTORY_CONNECTOR_DEFAULT = "nonexistent"
    with pytest.raises(ImproperlyConfigured):
        connector_for(organization=org)


def test_only_superusers_choose_a_connector_and_the_choice_is_recorded(technician, org):
    from accounts.services import user_create

    with pytest.raises(AccessError):
        directory_connector_set(
            actor=technician, organization=org, connector="record_only", password_delivery="reset_link"
        )
    root = user_create(actor=None, email="root@msp.example", is_superuser=True)
    with pytest.raises(AccessError):
        directory_connector_set(actor=root, organization=org, connector="ldap", password_delivery="reset_link")

    config = directory_connector_set(
        actor=root, organization=org, connector="record_only", password_delivery="reset_link"
    )

    assert config.password_delivery == "reset_link"
    event = SecurityEvent.objects.get(event_type="action.connector_configured")
    assert event.details["after"] == {"connector": "record_only", "password_delivery": "reset_link"}


# --- Password reset --------------------------------------------------------------------------


def test_a_password_reset_gives_a_strong_temporary_password_never_stored_or_logged(technician, person, grant, caplog):
    verification = verified(technician, person, "password_reset")
    with caplog.at_level(logging.DEBUG):
        outcome = perform(technician, person, "password_reset", verification)

    password = outcome.temporary_password
    assert len(password) >= 16
    assert any(c.islower() for c in password) and any(c.isupper() for c in password)
    assert any(c.isdigit() for c in password) and any(not c.isalnum() for c in password)
    assert outcome.record.password_delivery == "temporary_password"
    assert password not in caplog.text
    assert_not_in_database(password)


def test_temporary_passwords_differ_every_time():
    assert len({temporary_password_generate() for _ in range(50)}) == 50


def test_a_password_reset_by_link_goes_to_the_channel_that_verified_the_caller(technician, person, grant, org):
    DirectoryConnectorConfig.objects.create(organization=org, connector="record_only", password_delivery="reset_link")
    verification = verified(technician, person, "password_reset")
    Challenge.objects.create(
        request=verification, method="push", status="approved", expires_at=timezone.now(), answered_at=timezone.now()
    )

    outcome = perform(technician, person, "password_reset", verification)

    assert outcome.temporary_password is None and outcome.record.password_delivery == "reset_link"
    assert f"password-reset link to their phone of record {person.masked_phone}" in outcome.record.message
    assert person.phone not in outcome.record.message


def assert_not_in_database(secret: str) -> None:
    """Not in any row of any table (values of every model, as text)."""
    for model in apps.get_models():
        for row in model.objects.values_list():
            assert secret not in repr(row), f"found in {model._meta.label}"


def test_a_contact_taken_meanwhile_fails_cleanly_and_changes_nothing(technician, person, grant, org, monkeypatch):
    """Another person got the new email between the form's check and the change (an import
    running at the same moment): the action fails before the directory is called, says so,
    and leaves the person and the verification as they were."""
    import access.services.actions as actions

    PersonFactory(organization=org, email="taken@example.com")
    monkeypatch.setattr(actions, "clean_contact", lambda *, person, field, value: value)  # the race: checked before
    verification = verified(technician, person, "contact_change")
    before = person.email
    with pytest.raises(ActionFailed, match="already has this contact"):
        perform(
            technician, person, "contact_change", verification, contact_field="email", new_contact="taken@example.com"
        )
    person.refresh_from_db()
    verification.refresh_from_db()
    assert person.email == before and person.contact_changed_at is None
    assert verification.consumed_at is None
    assert not HelpdeskAction.objects.exists()
    assert SecurityEvent.objects.filter(event_type="action.failed").count() == 1
