"""Directory import jobs in the Django admin: read-only, scoped to the user's organisations,
and never showing the uploaded file (it holds people's phones and emails)."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.models import ImportJob, Role
from tests.accounts.factories import OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db

JOBS = "/admin/accounts/importjob/"
SECRET_PHONE = "+12025550199"
SECRET_EMAIL = "hidden.person@acme.example"
CSV = (
    "employee_id,full_name,email,phone,department,manager_employee_id,privileged\n"
    f"E1,Hidden Person,{SECRET_EMAIL},{SECRET_PHONE},IT,,no\n"
)
CLEAN_DRY_RUN = {
    "rows": 1,
    "created": 1,
    "updated": 0,
    "unchanged": 0,
    "contact_changed": 0,
    "not_in_file": 4,
    "dry_run": True,
    "applied": False,
    "error_count": 0,
    "errors": [],
}


@pytest.fixture
def acme():
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def globex():
    return OrganizationFactory(name="Globex", slug="globex")


@pytest.fixture
def acme_job(acme):
    # A clean dry run: the one kind of finished job that still holds its file.
    return ImportJob.objects.create(
        organization=acme, csv_text=CSV, file_name="acme.csv", status=ImportJob.Status.DONE, result=CLEAN_DRY_RUN
    )


@pytest.fixture
def globex_job(globex):
    rejected = {**CLEAN_DRY_RUN, "error_count": 1, "errors": [{"row": 2, "field": "email", "message": SECRET_EMAIL}]}
    return ImportJob.objects.create(
        organization=globex, csv_text=CSV, file_name="globex.csv", status=ImportJob.Status.DONE, result=rejected
    )


def _view_jobs_permission():
    return Permission.objects.get(content_type__app_label="accounts", codename="view_importjob")


@pytest.fixture
def org_admin_client(client, acme):
    user = UserFactory(is_staff=True, roles=[Role.ORG_ADMIN], organizations=[acme], mfa=True)
    user.user_permissions.add(_view_jobs_permission())
    client.force_login(user)
    return client


@pytest.fixture
def root_client(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True, mfa=True))
    return client


def _listed(response):
    assert response.status_code == 200
    return set(response.context["cl"].result_list)


def _change_url(job):
    return f"{JOBS}{job.pk}/change/"


def test_superuser_sees_every_organisations_jobs(root_client, acme_job, globex_job):
    assert _listed(root_client.get(JOBS)) == {acme_job, globex_job}
    for job in (acme_job, globex_job):
        assert root_client.get(_change_url(job)).status_code == 200


def test_list_shows_who_what_and_the_counts(root_client, acme_job):
    html = root_client.get(JOBS).content.decode()
    for heading in ("Organization", "Created by", "Dry run", "Status", "Rows", "Created", "Problems", "Finished at"):
        assert heading in html
    for column, value in (("rows", 1), ("created", 1), ("updated", 0), ("contact_changed", 0), ("problems", 0)):
        assert f'<td class="field-{column}">{value}</td>' in html


def test_counts_stay_empty_until_the_job_is_done(root_client, acme):
    running = ImportJob.objects.create(organization=acme, csv_text=CSV, status=ImportJob.Status.RUNNING)
    model_admin = root_client.get(JOBS).context["cl"].model_admin
    assert model_admin.rows(running) is None


def test_uploaded_file_and_row_problems_are_never_shown(root_client, acme_job, globex_job):
    for url in (JOBS, _change_url(acme_job), _change_url(globex_job)):
        content = root_client.get(url).content.decode()
        assert SECRET_PHONE not in content and SECRET_EMAIL not in content and "Hidden Person" not in content
    assert "csv_text" not in root_client.get(_change_url(acme_job)).context["adminform"].form.fields


def test_job_page_links_to_the_portal_report(root_client, acme_job):
    content = root_client.get(_change_url(acme_job)).content.decode()
    assert reverse("people_import_job", args=["acme", acme_job.pk]) in content


def test_jobs_cannot_be_added_changed_or_deleted(root_client, acme_job):
    assert root_client.get(f"{JOBS}add/").status_code == 403
    assert root_client.get(f"{JOBS}{acme_job.pk}/delete/").status_code == 403
    assert root_client.post(f"{JOBS}{acme_job.pk}/delete/", {"post": "yes"}).status_code == 403
    response = root_client.post(_change_url(acme_job), {"status": "failed", "file_name": "x.csv"})
    assert response.status_code == 403
    listing = root_client.get(JOBS)
    assert f"{JOBS}add/" not in listing.content.decode()
    assert listing.context["action_form"] is None  # no actions at all, so no bulk delete
    root_client.post(JOBS, {"action": "delete_selected", "_selected_action": [acme_job.pk], "post": "yes"})
    acme_job.refresh_from_db()
    assert (acme_job.status, acme_job.file_name) == (ImportJob.Status.DONE, "acme.csv")


def test_org_admin_sees_only_their_organisations_jobs(org_admin_client, acme_job, globex_job, globex):
    assert _listed(org_admin_client.get(JOBS)) == {acme_job}
    assert _listed(org_admin_client.get(JOBS, {"organization": globex.pk})) == set()
    content = org_admin_client.get(JOBS).content.decode()
    assert "Acme" in content and "Globex" not in content  # nor in the organisation filter
    assert org_admin_client.get(_change_url(acme_job)).status_code == 200


@pytest.mark.parametrize("suffix", ["change/", "history/", "delete/"])
def test_another_organisations_job_is_404_for_an_org_admin(org_admin_client, globex_job, suffix):
    response = org_admin_client.get(f"{JOBS}{globex_job.pk}/{suffix}")
    assert response.status_code == 404
    assert b"globex.csv" not in response.content


def test_org_admin_cannot_add_or_delete_their_own_jobs(org_admin_client, acme_job):
    assert org_admin_client.get(f"{JOBS}add/").status_code == 403
    assert org_admin_client.post(f"{JOBS}{acme_job.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ImportJob.objects.filter(pk=acme_job.pk).exists()


def test_staff_member_without_the_view_permission_is_refused(client, acme, acme_job):
    client.force_login(UserFactory(is_staff=True, roles=[Role.ORG_ADMIN], organizations=[acme], mfa=True))
    assert client.get(JOBS).status_code == 403
    assert client.get(_change_url(acme_job)).status_code == 403


def test_staff_member_without_assignment_sees_no_jobs(client, acme_job):
    user = UserFactory(is_staff=True, mfa=True)
    user.user_permissions.add(_view_jobs_permission())
    client.force_login(user)
    assert _listed(client.get(JOBS)) == set()
    assert client.get(_change_url(acme_job)).status_code == 404
