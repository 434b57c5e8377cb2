"""Everything a staff member reads is limited to the organisations they are assigned to:
another organisation's person is a 404 and never appears in search."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts import selectors
from accounts.models import Role
from accounts.services import organization_assign_staff, organization_unassign_staff
from tests.accounts.factories import OrganizationFactory, PersonFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def orgs():
    return OrganizationFactory(name="Acme", slug="acme"), OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def insider(orgs):
    return PersonFactory(
        organization=orgs[0],
        full_name="Jordan Inside",
        email="jordan.inside@acme.example",
        employee_id="ACME-0001",
        phone="+12025550101",
    )


@pytest.fixture
def outsider(orgs):
    return PersonFactory(
        organization=orgs[1],
        full_name="Jordan Outside",
        email="jordan.outside@globex.example",
        employee_id="GLX-0001",
        phone="+12025550199",
    )


@pytest.fixture
def technician(orgs):
    return UserFactory(roles=[Role.TECHNICIAN], organizations=[orgs[0]], mfa=True)


@pytest.fixture
def tech_client(client, technician):
    client.force_login(technician)
    return client


def _names(response) -> set[str]:
    return {p.full_name for p in response.context["people"]}


# --- Pages ----------------------------------------------------------------------------


def test_other_organisations_person_page_is_404(tech_client, insider, outsider):
    assert tech_client.get(reverse("person_detail", args=[insider.pk])).status_code == 200
    response = tech_client.get(reverse("person_detail", args=[outsider.pk]))
    assert response.status_code == 404
    assert b"Outside" not in response.content


def test_missing_and_foreign_person_look_the_same(tech_client, outsider):
    foreign = tech_client.get(reverse("person_detail", args=[outsider.pk]))
    missing = tech_client.get(reverse("person_detail", args=[outsider.pk + 1000]))
    assert foreign.status_code == missing.status_code == 404


def test_other_organisations_page_is_404(tech_client, orgs):
    assert tech_client.get(reverse("organization_detail", args=["acme"])).status_code == 200
    assert tech_client.get(reverse("organization_detail", args=["globex"])).status_code == 404
    assert tech_client.get(reverse("organization_detail", args=["globex"]), {"q": "jordan"}).status_code == 404


def test_organisation_lists_show_only_assigned_organisations(tech_client, orgs):
    for url in (reverse("dashboard"), reverse("organization_list")):
        response = tech_client.get(url)
        assert b"Acme" in response.content
        assert b"Globex" not in response.content


def test_organisation_page_search_stays_inside_that_organisation(client, orgs, insider, outsider):
    both = UserFactory(organizations=list(orgs), mfa=True)
    client.force_login(both)
    response = client.get(reverse("organization_detail", args=["acme"]), {"q": "jordan"})
    assert _names(response) == {"Jordan Inside"}


def test_inactive_organisation_is_hidden(tech_client, orgs, insider):
    orgs[0].active = False
    orgs[0].save()
    assert tech_client.get(reverse("organization_detail", args=["acme"])).status_code == 404
    assert tech_client.get(reverse("person_detail", args=[insider.pk])).status_code == 404


def test_unassigning_removes_access_at_once(tech_client, technician, orgs, insider):
    organization_unassign_staff(actor=None, organization=orgs[0], user=technician)
    assert tech_client.get(reverse("person_detail", args=[insider.pk])).status_code == 404
    assert _names(tech_client.get(reverse("person_search"), {"q": "jordan"})) == set()


# --- Search ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "jordan",
        "Jordan Outside",
        "jordan.outside@globex.example",
        "GLX-0001",
        "+12025550199",
        "202 555 0199",
        "outside",
    ],
)
def test_search_never_returns_other_organisations_people(tech_client, technician, insider, outsider, query):
    assert "Jordan Outside" not in _names(tech_client.get(reverse("person_search"), {"q": query}))
    assert outsider not in selectors.person_search(user=technician, query=query)


def test_search_finds_own_people_by_exact_email_id_and_phone(technician, insider):
    for query in ("jordan.inside@acme.example", "ACME-0001", "+12025550101"):
        assert selectors.person_search(user=technician, query=query) == [insider]


def test_user_without_assignment_sees_nothing(client, insider, outsider):
    nobody = UserFactory(roles=[Role.TECHNICIAN], mfa=True)
    client.force_login(nobody)
    assert b"not assigned to any organisation" in client.get(reverse("dashboard")).content
    assert _names(client.get(reverse("person_search"), {"q": "jordan"})) == set()
    assert client.get(reverse("person_detail", args=[insider.pk])).status_code == 404
    assert client.get(reverse("organization_detail", args=["acme"])).status_code == 404


def test_global_permission_is_not_an_assignment(client, insider):
    """Only object permissions assign; a model-wide grant of the codename opens nothing."""
    user = UserFactory(mfa=True)
    user.user_permissions.add(Permission.objects.get(codename="work_on_organization"))
    client.force_login(user)
    assert client.get(reverse("person_detail", args=[insider.pk])).status_code == 404
    assert selectors.person_search(user=user, query="jordan") == []


def test_superuser_sees_every_organisation_and_person(client, orgs, insider, outsider):
    root = UserFactory(is_staff=True, is_superuser=True, mfa=True)
    client.force_login(root)
    assert client.get(reverse("person_detail", args=[outsider.pk])).status_code == 200
    assert client.get(reverse("organization_detail", args=["globex"])).status_code == 200
    assert _names(client.get(reverse("person_search"), {"q": "jordan"})) == {"Jordan Inside", "Jordan Outside"}


def test_anonymous_search_is_sent_to_login(client, insider):
    response = client.get(reverse("person_search"), {"q": "jordan"})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))


# --- Search behaviour -----------------------------------------------------------------


def test_search_matches_name_substring_in_any_case(technician, insider):
    assert selectors.person_search(user=technician, query="ORDAN ins") == [insider]


def test_search_matches_email_fragment(technician, insider):
    assert selectors.person_search(user=technician, query="inside@acme") == [insider]


def test_search_matches_employee_id_in_any_case(technician, insider):
    assert selectors.person_search(user=technician, query="acme-0001") == [insider]


@pytest.mark.parametrize(
    "query", ["+1 202 555 0101", "202-555-0101", "(202) 555-0101", "202.555.0101", "2025550101", "555 0101", "0101"]
)
def test_search_matches_phone_written_with_separators(technician, insider, query):
    assert selectors.person_search(user=technician, query=query) == [insider]


def test_search_matches_national_number_of_default_region(settings, technician, orgs):
    settings.DIRECTORY_DEFAULT_REGION = "GB"
    londoner = PersonFactory(organization=orgs[0], full_name="Sam London", phone="+442079460958")
    assert selectors.person_search(user=technician, query="020 7946 0958") == [londoner]


@pytest.mark.parametrize("query", ["", " ", "j", " j ", "+", "1-"])
def test_queries_shorter_than_two_characters_return_nothing(technician, insider, query):
    assert selectors.person_search(user=technician, query=query) == []


def test_short_query_page_asks_for_more(tech_client, insider):
    response = tech_client.get(reverse("person_search"), {"q": "j"})
    assert b"at least two characters" in response.content
    assert _names(response) == set()


def test_like_wildcards_are_literal(technician, insider):
    assert selectors.person_search(user=technician, query="%%") == []
    assert selectors.person_search(user=technician, query="__") == []


def test_results_are_capped_and_ordered_by_name(technician, orgs):
    for i in range(selectors.SEARCH_LIMIT + 5):
        PersonFactory(organization=orgs[0], full_name=f"Person {(i * 37) % 100:03d}")
    results = selectors.person_search(user=technician, query="client.example")
    assert len(results) == selectors.SEARCH_LIMIT
    assert [p.full_name for p in results] == sorted(p.full_name for p in results)


def test_search_page_says_when_results_are_capped(tech_client, orgs):
    PersonFactory.create_batch(selectors.SEARCH_LIMIT, organization=orgs[0])
    response = tech_client.get(reverse("person_search"), {"q": "client.example"})
    assert len(response.context["people"]) == selectors.SEARCH_LIMIT
    assert b"Showing the first" in response.content


def test_past_the_candidate_cap_results_are_still_scoped_and_sorted(monkeypatch, technician, orgs):
    monkeypatch.setattr(selectors, "SEARCH_LIMIT", 3)
    monkeypatch.setattr(selectors, "SEARCH_CANDIDATES", 5)
    for i in range(8):
        PersonFactory(organization=orgs[0], full_name=f"Casey {9 - i}")
        PersonFactory(organization=orgs[1], full_name=f"Casey {i} Other")
    results = selectors.person_search(user=technician, query="casey")
    assert len(results) == 3
    assert all(p.organization == orgs[0] for p in results)
    assert [p.full_name for p in results] == sorted(p.full_name for p in results)


def test_full_email_matches_only_that_address(technician, orgs, insider):
    PersonFactory(organization=orgs[0], full_name="Jordan Other", email="jordan.inside@acme-old.example")
    assert selectors.person_search(user=technician, query="Jordan.Inside@ACME.example") == [insider]
    assert selectors.person_search(user=technician, query="jordan.inside@acme.exam") == [insider]
    assert len(selectors.person_search(user=technician, query="jordan.inside@acme")) == 2


def test_the_user_is_read_with_their_active_organisations(orgs, django_assert_num_queries):
    """The sign-in backends' read: the user and, inside a request's memo, their assigned
    active organisations, in one statement; the scoped reads that follow ask nothing more."""
    acme, globex = orgs
    closed = OrganizationFactory(name="Closed", slug="closed", active=False)
    user = UserFactory()
    for organization in (globex, acme, closed):
        organization_assign_staff(actor=None, organization=organization, user=user)
    with selectors.organization_scope_memo(), django_assert_num_queries(1):
        loaded = selectors.user_get_with_scope(pk=user.pk)
        assert loaded == user and loaded.email == user.email
        assert selectors.organization_ids_for_user(user=loaded) == tuple(sorted((acme.pk, globex.pk)))


def test_the_user_is_read_with_their_roles(orgs, django_assert_num_queries):
    """The same statement says which roles the user has; ``has_role`` answers from it (a
    verification start asks nothing more), and a user read another way still asks."""
    user = UserFactory(roles=[Role.TECHNICIAN, Role.AUDITOR])
    with django_assert_num_queries(1):
        loaded = selectors.user_get_with_scope(pk=user.pk)
        assert [loaded.has_role(role) for role in Role] == [True, False, True, False]
    plain = type(user).objects.get(pk=user.pk)
    with django_assert_num_queries(2):
        assert plain.has_role(Role.TECHNICIAN) and not plain.has_role(Role.ORG_ADMIN)


def test_a_role_removed_is_in_force_from_the_next_request(tech_client, technician, insider):
    """Roles are read with the user on every request: a technician whose role goes is
    refused from their next request on (the role is not kept in the session)."""
    from django.contrib.auth.models import Group

    url = reverse("validation:start", args=[insider.pk])
    form = {"action": "other", "ticket_reference": "INC-1"}
    assert tech_client.post(url, form).status_code == 302
    technician.groups.remove(Group.objects.get(name=Role.TECHNICIAN))
    response = tech_client.post(url, {**form, "ticket_reference": "INC-2"})
    assert response.status_code == 200 and "Only technicians verify callers." in response.content.decode()


def test_a_user_without_organisations_is_read_with_none(orgs, django_assert_num_queries):
    user = UserFactory()
    with selectors.organization_scope_memo(), django_assert_num_queries(1):
        loaded = selectors.user_get_with_scope(pk=user.pk)
        assert selectors.organization_ids_for_user(user=loaded) == ()


def test_a_superusers_organisations_are_every_active_one(orgs, django_assert_num_queries):
    """A superuser is assigned nowhere and works on every active organisation: that is not
    the assigned list the user read brings, so the scope is asked on its own."""
    superuser = UserFactory(is_superuser=True, is_staff=True)
    with selectors.organization_scope_memo(), django_assert_num_queries(2):
        loaded = selectors.user_get_with_scope(pk=superuser.pk)
        assert selectors.organization_ids_for_user(user=loaded) == tuple(sorted(o.pk for o in orgs))


def test_outside_a_request_the_user_read_keeps_no_organisations(orgs, django_assert_num_queries):
    user = UserFactory()
    organization_assign_staff(actor=None, organization=orgs[0], user=user)
    loaded = selectors.user_get_with_scope(pk=user.pk)
    with django_assert_num_queries(1):
        assert selectors.organization_ids_for_user(user=loaded) == (orgs[0].pk,)


@pytest.mark.parametrize("pk", [0, -1, 2**63, 987654321])
def test_no_user_is_read_for_a_missing_or_impossible_key(pk):
    assert selectors.user_get_with_scope(pk=pk) is None
