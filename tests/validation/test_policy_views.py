"""Policy pages: every assigned staff member reads them; org admins change them within the
hard floors; another organisation is a 404."""

import pytest
from django.urls import reverse

from accounts.models import Role
from audit.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory, UserFactory
from validation import services
from validation.models import Action, Method, VerificationPolicy

STRONGER = {
    "allowed_methods": [Method.PUSH, Method.TOTP, Method.SMS_CODE, Method.MANAGER_APPROVAL],
    "min_methods": "2",
    "min_strong_methods": "1",
    "required_methods": [Method.TOTP],
    "privileged_extra_methods": "1",
    "approval_required": "always",
}


@pytest.fixture
def org_admin(org):
    return UserFactory(roles=[Role.ORG_ADMIN], organizations=[org], mfa=True)


@pytest.fixture
def admin_client(client, org_admin):
    client.force_login(org_admin)
    return client


def edit_url(org, action=Action.PASSWORD_RESET):
    return reverse("validation:policy_edit", args=[org.slug, action])


def test_policy_list_describes_each_action(client, org):
    client.force_login(UserFactory(roles=[Role.TECHNICIAN], organizations=[org], mfa=True))
    response = client.get(reverse("validation:policy_list", args=[org.slug]))
    assert response.status_code == 200
    page = response.content.decode()
    for action in Action:
        assert str(action.label) in page
    assert (
        "1 independent method from Number-matched approval link, Authenticator app code, Manager approval, "
        "Peer approval; at least 1 strong (push or authenticator)" in page
    )
    assert "must include a manager or peer approval (privileged person: stricter)" in page
    assert "(privileged person: stricter)" in page
    assert "Only organisation admins may change these policies." in page
    assert edit_url(org) not in page


def test_org_admin_sees_edit_links_and_the_organisation_page_links_to_policies(admin_client, org):
    response = admin_client.get(reverse("validation:policy_list", args=[org.slug]))
    assert edit_url(org, Action.MFA_RESET).encode() in response.content
    page = admin_client.get(reverse("organization_detail", args=[org.slug]))
    assert reverse("validation:policy_list", args=[org.slug]).encode() in page.content


def test_technician_sees_no_policy_link_on_the_organisation_page(client, org):
    client.force_login(UserFactory(roles=[Role.TECHNICIAN], organizations=[org], mfa=True))
    page = client.get(reverse("organization_detail", args=[org.slug]))
    assert reverse("validation:policy_list", args=[org.slug]).encode() not in page.content


def test_org_admin_strengthens_a_policy_and_it_is_recorded(admin_client, org, org_admin):
    form = admin_client.get(edit_url(org))
    assert form.status_code == 200 and b'value="push"' in form.content and b"checked" in form.content
    response = admin_client.post(edit_url(org), STRONGER)
    assert response.status_code == 302 and response["Location"] == reverse("validation:policy_list", args=[org.slug])
    policy = VerificationPolicy.objects.get(organization=org, action=Action.PASSWORD_RESET)
    assert policy.allowed_methods == ["push", "totp", "sms_code", "manager_approval"] and policy.min_methods == 2
    assert policy.approval_required == "always"
    assert policy.required_methods == ["totp"] and policy.updated_by == org_admin
    event = SecurityEvent.objects.get(event_type="verification.policy_changed")
    assert event.actor_id == org_admin.pk and event.details["after"]["min_methods"] == 2
    assert b"2 independent methods from" in admin_client.get(response["Location"]).content


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"allowed_methods": [Method.SMS_CODE], "min_strong_methods": "0"}, "min_strong_methods"),
        ({"min_strong_methods": "0"}, "min_strong_methods"),
        ({"allowed_methods": []}, "allowed_methods"),
        ({"min_methods": "3", "allowed_methods": [Method.PUSH, Method.TOTP]}, "min_methods"),
        ({"required_methods": [Method.SMS_CODE], "allowed_methods": [Method.PUSH]}, "required_methods"),
        ({"privileged_extra_methods": "9"}, "privileged_extra_methods"),
        ({"min_methods": "many"}, "min_methods"),
        ({"allowed_methods": ["carrier_pigeon"]}, "allowed_methods"),
        ({"allowed_methods": [Method.PUSH, Method.TOTP], "approval_required": "always"}, "approval_required"),
        ({"approval_required": "sometimes"}, "approval_required"),
    ],
)
def test_weakening_below_the_floors_shows_errors_and_changes_nothing(admin_client, org, changes, field):
    before = services.policy_for(organization=org, action=Action.PASSWORD_RESET)
    data = {**STRONGER, "min_methods": "1", "required_methods": [], **changes}
    response = admin_client.post(edit_url(org), data)
    assert response.status_code == 200
    assert response.context["form"].errors[field]
    assert b'class="errorlist' in response.content
    after = VerificationPolicy.objects.get(pk=before.pk)
    assert (after.allowed_methods, after.min_methods, after.min_strong_methods) == (
        before.allowed_methods,
        before.min_methods,
        before.min_strong_methods,
    )
    assert not SecurityEvent.objects.filter(event_type="verification.policy_changed").exists()


def test_technician_may_not_edit_policies(client, org):
    client.force_login(UserFactory(roles=[Role.TECHNICIAN], organizations=[org], mfa=True))
    assert client.get(edit_url(org)).status_code == 403
    response = client.post(edit_url(org), STRONGER)
    assert response.status_code == 403 and b"Only organisation admins" in response.content
    assert not SecurityEvent.objects.filter(event_type="verification.policy_changed").exists()
    assert VerificationPolicy.objects.filter(min_methods=2, action=Action.PASSWORD_RESET).count() == 0


def test_another_organisation_is_404_even_for_an_org_admin(admin_client, org):
    other = OrganizationFactory()
    assert admin_client.get(reverse("validation:policy_list", args=[other.slug])).status_code == 404
    assert admin_client.get(edit_url(other)).status_code == 404
    assert admin_client.post(edit_url(other), STRONGER).status_code == 404
    assert not VerificationPolicy.objects.filter(organization=other).exists()


def test_unknown_action_is_404(admin_client, org):
    assert admin_client.get(reverse("validation:policy_edit", args=[org.slug, "format_disk"])).status_code == 404


def test_superuser_edits_any_organisation(client, org):
    client.force_login(UserFactory(is_superuser=True, mfa=True))
    assert client.post(edit_url(org, Action.OTHER), {**STRONGER, "required_methods": []}).status_code == 302
    assert VerificationPolicy.objects.get(organization=org, action=Action.OTHER).min_methods == 2


def test_open_request_keeps_its_snapshot_after_an_edit(admin_client, org, person, technician):
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.PASSWORD_RESET, ticket_reference="INC-1"
    )
    admin_client.post(edit_url(org), STRONGER)
    verification.refresh_from_db()
    assert verification.policy_snapshot["min_methods"] == 1
