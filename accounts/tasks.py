"""Celery tasks for the accounts app. Thin: load by id, re-check, call one service."""

from __future__ import annotations

import logging
from smtplib import SMTPException

from celery import shared_task

from accounts import notifications, services
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


MAIL_RETRIES = 5  # backoff 2, 4, 8, 16, 32 s


def mail_with_retry(task, send, **kwargs) -> int:
    """Run ``send`` (a service that emails) for a bound task; a mail server error retries the
    task with backoff, up to the task's ``max_retries`` (MAIL_RETRIES)."""
    try:
        return send(**kwargs)
    except (SMTPException, OSError) as exc:
        raise task.retry(countdown=2 ** (task.request.retries + 1)) from exc


@shared_task(bind=True, acks_late=True, max_retries=MAIL_RETRIES)
def staff_lock_notice(self, user_id: int) -> int:
    return mail_with_retry(self, notifications.staff_locked_send, user_id=user_id)


@shared_task(bind=True, acks_late=True, max_retries=MAIL_RETRIES)
def staff_unlock_notice(self, user_id: int) -> int:
    return mail_with_retry(self, notifications.staff_unlocked_send, user_id=user_id)


@shared_task
def staff_lock_inactive() -> int:
    """Beat: lock staff accounts unused for STAFF_INACTIVE_LOCK_DAYS (each re-checked under its row lock)."""
    return services.staff_lock_inactive_due()
