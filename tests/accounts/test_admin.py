"""The Django admin is scoped like the portal: a non-superuser staff member sees and
edits only the people of their organisations, and every write records its event."""

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth.models import Group, Permission

from accounts import selectors
from accounts.models import Organization, Person, Role, User
from audit.models import SecurityEvent
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory

pytestmark = pytest.mark.django_db

PEOPLE = "/admin/accounts/person/"
AUTOCOMPLETE = "/admin/autocomplete/"


@pytest.fixture
def acme():
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def globex():
    return OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def insider(acme):
    return PersonFactory(organization=acme, full_name="Riley Inside", email="riley@acme.example", phone="+12025550111")


@pytest.fixture
def outsider(globex):
    return PersonFactory(organization=globex, full_name="Riley Outside", email="riley@globex.example")


def _person_perms(*actions):
    return Permission.objects.filter(content_type__app_label="accounts", codename__in=[f"{a}_person" for a in actions])


@pytest.fixture
def org_admin(acme):
    user = UserFactory(is_staff=True, roles=[Role.ORG_ADMIN], organizations=[acme], mfa=True)
    user.user_permissions.add(*_person_perms("view", "add", "change", "delete"))
    return user


@pytest.fixture
def admin_client(client, org_admin):
    client.force_login(org_admin)
    return client


@pytest.fixture
def root_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, mfa=True))
    return client


def _change_url(person):
    return f"{PEOPLE}{person.pk}/change/"


def _form_data(person, **changes):
    data = {
        "employee_id": person.employee_id,
        "full_name": person.full_name,
        "email": person.email,
        "phone": person.phone,
        "department": person.department,
        "manager": person.manager_id or "",
    }
    if person.privileged:
        data["privileged"] = "on"
    data.update(changes)
    return data


def _events(event_type):
    return SecurityEvent.objects.filter(event_type=event_type)


def _autocomplete(client, term):
    params = {"app_label": "accounts", "model_name": "person", "field_name": "manager", "term": term}
    response = client.get(AUTOCOMPLETE, params)
    assert response.status_code == 200
    return {row["text"] for row in response.json()["results"]}


# --- Scoping for an org admin -----------------------------------------------------------


def test_change_list_shows_only_assigned_organisations_people(admin_client, insider, outsider):
    response = admin_client.get(PEOPLE)
    assert response.status_code == 200
    assert list(response.context["cl"].result_list) == [insider]
    assert b"Riley Outside" not in response.content


def test_organisation_filter_names_only_assigned_organisations(admin_client, insider, outsider, globex):
    response = admin_client.get(PEOPLE)
    assert b"Acme" in response.content
    assert b"Globex" not in response.content
    filtered = admin_client.get(PEOPLE, {"organization": globex.pk})
    assert list(filtered.context["cl"].result_list) == []


@pytest.mark.parametrize("term", ["riley", "Riley Outside", "riley@globex.example", "globex"])
def test_admin_search_never_returns_other_organisations_people(admin_client, insider, outsider, term):
    response = admin_client.get(PEOPLE, {"q": term})
    assert outsider not in list(response.context["cl"].result_list)


def test_admin_search_matches_like_the_portal(admin_client, insider):
    for term in ("riley@acme", "202-555-0111", insider.employee_id.lower()):
        assert list(admin_client.get(PEOPLE, {"q": term}).context["cl"].result_list) == [insider]
    assert list(admin_client.get(PEOPLE, {"q": "r"}).context["cl"].result_list) == []


@pytest.mark.parametrize("suffix", ["change/", "delete/", "history/"])
def test_other_organisations_person_is_404_in_admin(admin_client, outsider, suffix):
    url = f"{PEOPLE}{outsider.pk}/{suffix}"
    response = admin_client.get(url)
    assert response.status_code == 404
    assert b"Riley Outside" not in response.content


