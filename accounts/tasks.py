"""Celery tasks for the accounts app. Thin: load by id, re-check, call one service."""

from __future__ import annotations

import logging

from celery import shared_task

from accounts.imports.jobs import import_job_fail, import_job_run
from accounts.models import ImportJob

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def people_import_run(job_id: int) -> None:
    """Run one queued directory import.

    No retry: the file was checked before anything is written and the write is one
    transaction, so a crash leaves nothing behind and the job is marked failed.
    """
    job = ImportJob.objects.select_related("organization", "created_by").filter(pk=job_id).first()
    if job is None or job.status != ImportJob.Status.QUEUED:
        return  # rolled back, already done, or claimed by another worker
    try:
        import_job_run(job=job)
    except Exception:
        logger.exception("Directory import job %s failed", job_id)
        import_job_fail(job_id=job_id)
