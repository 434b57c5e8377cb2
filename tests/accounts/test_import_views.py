import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import override_settings
from django.urls import reverse

from accounts.imports import jobs
from accounts.models import ImportJob, Person, Role
from accounts.tasks import people_import_run
from audit.events import EventType
from audit.models import SecurityEvent
from tests.accounts.factories import PASSWORD, OrganizationFactory, UserFactory
from tests.helpers import sign_in

pytestmark = pytest.mark.django_db

HEADER = "employee_id,full_name,email,phone,department,manager_employee_id,privileged"
GOOD = f"{HEADER}\nE1,Ada Boss,ada@client.example,202 555 0101,Board,,yes\nE2,Bob,,,IT,E1,no\n"
BAD = f"{HEADER}\nE1,Ada,,12345,,,\nE2,,,,,GHOST,\n"


@pytest.fixture
def org():
    return OrganizationFactory(slug="acme", name="Acme")


@pytest.fixture
def admin(org, client):
    user = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org], mfa=True)
    client.force_login(user)
    return user


def upload(client, org, text: str | bytes, *, dry_run=True, name="people.csv"):
    data = {"file": SimpleUploadedFile(name, text.encode() if isinstance(text, str) else text, "text/csv")}
    if dry_run:
        data["dry_run"] = "on"
    return client.post(reverse("people_import", args=[org.slug]), data)


def test_upload_form_defaults_to_dry_run(client, org, admin):
    response = client.get(reverse("people_import", args=[org.slug]))
    assert response.status_code == 200
    assert b'name="dry_run" checked' in response.content
    assert b"No imports yet." in response.content


def test_org_admin_dry_runs_then_imports_for_real(client, org, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, org, GOOD)
    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("people_import_job", args=["acme", job.pk])
    assert job.dry_run and job.status == ImportJob.Status.DONE and job.created_by == admin
    assert not Person.objects.exists()
    page = client.get(response["Location"])
    assert b'http-equiv="refresh"' not in page.content
    assert b"Dry run: the file is valid" in page.content and b"Import for real" in page.content

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("people_import_confirm", args=["acme", job.pk]))
    real = ImportJob.objects.exclude(pk=job.pk).get()
    assert response["Location"] == reverse("people_import_job", args=["acme", real.pk])
    assert not real.dry_run and real.file_name == job.file_name and real.status == ImportJob.Status.DONE
    assert real.result["created"] == 2 and real.result["applied"] is True
    assert (real.processed_rows, real.total_rows) == (2, 2)
    assert Person.objects.get(employee_id="E2").manager.employee_id == "E1"
    completed = SecurityEvent.objects.get(event_type=EventType.DIRECTORY_IMPORT_COMPLETED)
    assert completed.actor_id == admin.pk
    page = client.get(response["Location"])
    assert b"Imported." in page.content and b"Import for real" not in page.content


def test_real_sign_in_then_direct_import_without_dry_run(client, org, django_capture_on_commit_callbacks):
    user = UserFactory(roles=[Role.ORG_ADMIN], organizations=[org], mfa=True)
    sign_in(client, user, password=PASSWORD, secret=user.totp_secret)
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, org, GOOD, dry_run=False)
    assert Person.objects.filter(organization=org).count() == 2


def test_bad_file_shows_every_row_error_and_cannot_be_confirmed(client, org, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, org, BAD)
    job = ImportJob.objects.get()
    assert job.result["error_count"] == 3
    page = client.get(response["Location"]).content.decode()
    assert "The file was rejected: 3 problems" in page
    assert "<td>phone</td><td>is not a valid phone number" in page
    assert "<td>full_name</td><td>is missing</td>" in page
    assert "unknown manager GHOST" in page
    assert "Import for real" not in page
    response = client.post(reverse("people_import_confirm", args=["acme", job.pk]), follow=True)
    assert b"Only a finished dry run without errors" in response.content
    assert ImportJob.objects.count() == 1


def test_stored_error_list_is_capped_with_the_full_count(client, org, admin, django_capture_on_commit_callbacks):
    rows = "".join(f"E{i},,,,,,\n" for i in range(ImportJob.MAX_STORED_ERRORS + 5))
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, org, f"{HEADER}\n{rows}")
    job = ImportJob.objects.get()
    assert job.result["error_count"] == ImportJob.MAX_STORED_ERRORS + 5
    assert len(job.result["errors"]) == ImportJob.MAX_STORED_ERRORS
    assert b"Showing the first 1,000 of 1,005 problems" in client.get(response["Location"]).content


def test_running_job_page_shows_progress_and_refreshes(client, org, admin):
    job = ImportJob.objects.create(organization=org, created_by=admin, csv_text=GOOD, status=ImportJob.Status.RUNNING)
    jobs._progress_recorder(job.pk)(250, 1000)
    page = client.get(reverse("people_import_job", args=["acme", job.pk])).content.decode()
    assert '<meta http-equiv="refresh" content="1">' in page
    assert '<progress value="250" max="1000"' in page and "25% of 1,000 rows" in page
    job.status = ImportJob.Status.QUEUED
    job.save()
    page = client.get(reverse("people_import_job", args=["acme", job.pk])).content.decode()
    assert 'http-equiv="refresh"' in page and "Waiting for a worker" in page
    cache.clear()