def test_posting_to_other_organisations_person_changes_nothing(admin_client, outsider):
    response = admin_client.post(_change_url(outsider), _form_data(outsider, phone="+12025550999"))
    assert response.status_code == 404
    assert admin_client.post(f"{PEOPLE}{outsider.pk}/delete/", {"post": "yes"}).status_code == 404
    outsider.refresh_from_db()
    assert outsider.phone != "+12025550999"


def test_bulk_delete_ignores_other_organisations_people(admin_client, insider, outsider):
    admin_client.post(PEOPLE, {"action": "delete_selected", "_selected_action": [outsider.pk], "post": "yes"})
    assert Person.objects.filter(pk=outsider.pk).exists()


def test_autocomplete_never_offers_other_organisations_people(admin_client, insider, outsider):
    assert _autocomplete(admin_client, "") == {"Riley Inside"}
    assert _autocomplete(admin_client, "riley") == {"Riley Inside"}
    assert _autocomplete(admin_client, "riley@globex.example") == set()


def test_organisation_autocomplete_is_closed_to_org_admins(admin_client, globex):
    params = {"app_label": "accounts", "model_name": "person", "field_name": "organization", "term": "glo"}
    response = admin_client.get(AUTOCOMPLETE, params)
    assert response.status_code == 403
    assert b"Globex" not in response.content


def test_add_form_offers_only_assigned_organisations(admin_client, acme, globex, insider, outsider):
    response = admin_client.get(f"{PEOPLE}add/")
    fields = response.context["adminform"].form.fields
    assert list(fields["organization"].queryset) == [acme]
    assert list(fields["manager"].queryset) == [insider]
    data = _form_data(Person(employee_id="NEW-1", full_name="Planted Person"), organization=globex.pk)
    response = admin_client.post(f"{PEOPLE}add/", data)
    assert "organization" in response.context["adminform"].form.errors
    assert not Person.objects.filter(employee_id="NEW-1").exists()


def test_add_person_records_an_event(admin_client, acme):
    data = _form_data(Person(employee_id="NEW-2", full_name="New Starter", email="new@acme.example"))
    response = admin_client.post(f"{PEOPLE}add/", {**data, "organization": acme.pk, "phone": "202 555 0142"})
    assert response.status_code == 302
    person = Person.objects.get(employee_id="NEW-2")
    assert person.phone == "+12025550142"
    assert _events("directory.person_created").get().target_id == str(person.pk)


def test_manager_from_another_organisation_is_refused(admin_client, insider, outsider):
    response = admin_client.post(_change_url(insider), _form_data(insider, manager=outsider.pk))
    assert "manager" in response.context["adminform"].form.errors
    insider.refresh_from_db()
    assert insider.manager_id is None


def test_manager_must_share_the_organisation_even_for_a_superuser(root_client, insider, outsider):
    response = root_client.post(_change_url(insider), _form_data(insider, manager=outsider.pk))
    assert response.context["adminform"].form.errors["manager"] == ["The manager must work in the same organisation."]


def test_staff_member_without_assignment_sees_no_one(client, insider, outsider):
    unassigned = UserFactory(is_staff=True, mfa=True)
    unassigned.user_permissions.add(*_person_perms("view", "change"))
    client.force_login(unassigned)
    assert list(client.get(PEOPLE).context["cl"].result_list) == []
    assert _autocomplete(client, "riley") == set()
    assert client.get(_change_url(insider)).status_code == 404


def test_staff_member_without_person_permissions_is_refused(client, acme, insider):
    technician = UserFactory(is_staff=True, roles=[Role.TECHNICIAN], organizations=[acme], mfa=True)
    client.force_login(technician)
    assert client.get(PEOPLE).status_code == 403
    assert client.get(_change_url(insider)).status_code == 403


def test_view_permission_alone_is_read_only(client, acme, insider):
    viewer = UserFactory(is_staff=True, organizations=[acme], mfa=True)
    viewer.user_permissions.add(*_person_perms("view"))
    client.force_login(viewer)
    assert client.get(_change_url(insider)).status_code == 200
    assert client.post(_change_url(insider), _form_data(insider, phone="+12025550999")).status_code == 403


