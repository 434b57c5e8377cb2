"""The access pages: my grants with a countdown, requests, activation through allauth's MFA
re-authentication, approvals, org admins' pages. Scoped: another organisation's request or
grant is a 404; bad input is a form error and changes nothing; the services decide."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from access import services
from access.authorization import grant_allows
from access.models import AccessRequest, Eligibility, Grant
from access.notifications import portal_link
from audit.models import SecurityEvent
from tests.access.factories import (
    BreakGlassRoleFactory,
    EligibilityFactory,
    GrantFactory,
    RoleFactory,
    approver_for,
    org_admin_for,
    technician_for,
)
from tests.helpers import totp_now

pytestmark = pytest.mark.django_db

CACHE_SESSIONS = "django.contrib.sessions.backends.cache"


# Staff in these tests have an authenticator: the portal sends anyone without one to enrol.
@pytest.fixture
def technician(org):
    return technician_for(org, mfa=True)


@pytest.fixture
def approvers(org):
    return [approver_for(org, mfa=True) for _ in range(2)]


@pytest.fixture
def org_admin(org):
    return org_admin_for(org, mfa=True)


@pytest.fixture
def as_user(client):
    def as_user(user):
        client.force_login(user)
        return client

    return as_user


def text(response) -> str:
    """The page's visible text, whitespace collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", response.content.decode()).split())


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def events(event_type: str) -> int:
    return SecurityEvent.objects.filter(event_type=event_type).count()


def request_form(eligible, **overrides):
    return {
        "eligibility": str(eligible.pk),
        "duration": "1800",
        "justification": "Payroll lead locked out before the run",
        "ticket_reference": "INC-4242",
        "scheduled_start": "",
        **overrides,
    }


# --- My grants ----------------------------------------------------------------------------


def test_my_grants_counts_down_each_grant_in_force_and_reads_without_javascript(
    as_user, approved, activate, technician
):
    grant = activate(approved())
    response = as_user(technician).get(reverse("access:my_grants"))
    assert response.status_code == 200
    page = response.content.decode()
    assert f'data-expires="{grant.expires_at.isoformat()}"' in page
    assert f"until {grant.expires_at:%H:%M:%S} UTC" in text(response)  # without JavaScript
    assert f'hx-get="{reverse("access:my_grants_live")}"' in page and "htmx-2.0.11.min.js" in page
    assert reverse("access:grant_release", args=[grant.pk]) in page
    assert f"{reverse('access:request_create')}?extends={grant.pk}" in page


def test_my_grants_lists_open_requests_and_the_roles_one_may_request(as_user, ask, technician, role):
    access_request = ask()
    page = text(as_user(technician).get(reverse("access:my_grants")))
    assert "Pending approval" in page and access_request.ticket_reference in page
    assert f"{role.name}" in page and "No grant in force" in page


def test_my_grants_live_fragment_stops_polling_when_nothing_is_live(as_user, technician):
    response = as_user(technician).get(reverse("access:my_grants_live"))
    assert response["X-Portal-Fragment"] == "my-grants-live"
    assert b"<html" not in response.content and b"hx-trigger" not in response.content


def test_my_grants_query_count_is_bounded(client, settings, org, technician, approvers, django_assert_max_num_queries):
    settings.SESSION_ENGINE = CACHE_SESSIONS
    for n in range(5):
        role = RoleFactory(name=f"Role {n}")
        EligibilityFactory(technician=technician, role=role, organization=org)
        access_request = services.access_request_create(
            actor=technician,
            role=role,
            organization=org,
            justification="Payroll lead locked out",
            ticket_reference=f"INC-{n}",
        )
        if n % 2:
            services.access_request_approve(actor=approvers[0], access_request=access_request)
            services.grant_activate(actor=technician, access_request=access_request)
    client.force_login(technician)
    client.get(reverse("access:my_grants"))  # the first request stamps the session
    with django_assert_max_num_queries(8):
        response = client.get(reverse("access:my_grants"))
    assert text(response).count("I'm done") == 2
    with django_assert_max_num_queries(4):
        client.get(reverse("access:my_grants_live"))


