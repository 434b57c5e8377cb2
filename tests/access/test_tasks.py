"""The tasks hold no logic: they call one service, and an early one does not run its work."""

from datetime import timedelta

import pytest
import time_machine

from access import tasks
from config.celery import app

pytestmark = pytest.mark.django_db


def test_the_beat_sweep_runs_every_30_seconds():
    entry = app.conf.beat_schedule["access-sweep"]
    assert entry["task"] == tasks.access_sweep.name and entry["schedule"] == 30.0


def test_an_early_expiry_task_changes_nothing(approved, activate):
    grant = activate(approved(duration=timedelta(minutes=30)))
    assert tasks.grant_expire.delay(grant.pk).get() == "not_due"
    grant.refresh_from_db()
    assert grant.mirror_cleaned_at is None


def test_the_expiry_task_cleans_up_once_due(approved, activate):
    grant = activate(approved(duration=timedelta(minutes=30)))
    with time_machine.travel(grant.expires_at + timedelta(milliseconds=40), tick=False):
        assert tasks.grant_expire.delay(grant.pk).get() == "done"
        assert tasks.grant_expire.delay(grant.pk).get() == "already"
        assert tasks.access_sweep.delay().get()["grants_expired"] == 0
