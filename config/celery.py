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
}