# --- Requesting -------------------------------------------------------------------------


def test_the_request_form_offers_only_eligible_roles(as_user, technician, org, other_org, eligible, role):
    not_eligible = RoleFactory(name="Not for you")
    break_glass = BreakGlassRoleFactory()
    EligibilityFactory(technician=technician, role=break_glass, organization=org)
    response = as_user(technician).get(reverse("access:request_create"))
    choices = [str(c[1]) for c in response.context["form"].fields["eligibility"].choices]
    assert choices == ["Choose…", f"{role.name} in {org.name} (at most 2 h)"]
    assert not_eligible.name not in text(response)


def test_a_request_is_created_and_the_page_shows_it(as_user, technician, eligible, role, org, approvers):
    response = as_user(technician).post(reverse("access:request_create"), request_form(eligible))
    access_request = AccessRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "access:request_detail", args=[access_request.pk]
    )
    assert access_request.requested_duration == timedelta(minutes=30)
    assert (access_request.role, access_request.organization, access_request.technician) == (role, org, technician)
    page = text(as_user(technician).get(response["Location"]))
    assert "Pending approval" in page and "INC-4242" in page and "0 of 1" in page


@pytest.mark.parametrize(
    "overrides, error",
    [
        ({"justification": ""}, "This field is required."),
        ({"justification": "short"}, "Explain why you need this access"),
        ({"ticket_reference": "not a ticket!"}, "Letters, digits"),
        ({"duration": "28800"}, "Ask for at most 2 h"),  # offered for the longer role below
        ({"duration": "forever"}, "Select a valid choice"),
        ({"scheduled_start": "2001-01-01T10:00"}, "A scheduled start must be in the future"),
        ({"scheduled_start": "tomorrow-ish"}, "Enter a valid date/time"),
        ({"eligibility": "999999"}, "Choose one of the roles you are eligible for."),
        ({"extends": "999999"}, "That grant is not yours or no longer in force."),
    ],
)
def test_bad_request_input_is_a_form_error_and_creates_nothing(
    as_user, technician, org, eligible, approvers, overrides, error
):
    EligibilityFactory(technician=technician, organization=org, role=RoleFactory(max_duration=timedelta(hours=8)))
    response = as_user(technician).post(reverse("access:request_create"), request_form(eligible, **overrides))
    assert response.status_code == 200
    assert error in text(response)
    assert not AccessRequest.objects.exists()


def test_another_technicians_eligibility_cannot_be_used(as_user, technician, org, eligible, approvers):
    colleague = technician_for(org, mfa=True)
    theirs = EligibilityFactory(technician=colleague, role=RoleFactory(), organization=org)
    response = as_user(technician).post(reverse("access:request_create"), request_form(theirs))
    assert "Choose one of the roles you are eligible for." in text(response)
    assert not AccessRequest.objects.exists()


def test_extend_prefills_a_new_request_that_leaves_the_grant_alone(as_user, approved, activate, technician):
    grant = activate(approved(ticket_reference="INC-77"))
    client = as_user(technician)
    form = client.get(reverse("access:request_create"), {"extends": grant.pk}).context["form"]
    assert form.initial["extends"] == grant.pk and form.initial["ticket_reference"] == "INC-77"
    data = {
        **{k: str(v) for k, v in form.initial.items()},
        "scheduled_start": "",
    }
    response = client.post(reverse("access:request_create"), data)
    extension = AccessRequest.objects.get(extends=grant)
    assert response["Location"] == reverse("access:request_detail", args=[extension.pk])
    assert Grant.objects.get(pk=grant.pk).expires_at == grant.expires_at


def test_cancel_by_the_requester(as_user, ask, technician):
    access_request = ask()
    response = as_user(technician).post(reverse("access:request_cancel", args=[access_request.pk]))
    assert response["Location"] == reverse("access:my_grants")
    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.CANCELLED


