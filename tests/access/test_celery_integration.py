"""A grant's expiry through a real Celery worker process on Redis and PostgreSQL.

Needs REDIS_URL and a PostgreSQL DATABASE_URL (what .ci/run sets). Without them it is
skipped locally; under CI=true tests/conftest.py has already stopped the run instead.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone
from guardian.models import UserObjectPermission

from access import services
from access.authorization import grant_allows
from accounts.models import Role as StaffRole
from config import celery_app
from tests.access.factories import EligibilityFactory, RoleFactory
from tests.accounts.factories import OrganizationFactory, UserFactory
from tests.conftest import running_in_ci

ROOT = Path(__file__).resolve().parents[2]
START_SECONDS = 30


def _missing_services() -> str | None:
    if not os.environ.get("REDIS_URL"):
        return "REDIS_URL is not set"
    if django_settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        return "DATABASE_URL does not point at PostgreSQL"
    return None


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not running_in_ci() and _missing_services() is not None,
        reason=f"the Celery integration test needs Redis and PostgreSQL: {_missing_services()}",
    ),
]


def _test_database_url() -> str:
    """The database pytest-django created, which the worker must use too."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or "localhost"
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{credentials}{'@' if credentials else ''}{host}{port}/{quote(db['NAME'], safe='')}"


@pytest.fixture
def celery_worker(transactional_db, tmp_path):
    """A `celery -A config worker` process on the test database, ready to consume. Always
    terminated; its log is shown when the test fails."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DATABASE_URL": _test_database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": os.environ["REDIS_URL"],
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO"]
            + ["--without-gossip", "--without-mingle", "--without-heartbeat", f"--hostname=access-{os.getpid()}@%h"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker.log_path = log_path
    try:
        deadline = time.monotonic() + START_SECONDS
        while "ready." not in log_path.read_text():
            if worker.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the worker did not start:\n{log_path.read_text()[-4000:]}")
            time.sleep(0.1)
        yield worker
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
                worker.wait(timeout=5)


@pytest.fixture
def tasks_go_to_the_broker():
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = eager


def test_a_three_second_grants_permissions_are_gone_within_a_second_of_expiry(celery_worker, tasks_go_to_the_broker):
    org = OrganizationFactory()
    technician = UserFactory(roles=[StaffRole.TECHNICIAN], organizations=[org])
    approver = UserFactory(roles=[StaffRole.APPROVER], organizations=[org])
    role = RoleFactory(actions=["password_reset", "mfa_reset"])
    EligibilityFactory(technician=technician, role=role, organization=org)
    access_request = services.access_request_create(
        actor=technician,
        role=role,
        organization=org,
        justification="Three seconds is plenty",
        ticket_reference="INC-3",
        duration=timedelta(seconds=3),
    )
    services.access_request_approve(actor=approver, access_request=access_request)
    grant = services.grant_activate(actor=technician, access_request=access_request)  # commits: task is queued
    mirrored = UserObjectPermission.objects.filter(
        user=technician, object_pk=str(org.pk), permission__codename__startswith="jit_"
    )
    assert mirrored.count() == 2
    assert grant_allows(technician=technician, organization=org, action="password_reset")

    deadline = grant.expires_at + timedelta(seconds=5)
    while mirrored.exists() and timezone.now() < deadline:
        time.sleep(0.02)
    gone_at = timezone.now()

    assert not mirrored.exists(), celery_worker.log_path.read_text()[-4000:]
    assert gone_at - grant.expires_at < timedelta(seconds=1), celery_worker.log_path.read_text()[-4000:]
    assert not grant_allows(technician=technician, organization=org, action="password_reset")
    grant.refresh_from_db()
    assert grant.mirror_cleaned_at >= grant.expires_at
    assert timedelta(0) <= grant.cleanup_lag < timedelta(seconds=1)
    assert grant.request.status == "ended"
