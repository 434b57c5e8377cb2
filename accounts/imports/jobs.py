"""Import jobs: an upload from the portal, run by a Celery worker, with progress the page can show.

Progress goes to the cache as well as to the job row: while the import writes, the
row's updates sit inside the import's transaction and no other process can see them.

The uploaded CSV (names, phones, emails) is kept only while it is needed: it is cleared
when the job finishes, except after a clean dry run, which keeps it until it is
imported for real (the real import then keeps its own copy until it finishes).
"""

from __future__ import annotations

import logging

from django.core.cache import cache
from django.db import transaction
from django.http import Http404
from django.utils import timezone

from accounts.imports.service import people_import
from accounts.models import ImportJob, Organization, User

logger = logging.getLogger(__name__)
PROGRESS_TTL = 6 * 60 * 60
RECENT_JOBS = 10


class ImportJobNotConfirmable(ValueError):
    pass


# --- writes ---------------------------------------------------------------------


@transaction.atomic
def import_job_create(
    *, actor: User, organization: Organization, csv_text: str, dry_run: bool, file_name: str = ""
) -> ImportJob:
    """Queue an import of ``csv_text``; the worker picks it up once this transaction commits."""
    from accounts.tasks import people_import_run

    job = ImportJob.objects.create(
        organization=organization, created_by=actor, csv_text=csv_text, dry_run=dry_run, file_name=file_name[:255]
    )
    transaction.on_commit(lambda: people_import_run.delay(job.pk))
    return job


@transaction.atomic
def import_job_confirm(*, actor: User, job: ImportJob) -> ImportJob:
    """After a clean dry run, queue the real import of the same file, once.

    The file moves to the new job: clearing it on the dry run is a conditional update,
    so two confirmations of the same dry run (a double click) queue one import.
    """
    if not _is_clean_dry_run(job):
        raise ImportJobNotConfirmable("Only a finished dry run without errors can be imported for real.")
    released = ImportJob.objects.filter(pk=job.pk).exclude(csv_text="").update(csv_text="")
    if not released or not job.csv_text:
        raise ImportJobNotConfirmable("This dry run has already been imported. Upload the file again to re-import it.")
    return import_job_create(
        actor=actor, organization=job.organization, csv_text=job.csv_text, dry_run=False, file_name=job.file_name
    )


def import_job_run(*, job: ImportJob) -> bool:
    """Run a queued job. Returns False when another worker claimed it first.

    The claim is a conditional update, so a job delivered twice runs once.
    """
    claimed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING
    )
    if not claimed:
        return False
    result = people_import(
        actor=job.created_by,
        organization=job.organization,
        csv_text=job.csv_text,
        dry_run=job.dry_run,
        progress=_progress_recorder(job.pk),
    )
    finished = {
        "status": ImportJob.Status.DONE,
        "finished_at": timezone.now(),
        "total_rows": result.rows,
        "processed_rows": result.rows,
        "result": result.as_dict(max_errors=ImportJob.MAX_STORED_ERRORS),
    }
    if not (result.dry_run and result.ok):
        finished["csv_text"] = ""  # a clean dry run keeps it until import_job_confirm moves it
    ImportJob.objects.filter(pk=job.pk).update(**finished)
    cache.delete(_progress_key(job.pk))
    return True


def import_job_fail(*, job_id: int) -> None:
    """Mark a job that crashed; the worker log has the traceback, the page a plain message."""
    ImportJob.objects.filter(pk=job_id).update(
        status=ImportJob.Status.FAILED,
        finished_at=timezone.now(),
        csv_text="",
        result={"failure": "The import stopped unexpectedly; nothing was imported. Try again or ask an admin."},
    )
    cache.delete(_progress_key(job_id))


def _progress_key(job_id: int) -> str:
    return f"accounts:import-job:{job_id}:progress"


def _progress_recorder(job_id: int):
    def record(done: int, total: int) -> None:
        cache.set(_progress_key(job_id), (done, total), PROGRESS_TTL)
        if not transaction.get_connection().in_atomic_block:
            ImportJob.objects.filter(pk=job_id).update(processed_rows=done, total_rows=total)

    return record


# --- reads ----------------------------------------------------------------------


def import_job_get(*, organization: Organization, pk: int) -> ImportJob:
    """The job, or Http404 when it belongs to another organisation."""
    try:
        return ImportJob.objects.select_related("organization", "created_by").get(organization=organization, pk=pk)
    except ImportJob.DoesNotExist:
        raise Http404("No such import") from None


def import_job_list_recent(*, organization: Organization) -> list[ImportJob]:
    jobs = ImportJob.objects.filter(organization=organization).select_related("created_by").defer("csv_text")
    return list(jobs[:RECENT_JOBS])


def import_job_is_confirmable(*, job: ImportJob) -> bool:
    """A finished dry run with no errors that has not been imported yet (it still holds the file)."""
    return _is_clean_dry_run(job) and bool(job.csv_text)


def _is_clean_dry_run(job: ImportJob) -> bool:
    return job.dry_run and job.status == ImportJob.Status.DONE and job.result.get("error_count") == 0


def import_job_progress(*, job: ImportJob) -> tuple[int, int]:
    """(done, total) rows: the worker's latest report while it runs, else what the row says."""
    if job.status == ImportJob.Status.RUNNING:
        reported = cache.get(_progress_key(job.pk))
        if reported is not None:
            return reported
    return job.processed_rows, job.total_rows