# --- Scoping ----------------------------------------------------------------------------


@pytest.fixture
def foreign(other_org):
    """A request and a grant of another organisation's technician."""
    outsider = technician_for(other_org, mfa=True)
    grant = GrantFactory(technician=outsider, organization=other_org)
    return grant.request, grant


@pytest.mark.parametrize(
    "name, method, kind",
    [
        ("access:request_detail", "get", "request"),
        ("access:request_activate", "get", "request"),
        ("access:request_activate", "post", "request"),
        ("access:request_cancel", "post", "request"),
        ("access:request_approve", "post", "request"),
        ("access:request_deny", "post", "request"),
        ("access:grant_detail", "get", "grant"),
        ("access:grant_live", "get", "grant"),
        ("access:grant_release", "post", "grant"),
        ("access:grant_revoke", "post", "grant"),
        ("access:break_glass_review", "post", "grant"),
    ],
)
def test_another_organisations_request_or_grant_is_a_404(as_user, org_admin, foreign, name, method, kind):
    access_request, grant = foreign
    target = access_request if kind == "request" else grant
    client = as_user(org_admin)
    response = getattr(client, method)(reverse(name, args=[target.pk]), {"reason": "x", "notes": "x"})
    assert response.status_code == 404
    assert Grant.objects.get(pk=grant.pk).revoked_at is None


@pytest.mark.parametrize("name", ["access:role_list", "access:eligibility_list", "access:org_grants"])
def test_org_admin_pages_of_another_organisation_are_a_404_and_403_for_non_admins(
    as_user, org, other_org, technician, name
):
    admin = org_admin_for(other_org, mfa=True)
    assert as_user(admin).get(reverse(name, args=[org.slug])).status_code == 404
    assert as_user(technician).get(reverse(name, args=[org.slug])).status_code == 403
    assert as_user(org_admin_for(org, mfa=True)).get(reverse(name, args=[org.slug])).status_code == 200


# --- Approvals --------------------------------------------------------------------------


def test_the_requester_never_sees_decision_buttons_and_cannot_approve(as_user, ask, technician, approvers):
    access_request = ask()
    client = as_user(technician)
    page = client.get(reverse("access:request_detail", args=[access_request.pk])).content.decode()
    assert reverse("access:request_approve", args=[access_request.pk]) not in page
    assert "you cannot decide your own request" in page
    response = client.post(reverse("access:request_approve", args=[access_request.pk]), follow=True)
    assert "You cannot decide your own access request; another approver must." in messages_of(response)
    client.post(reverse("access:request_deny", args=[access_request.pk]))
    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.PENDING and not access_request.approvals.exists()
    assert events("access.self_approval_refused") == 2


def test_the_requester_who_is_also_an_approver_sees_no_decision_either(as_user, org, role, approvers):
    from accounts.models import Role as StaffRole
    from tests.accounts.factories import UserFactory

    both = UserFactory(roles=[StaffRole.TECHNICIAN, StaffRole.APPROVER], organizations=[org], mfa=True)
    EligibilityFactory(technician=both, role=role, organization=org)
    access_request = services.access_request_create(
        actor=both, role=role, organization=org, justification="Need it for the run", ticket_reference="INC-9"
    )
    client = as_user(both)
    assert access_request not in client.get(reverse("access:approvals")).context["page"]
    page = client.get(reverse("access:request_detail", args=[access_request.pk])).content.decode()
    assert reverse("access:request_approve", args=[access_request.pk]) not in page
    client.post(reverse("access:request_approve", args=[access_request.pk]))
    assert AccessRequest.objects.get(pk=access_request.pk).status == AccessRequest.Status.PENDING