def test_failed_job_is_marked_and_explained(client, org, admin, monkeypatch, django_capture_on_commit_callbacks):
    def explode(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(jobs, "people_import", explode)
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(client, org, GOOD, dry_run=False)
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED
    page = client.get(response["Location"])
    assert b"The import stopped unexpectedly" in page.content and b"database went away" not in page.content


def test_task_ignores_a_job_that_is_no_longer_queued(org, admin):
    job = ImportJob.objects.create(organization=org, created_by=admin, csv_text=GOOD, status=ImportJob.Status.DONE)
    people_import_run(job.pk)
    people_import_run(job.pk + 1000)  # rolled back or deleted
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and not Person.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (f"{HEADER}\nE1,Zoë,,,,,\n".encode("latin-1"), b"The file is not UTF-8 text"),
        (GOOD.encode(), b"The file is 1"),
    ],
)
@override_settings(DIRECTORY_IMPORT_MAX_BYTES=100)
def test_unreadable_or_too_big_upload_is_refused_on_the_form(client, org, admin, content, message):
    response = upload(client, org, content)
    assert response.status_code == 200
    assert message in response.content
    assert not ImportJob.objects.exists()


def test_another_organisations_import_page_and_job_are_404(client, org, admin):
    other = OrganizationFactory(slug="other")
    job = ImportJob.objects.create(organization=other, csv_text=GOOD)
    assert client.get(reverse("people_import", args=["other"])).status_code == 404
    assert client.get(reverse("people_import_job", args=["other", job.pk])).status_code == 404
    assert client.get(reverse("people_import_job", args=["acme", job.pk])).status_code == 404
    assert client.post(reverse("people_import_confirm", args=["acme", job.pk])).status_code == 404


def test_technician_without_org_admin_role_is_refused(client, org):
    technician = UserFactory(roles=[Role.TECHNICIAN], organizations=[org], mfa=True)
    client.force_login(technician)
    response = client.get(reverse("people_import", args=["acme"]))
    assert response.status_code == 403
    assert b"Only organisation admins may import" in response.content
    assert upload(client, org, GOOD).status_code == 403
    assert not ImportJob.objects.exists()
    assert b"Import people" not in client.get(reverse("organization_detail", args=["acme"])).content


def test_import_link_shows_for_org_admins_and_superusers(client, org, admin):
    link = reverse("people_import", args=["acme"]).encode()
    assert link in client.get(reverse("organization_detail", args=["acme"])).content
    client.force_login(UserFactory(is_superuser=True, mfa=True))
    assert link in client.get(reverse("organization_detail", args=["acme"])).content
    assert client.get(reverse("people_import", args=["acme"])).status_code == 200


def test_anonymous_visitor_is_sent_to_sign_in(client, org):
    response = client.get(reverse("people_import", args=["acme"]))
    assert response.status_code == 302 and reverse("account_login") in response["Location"]


# --- The uploaded file is dropped once it is no longer needed ----------------------------


def _stored_csv(job):
    return ImportJob.objects.values_list("csv_text", flat=True).get(pk=job.pk)


@pytest.mark.parametrize(("text", "dry_run"), [(GOOD, False), (BAD, False), (BAD, True)])
def test_finished_job_no_longer_holds_the_file(client, org, admin, django_capture_on_commit_callbacks, text, dry_run):
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, org, text, dry_run=dry_run)
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.DONE and job.finished_at is not None
    assert _stored_csv(job) == ""


def test_failed_job_no_longer_holds_the_file(client, org, admin, monkeypatch, django_capture_on_commit_callbacks):
    def explode(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(jobs, "people_import", explode)
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, org, GOOD, dry_run=True)
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED and _stored_csv(job) == ""


def test_clean_dry_run_keeps_the_file_until_it_is_imported(client, org, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, org, GOOD)
    dry_run = ImportJob.objects.get()
    assert _stored_csv(dry_run) == GOOD
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("people_import_confirm", args=["acme", dry_run.pk]))
    real = ImportJob.objects.exclude(pk=dry_run.pk).get()
    assert real.status == ImportJob.Status.DONE and real.result["created"] == 2
    assert _stored_csv(dry_run) == "" and _stored_csv(real) == ""
    page = client.get(reverse("people_import_job", args=["acme", dry_run.pk]))
    assert b"Import for real" not in page.content


def test_a_dry_run_is_imported_for_real_only_once(client, org, admin, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        upload(client, org, GOOD)
    dry_run = ImportJob.objects.get()
    confirm = reverse("people_import_confirm", args=["acme", dry_run.pk])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(confirm)
    response = client.post(confirm, follow=True)
    assert b"This dry run has already been imported" in response.content
    assert ImportJob.objects.filter(dry_run=False).count() == 1


def test_confirming_a_stale_copy_of_the_dry_run_queues_nothing(org, admin, django_capture_on_commit_callbacks):
    """Two requests that loaded the dry run before either confirmed it: only the first imports."""
    with django_capture_on_commit_callbacks(execute=True):
        first = jobs.import_job_create(actor=admin, organization=org, csv_text=GOOD, dry_run=True)
    first_copy, second_copy = ImportJob.objects.get(pk=first.pk), ImportJob.objects.get(pk=first.pk)
    jobs.import_job_confirm(actor=admin, job=first_copy)
    with pytest.raises(jobs.ImportJobNotConfirmable):
        jobs.import_job_confirm(actor=admin, job=second_copy)
    assert ImportJob.objects.filter(dry_run=False).count() == 1
