import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

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
}