def test_approvers_see_justification_ticket_and_history_then_approve(
    as_user, approved, activate, ask, technician, approvers
):
    earlier = activate(approved(ticket_reference="INC-1"))
    services.grant_release(actor=technician, grant=earlier)
    access_request = ask(ticket_reference="INC-2", justification="Second payroll lockout today")
    client = as_user(approvers[1])
    response = client.get(reverse("access:approvals"))
    page = text(response)
    assert "INC-2" in page and "Second payroll lockout today" in page
    assert "Released by the technician" in page  # the earlier grant, in the history
    assert reverse("access:request_approve", args=[access_request.pk]) in response.content.decode()
    response = client.post(
        reverse("access:request_approve", args=[access_request.pk]),
        {"comment": "Checked INC-2", "next": reverse("access:approvals")},
    )
    assert response["Location"] == reverse("access:approvals")
    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.APPROVED
    assert access_request.approvals.get().comment == "Checked INC-2"
    assert "Nothing to decide." in text(client.get(reverse("access:approvals")))


def test_deny_with_a_comment_ends_the_request(as_user, ask, approvers):
    access_request = ask()
    as_user(approvers[0]).post(reverse("access:request_deny", args=[access_request.pk]), {"comment": "No ticket"})
    access_request.refresh_from_db()
    assert access_request.status == AccessRequest.Status.DENIED
    assert access_request.approvals.get().comment == "No ticket"


def test_a_colleague_who_is_no_approver_cannot_decide(as_user, org, ask):
    access_request = ask()
    colleague = technician_for(org, mfa=True)
    response = as_user(colleague).post(reverse("access:request_approve", args=[access_request.pk]), follow=True)
    assert any("not an approver" in m for m in messages_of(response))
    assert AccessRequest.objects.get(pk=access_request.pk).status == AccessRequest.Status.PENDING


def test_an_over_long_comment_is_refused(as_user, ask, approvers):
    access_request = ask()
    response = as_user(approvers[0]).post(
        reverse("access:request_approve", args=[access_request.pk]), {"comment": "x" * 2001}, follow=True
    )
    assert any("at most 2000 characters" in m for m in messages_of(response))
    assert not access_request.approvals.exists()


# --- Activation and MFA re-authentication -----------------------------------------------


@pytest.fixture
def mfa_role_request(org, technician, approvers):
    role = RoleFactory(name="Reset with MFA", requires_mfa_reauth=True)
    EligibilityFactory(technician=technician, role=role, organization=org)
    access_request = services.access_request_create(
        actor=technician, role=role, organization=org, justification="Payroll lead locked out", ticket_reference="I-5"
    )
    return services.access_request_approve(actor=approvers[0], access_request=access_request)


def test_activation_needing_mfa_goes_through_allauth_reauthentication_and_then_activates(
    as_user, mfa_role_request, technician, org
):
    client = as_user(technician)  # signed in without an MFA step in this session
    activate_url = reverse("access:request_activate", args=[mfa_role_request.pk])
    response = client.post(activate_url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('mfa_reauthenticate')}?next={activate_url.replace('/', '%2F')}"
    assert not Grant.objects.exists()

    page = client.get(response["Location"])
    assert page.status_code == 200
    response = client.post(response["Location"], {"code": totp_now(technician.totp_secret)})
    grant = Grant.objects.get()
    assert response["Location"] == reverse("access:grant_detail", args=[grant.pk])
    assert grant.mfa_reauthenticated_at is not None
    assert grant_allows(technician=technician, organization=org, action="password_reset")
    assert events("access.grant_activated") == 1


def test_a_wrong_code_activates_nothing(as_user, mfa_role_request, technician):
    client = as_user(technician)
    location = client.post(reverse("access:request_activate", args=[mfa_role_request.pk]))["Location"]
    response = client.post(location, {"code": "000000"})
    assert response.status_code == 200 and not Grant.objects.exists()