@pytest.mark.parametrize("url", ["/admin/accounts/user/", "/admin/auth/group/", "/admin/accounts/organization/"])
def test_org_admin_cannot_open_staff_groups_or_organisations(admin_client, url):
    assert admin_client.get(url).status_code == 403


def test_org_admin_cannot_open_another_staff_account(admin_client, org_admin):
    other = UserFactory(is_staff=True)
    assert admin_client.get(f"/admin/accounts/user/{other.pk}/change/").status_code == 403
    assert admin_client.get(f"/admin/accounts/user/{org_admin.pk}/password/").status_code == 403


# --- Directory edits ------------------------------------------------------------------


def test_contact_change_sets_contact_changed_at_and_records_event(admin_client, insider, org_admin):
    response = admin_client.post(_change_url(insider), _form_data(insider, phone="(202) 555-0177"))
    assert response.status_code == 302
    insider.refresh_from_db()
    assert insider.phone == "+12025550177"
    assert insider.contact_changed_at is not None
    assert "+12025550177" in insider.search_text
    event = _events("directory.person_contact_changed").get()
    assert (event.actor_id, event.target_id, event.details) == (org_admin.pk, str(insider.pk), {"fields": ["phone"]})


def test_email_change_is_a_contact_change(admin_client, insider):
    admin_client.post(_change_url(insider), _form_data(insider, email="riley.new@acme.example"))
    insider.refresh_from_db()
    assert insider.contact_changed_at is not None
    assert _events("directory.person_contact_changed").get().details == {"fields": ["email"]}


def test_other_edits_leave_contact_changed_at_alone(admin_client, insider):
    response = admin_client.post(_change_url(insider), _form_data(insider, department="Legal", privileged="on"))
    assert response.status_code == 302
    insider.refresh_from_db()
    assert (insider.department, insider.privileged, insider.contact_changed_at) == ("Legal", True, None)
    assert not _events("directory.person_contact_changed").exists()
    assert _events("directory.person_updated").get().details == {
        "fields": ["department", "privileged"],
        "privileged": True,
    }


def test_saving_unchanged_person_records_nothing(admin_client, insider):
    before = SecurityEvent.objects.count()
    assert admin_client.post(_change_url(insider), _form_data(insider)).status_code == 302
    assert SecurityEvent.objects.count() == before


@pytest.mark.parametrize("phone", ["12345", "not a phone", "+999 1234"])
def test_invalid_phone_is_refused(admin_client, insider, phone):
    response = admin_client.post(_change_url(insider), _form_data(insider, phone=phone))
    assert "phone" in response.context["adminform"].form.errors
    insider.refresh_from_db()
    assert insider.phone == "+12025550111"


def test_delete_records_an_event(admin_client, insider):
    response = admin_client.post(f"{PEOPLE}{insider.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Person.objects.filter(pk=insider.pk).exists()
    assert _events("directory.person_deleted").get().target_label == "Riley Inside"


# --- Superusers: everything, and the privileged pages -----------------------------------


def test_superuser_sees_every_person(root_client, insider, outsider):
    assert set(root_client.get(PEOPLE).context["cl"].result_list) == {insider, outsider}
    assert root_client.get(_change_url(outsider)).status_code == 200
    assert _autocomplete(root_client, "riley") == {"Riley Inside", "Riley Outside"}


def _organization_form(org, staff):
    data = {"name": org.name, "slug": org.slug, "time_zone": org.time_zone, "staff": [u.pk for u in staff]}
    if org.active:
        data["active"] = "on"
    return data


def test_assigning_staff_in_admin_goes_through_the_service(root_client, acme, globex, outsider):
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[acme])
    response = root_client.post(
        f"/admin/accounts/organization/{globex.pk}/change/", _organization_form(globex, [technician])
    )
    assert response.status_code == 302
    assert set(selectors.organization_list_for_user(user=technician)) == {acme, globex}
    assigned = _events("directory.staff_assigned").filter(organization_id=globex.pk).get()
    assert assigned.target_id == str(technician.pk)
    assert assigned.actor_id is not None

    root_client.post(f"/admin/accounts/organization/{globex.pk}/change/", _organization_form(globex, []))
    assert set(selectors.organization_list_for_user(user=technician)) == {acme}
    assert _events("directory.staff_unassigned").get().target_id == str(technician.pk)


