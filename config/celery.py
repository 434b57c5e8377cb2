import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import task_postrun, task_prerun, worker_process_init, worker_ready
from django.db import connections

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Database connections in the worker live as in the web processes: kept for CONN_MAX_AGE and
# checked before their first use in each task (CONN_HEALTH_CHECKS), instead of Celery's Django
# fixup closing them before and after every task, which made every task open a new PostgreSQL
# connection (a third of the worker's CPU per text sent; docs/benchmarks.md). The fixup still
# closes them every DB_REUSE_MAX tasks.
app.conf["CELERY_DB_REUSE_MAX"] = 1000


@task_prerun.connect(weak=False, dispatch_uid="config.celery.connections_before")
@task_postrun.connect(weak=False, dispatch_uid="config.celery.connections_after")
def _connections_checked(task=None, **kwargs) -> None:
    """What Django does at the start and end of each request (``close_old_connections``):
    close a connection that is past its age or broken, and check the next one before it is
    used. Not for a task run eagerly (inside the caller's request), nor for a connection in a
    transaction."""
    if task is None or getattr(task.request, "is_eager", False):
        return
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:  # a worker's task never starts inside one
            connection.close_if_unusable_or_obsolete()


@worker_ready.connect(weak=False, dispatch_uid="config.celery.heap_frozen")
@worker_process_init.connect(weak=False, dispatch_uid="config.celery.heap_frozen_child")
def _heap_frozen(**kwargs) -> None:
    """The process that runs the tasks (the worker's own with the threads pool, each child
    with prefork), once loaded: its long-lived objects out of the garbage collector's walks
    (``config.heap``)."""
    from config.heap import freeze_loaded

    freeze_loaded()


# Periodic work is listed here so the whole schedule is visible in one place.
app.conf.beat_schedule = {
    # Expire stale verification requests and challenges (views and services also check times).
    "validation-expire": {"task": "validation.tasks.verification_expire", "schedule": 30.0},
    # JIT access: clean up grants the exact-time expiry task missed, mirror scheduled starts, send
    # due expiry notices, expire unreviewed requests. Authorization never waits for it.
    "access-sweep": {"task": "access.tasks.access_sweep", "schedule": 30.0, "options": {"expires": 25.0}},
    # Chain events a crashed process left unsealed (the recorder seals right after each commit).
    # Expiring: a worker that was down finds one of these waiting, not a backlog.
    "audit-seal": {"task": "audit.tasks.audit_seal", "schedule": 3.0, "options": {"expires": 10.0}},
    # Signed checkpoint of the chain head (skipped while the head stays put, hourly at least).
    "audit-checkpoint": {"task": "audit.tasks.audit_checkpoint", "schedule": 300.0, "options": {"expires": 240.0}},
    # Access hygiene (docs/access.md "Hygiene"). Lock staff accounts unused for STAFF_INACTIVE_LOCK_DAYS.
    "accounts-inactive-lock": {
        "task": "accounts.tasks.staff_lock_inactive",
        "schedule": crontab(minute=7),
        "options": {"expires": 3000.0},
    },
    # End eligibilities past valid_until, and close review campaigns whose deadline came
    # (what was not re-certified ends). Requests already refuse an expired eligibility.
    "access-eligibility-expire": {
        "task": "access.tasks.eligibility_expire_due",
        "schedule": 60.0,
        "options": {"expires": 50.0},
    },
    "access-review-close": {
        "task": "access.tasks.review_campaigns_close_due",
        "schedule": 60.0,
        "options": {"expires": 50.0},
    },
    # Start the quarterly review of each organisation that is due (ACCESS_REVIEW_INTERVAL_DAYS).
    "access-review-start": {
        "task": "access.tasks.review_campaigns_start_due",
        "schedule": crontab(hour=2, minute=15),
        "options": {"expires": 3600.0},
    },
    # The org admins' daily digest of the last 24 hours.
    "access-digest": {
        "task": "access.tasks.access_digest",
        "schedule": crontab(hour=6, minute=0),
        "options": {"expires": 3600.0},
    },
}
