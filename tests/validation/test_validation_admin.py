"""The verification models in the Django admin: scoped to assigned organisations, policies
edited through the service (floors and the security event), everything else read-only and
without secrets."""

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import Role
from audit.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory
from tests.validation.factories import AuthenticatorFactory, technician_for
from validation import services
from validation.models import Action, Challenge, Method, PersonVerificationState, VerificationPolicy

POLICIES = "/admin/validation/verificationpolicy/"
REQUESTS = "/admin/validation/verificationrequest/"
CHALLENGES = "/admin/validation/challenge/"
AUTHENTICATORS = "/admin/validation/personauthenticator/"
STATES = "/admin/validation/personverificationstate/"


def _perms(*codenames):
    return Permission.objects.filter(content_type__app_label="validation", codename__in=codenames)


ALL_PERMS = (
    "view_verificationpolicy",
    "add_verificationpolicy",
    "change_verificationpolicy",
    "delete_verificationpolicy",
    "view_verificationrequest",
    "change_verificationrequest",
    "delete_verificationrequest",
    "view_challenge",
    "change_challenge",
    "view_personauthenticator",
    "change_personauthenticator",
    "view_personverificationstate",
    "change_personverificationstate",
)


@pytest.fixture
def org_admin(org):
    user = UserFactory(is_staff=True, roles=[Role.ORG_ADMIN], organizations=[org], mfa=True)
    user.user_permissions.add(*_perms(*ALL_PERMS))
    return user


@pytest.fixture
def admin_client(client, org_admin):
    client.force_login(org_admin)
    return client


@pytest.fixture
def root_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, mfa=True))
    return client


@pytest.fixture
def policy(org):
    return services.policy_for(organization=org, action=Action.MFA_RESET)


@pytest.fixture
def foreign_policy(db):
    return services.policy_for(organization=OrganizationFactory(), action=Action.MFA_RESET)


def _policy_form(**changes):
    data = {
        "allowed_methods": ["push", "totp", "sms_code"],
        "min_methods": "2",
        "min_strong_methods": "1",
        "required_methods": [],
        "privileged_extra_methods": "1",
        "approval_required": "never",
        "_save": "Save",
    }
    data.update(changes)
    return data


@pytest.fixture
def verification(org, person, outbox, django_capture_on_commit_callbacks):
    """A request with a sent SMS code and a sent push link: both have secrets stored."""
    technician = technician_for(org)
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.MFA_RESET, ticket_reference="INC-9"
    )
    with django_capture_on_commit_callbacks(execute=True):
        services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
        services.challenge_start(actor=technician, verification=verification, method=Method.PUSH)
    return verification


# --- Policies ----------------------------------------------------------------------------


def test_policy_list_shows_only_assigned_organisations(admin_client, policy, foreign_policy):
    response = admin_client.get(POLICIES)
    assert list(response.context["cl"].result_list) == [policy]
    assert admin_client.get(f"{POLICIES}{foreign_policy.pk}/change/").status_code == 404


def test_org_admin_edits_a_policy_through_the_service(admin_client, org_admin, policy):
    response = admin_client.post(f"{POLICIES}{policy.pk}/change/", _policy_form(min_methods="3"))
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.min_methods == 3 and policy.updated_by == org_admin
    event = SecurityEvent.objects.get(event_type="verification.policy_changed")
    assert event.actor_id == org_admin.pk and event.details["before"]["min_methods"] == 2


