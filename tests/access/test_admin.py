"""JIT access in the Django admin: scoped to assigned organisations, every write through the
services (roles, eligibilities, decisions, revocation, review), self-approval refused the
same way, requests, approvals and grants otherwise read-only."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission

from access import services
from access.models import AccessRequest, Approval, Eligibility, Grant, Role
from accounts.models import Role as StaffRole
from audit.models import SecurityEvent
from tests.access.factories import EligibilityFactory, GrantFactory, approver_group, technician_for
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

ROLES = "/admin/access/role/"
ELIGIBILITIES = "/admin/access/eligibility/"
REQUESTS = "/admin/access/accessrequest/"
APPROVALS = "/admin/access/approval/"
GRANTS = "/admin/access/grant/"


def _perms(*codenames):
    return Permission.objects.filter(content_type__app_label="access", codename__in=codenames)


VIEW_ALL = ("view_role", "view_eligibility", "view_accessrequest", "view_approval", "view_grant")
# Django's model permissions do not open a path around the services: change and delete are granted here too.
EVERYTHING = (
    *VIEW_ALL,
    "add_eligibility",
    "change_eligibility",
    "delete_eligibility",
    "add_accessrequest",
    "change_accessrequest",
    "add_approval",
    "change_approval",
    "add_grant",
    "change_grant",
    "delete_grant",
    "add_role",
    "change_role",
)


def staff(org, *roles):
    user = UserFactory(is_staff=True, roles=list(roles), organizations=[org], mfa=True)
    user.user_permissions.add(*_perms(*EVERYTHING))
    return user


@pytest.fixture
def org_admin(org):
    return staff(org, StaffRole.ORG_ADMIN)


@pytest.fixture
def admin_client(client, org_admin):
    client.force_login(org_admin)
    return client


@pytest.fixture
def foreign_grant(other_org):
    return GrantFactory(technician=technician_for(other_org), organization=other_org)


def action(client, url, name, objects, **data):
    return client.post(url, {"action": name, "_selected_action": [o.pk for o in objects], **data})


def offered_actions(response) -> set[str]:
    form = response.context["action_form"]
    return set(dict(form.fields["action"].choices)) if form is not None else set()


def events(event_type):
    return SecurityEvent.objects.filter(event_type=event_type).count()


# --- Scope and read-only --------------------------------------------------------------------


def test_lists_show_only_assigned_organisations(admin_client, approved, activate, foreign_grant):
    grant = activate(approved())
    for url, mine, theirs in (
        (GRANTS, grant, foreign_grant),
        (REQUESTS, grant.request, foreign_grant.request),
    ):
        page = admin_client.get(url)
        assert page.status_code == 200
        assert list(page.context["cl"].queryset) == [mine]
        assert admin_client.get(f"{url}{theirs.pk}/change/").status_code == 404
    assert admin_client.get(f"{GRANTS}{grant.pk}/change/").status_code == 200


def test_eligibilities_and_approvals_are_scoped(admin_client, eligible, other_org, approved, role):
    theirs = EligibilityFactory(technician=technician_for(other_org), role=role, organization=other_org)
    assert list(admin_client.get(ELIGIBILITIES).context["cl"].queryset) == [eligible]
    assert admin_client.get(f"{ELIGIBILITIES}{theirs.pk}/change/").status_code == 404
    access_request = approved()
    assert list(admin_client.get(APPROVALS).context["cl"].queryset) == list(access_request.approvals.all())


def test_requests_approvals_and_grants_are_read_only_even_with_model_permissions(
    admin_client, approved, activate, client
):
    grant = activate(approved())
    for url, obj in ((GRANTS, grant), (REQUESTS, grant.request), (APPROVALS, grant.request.approvals.get())):
        assert admin_client.get(f"{url}add/").status_code == 403
        page = admin_client.get(f"{url}{obj.pk}/change/")
        assert b'name="_save"' not in page.content
        assert admin_client.post(f"{url}{obj.pk}/change/", {}).status_code == 403
        assert admin_client.post(f"{url}{obj.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Grant.objects.get(pk=grant.pk).expires_at == grant.expires_at


def test_superusers_cannot_add_approvals_either(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, mfa=True))
    assert client.get(f"{APPROVALS}add/").status_code == 403
    assert client.get(f"{GRANTS}add/").status_code == 403


# --- Decisions: self-approval refused like everywhere -------------------------------------


def test_the_requester_cannot_approve_their_own_request_in_the_admin(client, org, role):
    both = staff(org, StaffRole.TECHNICIAN, StaffRole.APPROVER)
    staff(org, StaffRole.APPROVER)  # someone else can approve, so the request can be made
    EligibilityFactory(technician=both, role=role, organization=org)
    access_request = services.access_request_create(
        actor=both, role=role, organization=org, justification="Payroll lead locked out", ticket_reference="INC-3"
    )
    client.force_login(both)
    page = action(client, REQUESTS, "approve_requests", [access_request])
    assert page.status_code == 200 and b"Approve requests" in page.content  # the comment page
    response = action(client, REQUESTS, "approve_requests", [access_request], confirmed="yes", text="")
    assert response.status_code == 302
    shown = [str(m) for m in client.get(REQUESTS).context["messages"]]
    assert any("You cannot decide your own access request" in m for m in shown)
    assert AccessRequest.objects.get(pk=access_request.pk).status == AccessRequest.Status.PENDING
    assert not Approval.objects.exists()
    assert events("access.self_approval_refused") == 1


def test_an_approver_approves_and_denies_through_the_service(client, org, ask, approvers):
    approver = staff(org, StaffRole.APPROVER)
    client.force_login(approver)
    first = ask()
    response = action(client, REQUESTS, "approve_requests", [first], confirmed="yes", text="Checked the ticket")
    assert response.status_code == 302
    first.refresh_from_db()
    assert first.status == AccessRequest.Status.APPROVED and first.approvals.get().comment == "Checked the ticket"
    services.access_request_cancel(actor=first.technician, access_request=first)
    second = ask()
    action(client, REQUESTS, "deny_requests", [second], confirmed="yes", text="No")
    assert AccessRequest.objects.get(pk=second.pk).status == AccessRequest.Status.DENIED
    assert events("access.request_approved") == 1 and events("access.request_denied") == 1


def test_decision_actions_are_not_offered_to_non_approvers(admin_client, ask):
    ask()
    assert not {"approve_requests", "deny_requests"} & offered_actions(admin_client.get(REQUESTS))


# --- Revocation and review -------------------------------------------------------------------


def test_revocation_is_an_action_with_a_reason(admin_client, approved, activate, org_admin):
    grant = activate(approved())
    page = action(admin_client, GRANTS, "revoke_grants", [grant], confirmed="yes", text="")
    assert page.status_code == 200 and b"This field is required." in page.content
    assert Grant.objects.get(pk=grant.pk).revoked_at is None
    response = action(admin_client, GRANTS, "revoke_grants", [grant], confirmed="yes", text="Ticket closed")
    assert response.status_code == 302
    grant.refresh_from_db()
    assert grant.revoked_by == org_admin and grant.reason == "Ticket closed"
    assert events("access.grant_revoked") == 1


def test_revocation_is_not_offered_to_technicians(client, org, approved, activate):
    grant = activate(approved())
    tech = staff(org, StaffRole.TECHNICIAN)
    client.force_login(tech)
    assert "revoke_grants" not in offered_actions(client.get(GRANTS))
    action(client, GRANTS, "revoke_grants", [grant], confirmed="yes", text="x")
    assert Grant.objects.get(pk=grant.pk).revoked_at is None


def test_break_glass_review_through_the_service(admin_client, org, technician, org_admin):
    from tests.access.factories import BreakGlassRoleFactory

    role = BreakGlassRoleFactory()
    EligibilityFactory(technician=technician, role=role, organization=org)
    grant = services.break_glass_activate(
        actor=technician, role=role, organization=org, justification="Ransomware on payroll", ticket_reference="I-9"
    )
    action(admin_client, GRANTS, "review_break_glass", [grant], confirmed="yes", text="Confirmed incident")
    grant.refresh_from_db()
    assert grant.reviewed_by == org_admin and grant.review_notes == "Confirmed incident"


# --- Eligibilities ---------------------------------------------------------------------------


def _eligibility_form(technician, role, org, **overrides):
    return {
        "technician": technician.pk,
        "role": role.pk,
        "organization": org.pk,
        "valid_until_0": "",
        "valid_until_1": "",
        "_save": "Save",
        **overrides,
    }


def test_org_admin_makes_a_technician_eligible_through_the_service(admin_client, org, role, technician, org_admin):
    response = admin_client.post(f"{ELIGIBILITIES}add/", _eligibility_form(technician, role, org))
    assert response.status_code == 302, response.content[:2000]
    eligibility = Eligibility.objects.get()
    assert eligibility.created_by == org_admin
    assert events("access.eligibility_created") == 1


def test_only_technicians_are_offered(admin_client, org, role, org_admin):
    response = admin_client.post(f"{ELIGIBILITIES}add/", _eligibility_form(org_admin, role, org))
    assert "Select a valid choice" in response.content.decode()
    assert not Eligibility.objects.exists()


def test_the_services_refusal_is_shown_and_changes_nothing(org, other_org, role, client):
    org_admin_of_both = staff(org, StaffRole.ORG_ADMIN)
    from accounts.services import organization_assign_staff

    organization_assign_staff(actor=None, organization=other_org, user=org_admin_of_both)
    outsider = technician_for(other_org)
    client.force_login(org_admin_of_both)
    response = client.post(f"{ELIGIBILITIES}add/", _eligibility_form(outsider, role, org), follow=True)
    assert response.status_code == 200
    assert f"{outsider} is not a technician assigned to {org}." in [str(m) for m in response.context["messages"]]
    assert not Eligibility.objects.exists()


def test_ending_an_eligibility_is_an_action(admin_client, eligible, approved, activate):
    grant = activate(approved())
    action(admin_client, ELIGIBILITIES, "end_eligibilities", [eligible], confirmed="yes", text="Left the team")
    assert Eligibility.objects.get(pk=eligible.pk).ended_at is not None
    assert Grant.objects.get(pk=grant.pk).revoked_at is not None


def test_eligibilities_are_never_edited_or_deleted(admin_client, eligible):
    assert admin_client.post(f"{ELIGIBILITIES}{eligible.pk}/change/", {}).status_code == 403
    assert admin_client.post(f"{ELIGIBILITIES}{eligible.pk}/delete/", {"post": "yes"}).status_code == 403


# --- Roles ---------------------------------------------------------------------------------


def _role_form(**overrides):
    return {
        "name": "Unlock only",
        "description": "",
        "actions": ["account_unlock"],
        "max_duration": "01:00:00",
        "approvals_required": "1",
        "approver_group": str(approver_group().pk),
        "requires_mfa_reauth": "on",
        "active": "on",
        "_save": "Save",
        **overrides,
    }


def test_superusers_define_roles_through_the_service(client, db):
    root = UserFactory(is_staff=True, is_superuser=True, mfa=True)
    client.force_login(root)
    assert client.post(f"{ROLES}add/", _role_form()).status_code == 302
    role = Role.objects.get(name="Unlock only")
    assert role.actions == ["account_unlock"] and events("access.role_created") == 1
    response = client.post(f"{ROLES}{role.pk}/change/", _role_form(max_duration="02:00:00"))
    assert response.status_code == 302
    assert Role.objects.get(pk=role.pk).max_duration == timedelta(hours=2)
    assert SecurityEvent.objects.get(event_type="access.role_changed").details["fields"] == ["max_duration"]


def test_a_role_over_the_cap_is_a_form_error(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, mfa=True))
    response = client.post(f"{ROLES}add/", _role_form(max_duration="09:00:00"))
    assert response.status_code == 200 and not Role.objects.filter(name="Unlock only").exists()


def test_org_admins_read_roles_but_do_not_define_them(admin_client, role):
    assert admin_client.get(ROLES).status_code == 200
    assert admin_client.get(f"{ROLES}add/").status_code == 403
    assert admin_client.post(f"{ROLES}{role.pk}/change/", _role_form()).status_code == 403
    assert Role.objects.get(pk=role.pk).name == role.name


def test_approvers_are_offered_the_decision_actions(client, org, ask):
    ask()
    client.force_login(staff(org, StaffRole.APPROVER))
    assert {"approve_requests", "deny_requests"} <= offered_actions(client.get(REQUESTS))
