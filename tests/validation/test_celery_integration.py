"""A challenge from creation to delivered through a real Celery worker process on Redis
and PostgreSQL, the fake Twilio API, and a signed status callback.

Needs REDIS_URL and a PostgreSQL DATABASE_URL (what .ci/run sets). Without them it is
skipped locally; under CI=true tests/conftest.py has already stopped the run instead.
"""

import re
import time

import pytest
from django.conf import settings as django_settings

from tests.celery_worker import INTEGRATION_MARKS, running_worker
from validation import services
from validation.models import Action, Challenge, Method, VerificationRequest

WAIT_SECONDS = 30
TASK_DONE = re.compile(r"Task validation\.tasks\.challenge_send\[[-0-9a-f]+\] succeeded")


pytestmark = INTEGRATION_MARKS


@pytest.fixture
def celery_worker(transactional_db, fake_twilio, settings, tmp_path):
    """The worker on the test database, sending to the fake Twilio API."""
    with running_worker(tmp_path, name="validation", extra_env=_twilio_env(fake_twilio, settings)) as worker:
        yield worker


def _twilio_env(fake_twilio, settings) -> dict[str, str]:
    return {
        "TWILIO_API_BASE_URL": fake_twilio.base_url,
        "TWILIO_ACCOUNT_SID": settings.TWILIO_ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": settings.TWILIO_AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": settings.TWILIO_FROM_NUMBER,
        "PUBLIC_BASE_URL": settings.PUBLIC_BASE_URL,
    }


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


@pytest.fixture
def celery_worker_keeping_connections(transactional_db, fake_twilio, settings, tmp_path):
    """The worker as deployed: connections kept for DATABASE_CONN_MAX_AGE (the other tests'
    worker closes them after each task)."""
    extra_env = {**_twilio_env(fake_twilio, settings), "DATABASE_CONN_MAX_AGE": "60"}
    with running_worker(tmp_path, name="validation-kept", extra_env=extra_env) as worker:
        yield worker


def test_the_worker_keeps_its_database_connection_from_task_to_task(
    celery_worker_keeping_connections, tasks_go_to_the_broker, fake_twilio, technician, person
):
    """Celery's Django fixup would open a new PostgreSQL connection for every task; the
    worker keeps one as the web processes do (config/celery.py)."""
    celery_worker = celery_worker_keeping_connections
    from django.db import connection

    from tests.validation.factories import PersonFactory

    def sessions() -> int:
        with connection.cursor() as cursor:
            cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
            return cursor.fetchone()[0]

    people = [person, *(PersonFactory(organization=person.organization) for _ in range(3))]
    opened = []
    for n, someone in enumerate(people):
        verification = services.verification_request_create(
            actor=technician, person=someone, action=Action.OTHER, ticket_reference=f"INC-41{n:02d}"
        )
        challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
        _wait_until(
            lambda c=challenge: Challenge.objects.filter(pk=c.pk, status=Challenge.Status.SENT).exists(),
            celery_worker,
            "the worker did not send the challenge",
        )
        opened.append(sessions())
    assert opened[-1] == opened[0], f"sessions opened per task: {opened}"