def test_a_password_reauthentication_is_not_an_mfa_step(as_user, mfa_role_request, technician):
    from tests.accounts.factories import PASSWORD

    client = as_user(technician)
    activate_url = reverse("access:request_activate", args=[mfa_role_request.pk])
    client.post(f"{reverse('account_reauthenticate')}?next={activate_url}", {"password": PASSWORD})
    response = client.post(activate_url)
    assert response["Location"].startswith(reverse("mfa_reauthenticate")) and not Grant.objects.exists()


def test_activation_without_mfa_requirement_activates_at_once(as_user, approved, technician):
    access_request = approved()
    client = as_user(technician)
    confirm = client.get(reverse("access:request_activate", args=[access_request.pk]))
    assert confirm.status_code == 200 and "Activate" in text(confirm)
    response = client.post(reverse("access:request_activate", args=[access_request.pk]))
    grant = Grant.objects.get()
    assert response["Location"] == reverse("access:grant_detail", args=[grant.pk])


def test_a_pending_request_does_not_activate_and_says_why(as_user, ask, technician):
    access_request = ask()
    response = as_user(technician).post(reverse("access:request_activate", args=[access_request.pk]), follow=True)
    assert any("only an approved one activates" in m for m in messages_of(response))
    assert not Grant.objects.exists()


def test_an_approver_cannot_activate_someone_elses_request(as_user, approved, approvers):
    access_request = approved()
    as_user(approvers[1]).post(reverse("access:request_activate", args=[access_request.pk]))
    assert not Grant.objects.exists()


# --- Grant page, release, revoke ----------------------------------------------------------


def test_grant_page_counts_down_then_says_expired(as_user, approved, activate, technician):
    grant = activate(approved())
    client = as_user(technician)
    response = client.get(reverse("access:grant_detail", args=[grant.pk]))
    assert f'data-expires="{grant.expires_at.isoformat()}"' in response.content.decode()
    assert "Active" in text(response) and "I'm done" in text(response)
    ended = GrantFactory(
        technician=technician,
        starts_at=timezone.now() - timedelta(hours=2),
        expires_at=timezone.now() - timedelta(hours=1),
    )
    response = client.get(reverse("access:grant_live", args=[ended.pk]))
    assert "Expired" in text(response) and b"data-expires" not in response.content
    assert b"hx-trigger" not in response.content


def test_release_ends_the_grant_now(as_user, approved, activate, technician, org):
    grant = activate(approved())
    response = as_user(technician).post(
        reverse("access:grant_release", args=[grant.pk]), {"next": reverse("access:my_grants")}
    )
    assert response["Location"] == reverse("access:my_grants")
    grant.refresh_from_db()
    assert grant.revoked_at is not None
    assert not grant_allows(technician=technician, organization=org, action="password_reset")
    assert "Released" in text(as_user(technician).get(reverse("access:grant_detail", args=[grant.pk])))


def test_release_refuses_a_foreign_next_url(as_user, approved, activate, technician):
    grant = activate(approved())
    response = as_user(technician).post(
        reverse("access:grant_release", args=[grant.pk]), {"next": "https://evil.example/"}
    )
    assert response["Location"] == reverse("access:grant_detail", args=[grant.pk])


def test_a_colleague_cannot_release_someone_elses_grant(as_user, approved, activate, org):
    grant = activate(approved())
    colleague = technician_for(org, mfa=True)
    response = as_user(colleague).post(reverse("access:grant_release", args=[grant.pk]), follow=True)
    assert "Only the technician holding a grant can release it." in messages_of(response)
    assert Grant.objects.get(pk=grant.pk).revoked_at is None


def test_org_admin_revokes_with_a_reason(as_user, approved, activate, org_admin, technician, org):
    grant = activate(approved())
    client = as_user(org_admin)
    response = client.post(reverse("access:grant_revoke", args=[grant.pk]), {"reason": ""}, follow=True)
    assert "Give the reason." in messages_of(response)
    assert Grant.objects.get(pk=grant.pk).revoked_at is None
    grants_url = reverse("access:org_grants", args=[org.slug])
    response = client.post(
        reverse("access:grant_revoke", args=[grant.pk]), {"reason": "Ticket closed", "next": grants_url}
    )
    assert response["Location"] == grants_url
    grant.refresh_from_db()
    assert grant.revoked_by == org_admin and grant.reason == "Ticket closed"
    assert not grant_allows(technician=technician, organization=org, action="password_reset")