def test_organisation_page_lists_current_staff(root_client, acme, org_admin):
    response = root_client.get(f"/admin/accounts/organization/{acme.pk}/change/")
    assert list(response.context["adminform"].form.fields["staff"].initial) == [org_admin]
    assert b"organization_assign_staff" in response.content  # the page says how assignment works


def test_superuser_creates_organisation_with_event_and_staff(root_client, org_admin):
    data = {"name": "Initech", "slug": "initech", "time_zone": "Europe/London", "staff": [org_admin.pk]}
    assert root_client.post("/admin/accounts/organization/add/", data).status_code == 302
    initech = Organization.objects.get(slug="initech")
    assert _events("directory.organization_created").get().target_id == str(initech.pk)
    assert initech in selectors.organization_list_for_user(user=org_admin)


def test_unknown_time_zone_is_refused(root_client):
    data = {"name": "Initech", "slug": "initech", "time_zone": "Mars/Olympus"}
    response = root_client.post("/admin/accounts/organization/add/", data)
    assert "time_zone" in response.context["adminform"].form.errors


def test_deactivating_an_organisation_records_an_event(root_client, acme):
    acme.active = False
    response = root_client.post(f"/admin/accounts/organization/{acme.pk}/change/", _organization_form(acme, []))
    assert response.status_code == 302
    assert _events("directory.organization_updated").get().details == {"fields": ["active"], "active": False}


def test_organisations_and_staff_cannot_be_deleted_in_admin(root_client, acme):
    assert root_client.get(f"/admin/accounts/organization/{acme.pk}/delete/").status_code == 403
    user = UserFactory()
    assert root_client.get(f"/admin/accounts/user/{user.pk}/delete/").status_code == 403


def test_superuser_creates_staff_user_with_verified_email_and_event(root_client):
    data = {
        "email": "New.Tech@MSP.example",
        "full_name": "New Tech",
        "usable_password": "true",
        "password1": "a long unguessable passphrase",
        "password2": "a long unguessable passphrase",
    }
    response = root_client.post("/admin/accounts/user/add/", data)
    assert response.status_code == 302
    user = User.objects.get(email="new.tech@msp.example")
    assert user.check_password("a long unguessable passphrase")
    assert not user.is_staff
    assert EmailAddress.objects.filter(user=user, email=user.email, verified=True, primary=True).exists()
    assert _events("auth.staff_created").get().target_id == str(user.pk)
    assert response["Location"].endswith(f"/admin/accounts/user/{user.pk}/change/")


def test_duplicate_staff_email_is_refused_in_any_case(root_client, org_admin):
    data = {"email": org_admin.email.upper(), "usable_password": "false"}
    response = root_client.post("/admin/accounts/user/add/", data)
    assert "email" in response.context["adminform"].form.errors


def test_staff_privilege_change_records_event(root_client):
    user = UserFactory(full_name="Pat Tech")
    approvers = Group.objects.get(name=Role.APPROVER)
    data = {"full_name": "Pat Tech", "is_active": "on", "is_staff": "on", "groups": [approvers.pk]}
    response = root_client.post(f"/admin/accounts/user/{user.pk}/change/", data)
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.is_staff and user.has_role(Role.APPROVER)
    event = _events("auth.staff_changed").get()
    assert event.details["fields"] == ["is_staff", "groups"]
    assert event.details["groups"] == ["Approver"]


def test_staff_email_is_read_only_in_admin(root_client):
    user = UserFactory(email="fixed@msp.example")
    data = {"email": "hijack@evil.example", "full_name": "x", "is_active": "on"}
    root_client.post(f"/admin/accounts/user/{user.pk}/change/", data)
    user.refresh_from_db()
    assert user.email == "fixed@msp.example"
