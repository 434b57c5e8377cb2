"""A challenge from creation to delivered through a real Celery worker process on Redis
and PostgreSQL, the fake Twilio API, and a signed status callback.

Needs REDIS_URL and a PostgreSQL DATABASE_URL (what .ci/run sets). Without them it is
skipped locally; under CI=true tests/conftest.py has already stopped the run instead.
"""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.db import connection

from config import celery_app
from tests.conftest import running_in_ci
from validation import services
from validation.models import Action, Challenge, Method, VerificationRequest

ROOT = Path(__file__).resolve().parents[2]
WAIT_SECONDS = 30
TASK_DONE = re.compile(r"Task validation\.tasks\.challenge_send\[[-0-9a-f]+\] succeeded")


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
def celery_worker(transactional_db, fake_twilio, settings, tmp_path):
    """A `celery -A config worker` process on the test database and the fake Twilio API.
    Always terminated, and its log is shown when the test fails."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "DATABASE_URL": _test_database_url(),
        "DATABASE_CONN_MAX_AGE": "0",
        "REDIS_URL": os.environ["REDIS_URL"],
        "TWILIO_API_BASE_URL": fake_twilio.base_url,
        "TWILIO_ACCOUNT_SID": settings.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": settings.TWILIO_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": settings.TWILIO_FROM_NUMBER,
        "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL,
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("CELERY_BROKER_URL", None)
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo", "--loglevel=INFO"]
            + ["--without-gossip", "--without-mingle", "--without-heartbeat", f"--hostname=test-{os.getpid()}@%h"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker.log_path = log_path
    try:
        yield worker
    finally:
        _stop(worker)


def _stop(worker: subprocess.Popen) -> None:
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            worker.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=5)


def _wait_until(condition, worker, what: str):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if worker.poll() is not None:
            break
        time.sleep(0.1)
    log = worker.log_path.read_text()[-4000:]
    pytest.fail(f"{what} within {WAIT_SECONDS}s (worker exit status {worker.poll()}); worker log:\n{log}")


@pytest.fixture
def tasks_go_to_the_broker():
    """This process only enqueues: turn eager execution off on its Celery app."""
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = eager


def test_challenge_goes_from_created_to_delivered_through_a_real_worker(
    celery_worker, tasks_go_to_the_broker, fake_twilio, post_status, technician, person
):
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-4001"
    )
    challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    assert challenge.status == Challenge.Status.QUEUED  # committed; the worker does the rest

    def sent():
        challenge.refresh_from_db()
        return challenge.status == Challenge.Status.SENT and fake_twilio.messages

    [message] = _wait_until(sent, celery_worker, "the worker did not send the challenge")
    _wait_until(lambda: TASK_DONE.search(celery_worker.log_path.read_text()), celery_worker, "the task did not finish")
    assert message.value("To") == person.phone
    assert message.value("StatusCallback") == settings_callback_url()
    assert challenge.provider_message_id == message.response["sid"]
    version = VerificationRequest.objects.get(pk=verification.pk).version

    response = post_status(
        {"MessageSid": challenge.provider_message_id, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32}
    )
    assert response.status_code == 200
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.DELIVERED
    assert VerificationRequest.objects.get(pk=verification.pk).version == version + 1


def settings_callback_url() -> str:
    return django_settings.PUBLIC_BASE_URL.rstrip("/") + "/webhooks/twilio/status/"
