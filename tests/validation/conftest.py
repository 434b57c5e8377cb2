import pytest
from django.urls import reverse

from config import celery_app
from tests.validation.factories import OrganizationFactory, PersonFactory, technician_for
from tests.validation.helpers import texts_to_a_fake_twilio, twilio_poster


@pytest.fixture
def outbox(settings):
    """Texts go to the development outbox (the real transport used by `make run`)."""
    settings.SMS_DEV_OUTBOX = True


@pytest.fixture
def org(db):
    return OrganizationFactory()


@pytest.fixture
def person(org):
    return PersonFactory(organization=org)


@pytest.fixture
def technician(org):
    return technician_for(org)


@pytest.fixture
def fake_twilio(settings, monkeypatch):
    """Texts go through the real twilio client to a fake of Twilio's API on 127.0.0.1."""
    with texts_to_a_fake_twilio(settings, monkeypatch) as api:
        yield api


@pytest.fixture
def eager_retries():
    """Let eager tasks retry. With task_eager_propagates on, Celery raises the task's
    Retry out of ``delay()``; with it off, ``apply()`` runs the retry at once (no
    countdown sleep), as many times as the task's own policy allows. Exceptions other
    than Retry are then caught by Celery and logged, so assert on the outcome."""
    propagates = celery_app.conf.task_eager_propagates
    celery_app.conf.task_eager_propagates = False
    yield
    celery_app.conf.task_eager_propagates = propagates


@pytest.fixture
def status_callback_url(settings):
    """The URL Twilio is given, and signs, for delivery receipts."""
    return settings.PUBLIC_BASE_URL.rstrip("/") + reverse("validation:twilio_status")


@pytest.fixture
def post_status(client, settings, status_callback_url):
    """POST a status callback the way Twilio does (``twilio_poster``)."""
    return twilio_poster(client, settings, url_name="validation:twilio_status", public_url=status_callback_url)