def test_a_technician_cannot_revoke(as_user, approved, activate, org):
    grant = activate(approved())
    colleague = technician_for(org, mfa=True)
    response = as_user(colleague).post(reverse("access:grant_revoke", args=[grant.pk]), {"reason": "x"}, follow=True)
    assert "Only org admins of this organisation revoke its grants." in messages_of(response)
    assert Grant.objects.get(pk=grant.pk).revoked_at is None


# --- Break-glass ------------------------------------------------------------------------


@pytest.fixture
def break_glass_role(org, technician):
    role = BreakGlassRoleFactory(requires_mfa_reauth=False)
    EligibilityFactory(technician=technician, role=role, organization=org)
    return role


def test_break_glass_warns_and_needs_the_confirmation(as_user, technician, break_glass_role):
    client = as_user(technician)
    page = text(client.get(reverse("access:break_glass")))
    assert "Emergency use only." in page and "Every org admin of the organisation is alerted" in page
    eligibility = Eligibility.objects.get(role=break_glass_role)
    data = {"eligibility": eligibility.pk, "justification": "Ransomware on payroll", "ticket_reference": "INC-911"}
    response = client.post(reverse("access:break_glass"), data)
    assert "Confirm that you understand" in text(response) and not Grant.objects.exists()
    response = client.post(reverse("access:break_glass"), {**data, "confirm": "on"})
    grant = Grant.objects.get()
    assert grant.break_glass and grant.review_pending
    assert response["Location"] == reverse("access:grant_detail", args=[grant.pk])


def test_org_admin_reviews_break_glass_use(as_user, technician, org, org_admin, break_glass_role):
    grant = services.break_glass_activate(
        actor=technician,
        role=break_glass_role,
        organization=org,
        justification="Ransomware on payroll",
        ticket_reference="INC-911",
    )
    client = as_user(org_admin)
    grants_url = reverse("access:org_grants", args=[org.slug])
    page = text(client.get(grants_url))
    assert "Break-glass uses to review" in page and "INC-911" in page
    response = client.post(reverse("access:break_glass_review", args=[grant.pk]), {"notes": "", "next": grants_url})
    assert Grant.objects.get(pk=grant.pk).reviewed_at is None
    response = client.post(
        reverse("access:break_glass_review", args=[grant.pk]), {"notes": "Confirmed incident", "next": grants_url}
    )
    assert response["Location"] == grants_url
    assert Grant.objects.get(pk=grant.pk).reviewed_by == org_admin


# --- Org admins: roles and eligibilities ---------------------------------------------------


def test_roles_page_reads_roles_with_counts(as_user, org, org_admin, eligible, role):
    page = text(as_user(org_admin).get(reverse("access:role_list", args=[org.slug])))
    assert role.name in page and "Password reset, Account unlock" in page


def test_org_admin_makes_eligible_and_ends(as_user, org, org_admin, role, approvers):
    newcomer = technician_for(org, mfa=True)
    client = as_user(org_admin)
    url = reverse("access:eligibility_list", args=[org.slug])
    response = client.post(url, {"technician": newcomer.pk, "role": role.pk, "valid_until": ""})
    assert response["Location"] == url
    eligibility = Eligibility.objects.get(technician=newcomer)
    assert eligibility.created_by == org_admin
    response = client.post(reverse("access:eligibility_end", args=[org.slug, eligibility.pk]), {"reason": "Moved"})
    assert response["Location"] == url
    assert Eligibility.objects.get(pk=eligibility.pk).ended_at is not None