def test_weakening_in_the_admin_shows_the_floor_and_changes_nothing(admin_client, policy):
    response = admin_client.post(
        f"{POLICIES}{policy.pk}/change/",
        _policy_form(allowed_methods=["sms_code"], min_methods="1", min_strong_methods="0"),
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "at least one strong method" in errors["min_strong_methods"][0]
    policy.refresh_from_db()
    assert policy.allowed_methods == ["push", "totp", "sms_code", "manager_approval", "peer_approval"]
    assert policy.min_strong_methods == 1 and policy.approval_required == "always"
    assert not SecurityEvent.objects.filter(event_type="verification.policy_changed").exists()


def test_org_admin_cannot_add_or_delete_policies(admin_client, org, policy):
    assert admin_client.get(f"{POLICIES}add/").status_code == 403
    assert admin_client.post(f"{POLICIES}{policy.pk}/delete/", {"post": "yes"}).status_code == 403
    assert VerificationPolicy.objects.filter(pk=policy.pk).exists()


def test_staff_without_the_org_admin_role_reads_policies_only(client, org, policy):
    user = UserFactory(is_staff=True, roles=[Role.TECHNICIAN], organizations=[org], mfa=True)
    user.user_permissions.add(*_perms("view_verificationpolicy", "change_verificationpolicy"))
    client.force_login(user)
    assert client.get(f"{POLICIES}{policy.pk}/change/").status_code == 200
    assert client.post(f"{POLICIES}{policy.pk}/change/", _policy_form(min_methods="3")).status_code == 403
    policy.refresh_from_db()
    assert policy.min_methods == 2


def test_superuser_adds_and_deletes_with_events(root_client, org):
    response = root_client.post(
        f"{POLICIES}add/", {**_policy_form(min_methods="1"), "organization": org.pk, "action": Action.OTHER}
    )
    assert response.status_code == 302
    policy = VerificationPolicy.objects.get(organization=org, action=Action.OTHER)
    assert policy.allowed_methods == ["push", "totp", "sms_code"] and policy.min_strong_methods == 1
    assert SecurityEvent.objects.filter(event_type="verification.policy_changed").count() == 1
    response = root_client.post(f"{POLICIES}{policy.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302 and not VerificationPolicy.objects.filter(pk=policy.pk).exists()
    reset = SecurityEvent.objects.filter(event_type="verification.policy_changed").latest("pk")
    assert reset.details["reset"] is True and reset.details["before"]["min_strong_methods"] == 1


def test_adding_a_duplicate_policy_is_a_form_error(root_client, policy):
    response = root_client.post(
        f"{POLICIES}add/", {**_policy_form(), "organization": policy.organization_id, "action": policy.action}
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors
    assert VerificationPolicy.objects.filter(organization=policy.organization).count() == 1


# --- Requests and challenges -------------------------------------------------------------


def test_requests_and_challenges_are_read_only_and_never_show_secrets(admin_client, verification):
    secrets = [c.code_hmac or c.link_nonce_hash for c in verification.challenges.all()]
    assert all(secrets) and len(secrets) == 2
    pages = [
        admin_client.get(REQUESTS),
        admin_client.get(f"{REQUESTS}{verification.pk}/change/"),
        admin_client.get(CHALLENGES),
        *(admin_client.get(f"{CHALLENGES}{c.pk}/change/") for c in verification.challenges.all()),
    ]
    for page in pages:
        assert page.status_code == 200
        for secret in secrets:
            assert secret.encode() not in page.content
        assert b"code_hmac" not in page.content and b"link_nonce_hash" not in page.content
    assert b"INC-9" in pages[1].content and b'name="_save"' not in pages[1].content
    challenge = verification.challenges.first()
    assert admin_client.post(f"{REQUESTS}{verification.pk}/change/", {"ticket_reference": "X"}).status_code == 403
    assert admin_client.post(f"{CHALLENGES}{challenge.pk}/change/", {"status": "approved"}).status_code == 403
    assert admin_client.get(f"{REQUESTS}add/").status_code == 403
    assert admin_client.post(f"{REQUESTS}{verification.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"{CHALLENGES}add/").status_code == 403
    assert Challenge.objects.filter(status="approved").count() == 0


def test_another_organisations_request_is_404_and_not_listed(client, verification):
    other = OrganizationFactory()
    user = UserFactory(is_staff=True, roles=[Role.ORG_ADMIN], organizations=[other], mfa=True)
    user.user_permissions.add(*_perms(*ALL_PERMS))
    client.force_login(user)
    assert list(client.get(REQUESTS).context["cl"].result_list) == []
    assert list(client.get(CHALLENGES).context["cl"].result_list) == []
    assert client.get(f"{REQUESTS}{verification.pk}/change/").status_code == 404
    assert client.get(f"{CHALLENGES}{verification.challenges.first().pk}/change/").status_code == 404


# --- Authenticators and per-person state ------------------------------------------------


def test_authenticator_is_read_only_without_key_fields(admin_client, org):
    authenticator = AuthenticatorFactory(person=PersonFactory(organization=org))
    foreign = AuthenticatorFactory()
    response = admin_client.get(f"{AUTHENTICATORS}{authenticator.pk}/change/")
    assert response.status_code == 200
    assert authenticator.sealed_key.encode() not in response.content and b"sealed_key" not in response.content
    assert admin_client.post(f"{AUTHENTICATORS}{authenticator.pk}/change/", {}).status_code == 403
    assert admin_client.get(f"{AUTHENTICATORS}{foreign.pk}/change/").status_code == 404
    assert list(admin_client.get(AUTHENTICATORS).context["cl"].result_list) == [authenticator]


def test_verification_state_is_read_only(admin_client, person):
    state = PersonVerificationState.objects.create(
        person=person, consecutive_failures=20, locked_at=timezone.now(), locked_reason="20 failures"
    )
    response = admin_client.get(f"{STATES}{state.pk}/change/")
    assert response.status_code == 200 and b"20 failures" in response.content
    assert admin_client.post(f"{STATES}{state.pk}/change/", {"locked_at": ""}).status_code == 403
    assert admin_client.post(f"{STATES}{state.pk}/delete/", {"post": "yes"}).status_code == 403
    state.refresh_from_db()
    assert state.locked_at is not None