@pytest.mark.parametrize(
    "field, value, error",
    [
        ("technician", "outsider", "Select a valid choice"),
        ("role", "999999", "Select a valid choice"),
        ("valid_until", "2001-01-01T00:00", "The end of eligibility must be in the future."),
        ("valid_until", "soon", "Enter a valid date/time"),
    ],
)
def test_bad_eligibility_input_is_a_form_error(as_user, org, other_org, org_admin, role, field, value, error):
    newcomer = technician_for(org, mfa=True)
    outsider = technician_for(other_org, mfa=True)
    data = {"technician": newcomer.pk, "role": role.pk, "valid_until": ""}
    data[field] = outsider.pk if value == "outsider" else value
    response = as_user(org_admin).post(reverse("access:eligibility_list", args=[org.slug]), data)
    assert response.status_code == 200 and error in text(response)
    assert not Eligibility.objects.exists()


def test_nobody_makes_themselves_eligible(as_user, org, role):
    from accounts.models import Role as StaffRole
    from tests.accounts.factories import UserFactory

    both = UserFactory(roles=[StaffRole.TECHNICIAN, StaffRole.ORG_ADMIN], organizations=[org], mfa=True)
    response = as_user(both).post(
        reverse("access:eligibility_list", args=[org.slug]), {"technician": both.pk, "role": role.pk}
    )
    assert "nobody makes themselves eligible" in text(response)
    assert not Eligibility.objects.exists()


def test_another_organisations_eligibility_cannot_be_ended(as_user, org, other_org, org_admin, role):
    theirs = EligibilityFactory(technician=technician_for(other_org), role=role, organization=other_org)
    response = as_user(org_admin).post(reverse("access:eligibility_end", args=[org.slug, theirs.pk]))
    assert response.status_code == 404
    assert Eligibility.objects.get(pk=theirs.pk).ended_at is None


# --- Navigation and email links ----------------------------------------------------------


def test_navigation_shows_approvals_to_approvers_only(as_user, technician, approvers, role):
    assert b"My access" in as_user(technician).get("/").content
    assert reverse("access:approvals").encode() not in as_user(technician).get("/").content
    assert reverse("access:approvals").encode() in as_user(approvers[0]).get("/").content


def test_email_links_reach_the_pages(settings):
    settings.PUBLIC_BASE_URL = "https://portal.example"
    assert portal_link("access:request_detail", 7) == "https://portal.example/access/requests/7/"
    assert portal_link("access:grant_detail", 7) == "https://portal.example/access/grants/7/"
    assert portal_link("access:my_grants") == "https://portal.example/access/"


def test_break_glass_needing_mfa_resumes_after_reauthentication(as_user, technician, org):
    role = BreakGlassRoleFactory(requires_mfa_reauth=True)
    eligibility = EligibilityFactory(technician=technician, role=role, organization=org)
    client = as_user(technician)
    data = {
        "eligibility": eligibility.pk,
        "justification": "Ransomware on payroll",
        "ticket_reference": "INC-911",
        "confirm": "on",
    }
    response = client.post(reverse("access:break_glass"), data)
    assert response["Location"].startswith(reverse("mfa_reauthenticate")) and not Grant.objects.exists()
    response = client.post(response["Location"], {"code": totp_now(technician.totp_secret)})
    grant = Grant.objects.get()
    assert response["Location"] == reverse("access:grant_detail", args=[grant.pk])
    assert grant.break_glass and grant.request.ticket_reference == "INC-911" and grant.mfa_reauthenticated_at


def test_roles_page_counts_this_organisations_eligibilities_and_grants_only(
    as_user, org, other_org, org_admin, approved, activate, role
):
    activate(approved())
    EligibilityFactory(technician=technician_for(other_org), role=role, organization=other_org)
    response = as_user(org_admin).get(reverse("access:role_list", args=[org.slug]))
    (listed,) = [r for r in response.context["roles"] if r.pk == role.pk]
    assert (listed.eligible_count, listed.in_force_count) == (1, 1)
