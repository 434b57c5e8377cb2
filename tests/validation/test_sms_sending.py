"""Sending challenge texts: the real twilio client against the fake Twilio API, the Celery
task's retries (run eagerly, so retries do not wait out their countdown), and how send
failures reach the technician without counting against the person."""

import json
import logging
import os

import pytest

from audit.models import SecurityEvent
from tests.validation.helpers import code_in, texts_to_a_fake_twilio
from validation import services
from validation.channels import SendError
from validation.channels.sms import PERMANENT_ERRORS, sms_send
from validation.models import Action, Challenge, Method, PersonVerificationState, VerificationRequest
from validation.tasks import SEND_RETRIES

# A fixed code, so "appears nowhere else" cannot be a coincidence with a phone number or port.
PINNED_CODE = "84591376"
CALLBACK_URL = "http://127.0.0.1:8000/webhooks/twilio/status/"  # PUBLIC_BASE_URL + the webhook path


@pytest.fixture
def pinned_code(monkeypatch):
    monkeypatch.setattr("validation.crypto.code_generate", lambda digits: PINNED_CODE[:digits])
    return PINNED_CODE[:6]


@pytest.fixture
def send_code(technician, person, django_capture_on_commit_callbacks, eager_retries):
    """Start an SMS-code challenge; its task runs (eagerly) when the transaction commits."""

    def send():
        verification = services.verification_request_create(
            actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-2001"
        )
        with django_capture_on_commit_callbacks(execute=True):
            challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
        challenge.refresh_from_db()
        return challenge

    return send


def events(event_type):
    return list(SecurityEvent.objects.filter(event_type=event_type))


def assert_no_failure_counted(person, challenge):
    assert not PersonVerificationState.objects.filter(person=person, consecutive_failures__gt=0).exists()
    assert challenge.request.status == VerificationRequest.Status.PENDING
    assert not events("verification.challenge_wrong_answer")


def test_code_text_is_sent_to_the_phone_of_record_from_the_configured_number(
    fake_twilio, send_code, person, settings, pinned_code, caplog
):
    caplog.set_level(logging.DEBUG)
    challenge = send_code()

    [sent] = fake_twilio.requests
    assert sent.method == "POST"
    assert sent.path == f"/2010-04-01/Accounts/{settings.TWILIO_ACCOUNT_SID}/Messages.json"
    assert sent.basic_auth == (settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN)
    assert sorted(sent.form) == ["Body", "From", "StatusCallback", "To"]
    assert sent.value("To") == person.phone
    assert sent.value("From") == settings.TWILIO_FROM_NUMBER
    assert sent.value("StatusCallback") == CALLBACK_URL
    assert code_in(sent.value("Body")) == pinned_code

    assert challenge.status == Challenge.Status.SENT
    assert challenge.provider_message_id == sent.response["sid"]
    assert challenge.sent_at is not None and challenge.failure_reason == ""
    [event] = events("verification.challenge_sent")
    assert event.details["challenge"] == challenge.pk


def test_the_code_appears_only_in_the_body(fake_twilio, send_code, pinned_code, caplog):
    caplog.set_level(logging.DEBUG)
    challenge = send_code()

    [sent] = fake_twilio.requests
    assert pinned_code in sent.value("Body")
    assert pinned_code not in sent.path
    for name, value in sent.headers.items():
        assert pinned_code not in f"{name}: {value}"
    for name, values in sent.form.items():
        if name != "Body":
            assert all(pinned_code not in value for value in values), name
    assert caplog.records, "the send should have logged something (the twilio client logs each request)"
    assert pinned_code not in caplog.text
    assert pinned_code not in challenge.code_hmac
    for event in SecurityEvent.objects.all():
        recorded = [json.dumps(event.details), event.actor_label, event.target_label, event.organization_label]
        assert all(pinned_code not in text for text in recorded), event.event_type


def test_a_messaging_service_replaces_the_from_number(fake_twilio, send_code, settings):
    settings.TWILIO_MESSAGING_SERVICE_SID = "MG" + "ab" * 16
    challenge = send_code()

    [sent] = fake_twilio.requests
    assert sorted(sent.form) == ["Body", "MessagingServiceSid", "StatusCallback", "To"]
    assert sent.value("MessagingServiceSid") == settings.TWILIO_MESSAGING_SERVICE_SID
    assert sent.value("StatusCallback") == CALLBACK_URL
    assert challenge.status == Challenge.Status.SENT


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_transient_error_is_retried_and_the_retry_is_sent(fake_twilio, send_code, technician, status):
    fake_twilio.fail_next(1, status=status)
    challenge = send_code()

    first, second = fake_twilio.requests
    assert (first.response_status, second.response_status) == (status, 201)
    assert challenge.status == Challenge.Status.SENT
    assert challenge.provider_message_id == second.response["sid"]
    assert not events("verification.challenge_send_failed")
    # The retry composed a fresh code; the one in the text that went out is the one that works.
    assert services.sms_code_check(actor=technician, challenge=challenge, code=code_in(second.value("Body")))


def test_transient_errors_exhausted_fail_the_challenge_without_counting(fake_twilio, send_code, person):
    fake_twilio.fail_next(SEND_RETRIES + 1, status=503)
    challenge = send_code()

    assert [r.response_status for r in fake_twilio.requests] == [503] * (SEND_RETRIES + 1)
    assert challenge.status == Challenge.Status.FAILED
    assert (
        challenge.failure_reason == "Twilio is temporarily unavailable (HTTP 503, error 20503); gave up after 5 retries"
    )
    assert challenge.provider_message_id == ""
    [event] = events("verification.challenge_send_failed")
    assert event.details["reason"] == challenge.failure_reason
    assert_no_failure_counted(person, challenge)


@pytest.mark.parametrize("code", [21211, 21610, 30004])
def test_a_permanent_error_fails_the_challenge_at_once_with_the_reason(fake_twilio, send_code, person, code):
    fake_twilio.fail_next(1, code=code)
    challenge = send_code()

    [refused] = fake_twilio.requests
    assert refused.response_status == 400 and refused.response["code"] == code
    assert challenge.status == Challenge.Status.FAILED
    assert challenge.failure_reason == PERMANENT_ERRORS[code]
    [event] = events("verification.challenge_send_failed")
    assert event.details["error"] == str(code) and event.details["reason"] == PERMANENT_ERRORS[code]
    assert_no_failure_counted(person, challenge)


def test_a_refused_account_is_permanent(fake_twilio, send_code, person, settings):
    settings.TWILIO_AUTH_TOKEN = "not-the-token"
    challenge = send_code()

    [refused] = fake_twilio.requests
    assert refused.response_status == 401
    assert challenge.status == Challenge.Status.FAILED
    assert challenge.failure_reason.startswith("Twilio refused the portal's credentials")
    assert_no_failure_counted(person, challenge)


def test_twilio_unreachable_is_transient(fake_twilio, person):
    fake_twilio.stop()
    with pytest.raises(SendError) as raised:
        sms_send(to=person.phone, body="hello", status_callback=CALLBACK_URL)
    assert not raised.value.permanent
    assert raised.value.reason == "Twilio could not be reached"


def test_twilio_unreachable_throughout_fails_after_the_retries(fake_twilio, send_code, person):
    fake_twilio.stop()
    challenge = send_code()

    assert challenge.status == Challenge.Status.FAILED
    assert challenge.failure_reason == "Twilio could not be reached; gave up after 5 retries"
    assert len(events("verification.challenge_send_failed")) == 1
    assert_no_failure_counted(person, challenge)


def test_a_new_challenge_can_be_sent_after_a_failed_one(fake_twilio, send_code, technician):
    fake_twilio.fail_next(1, code=30004)
    failed = send_code()
    retry = services.challenge_start(actor=technician, verification=failed.request, method=Method.SMS_CODE)
    assert retry.pk != failed.pk


def test_texts_carry_names_as_written_not_html_escaped(fake_twilio, send_code, person):
    """Texts and emails are plain text: an organisation called O'Neil & Sons is not sent as
    O&#x27;Neil &amp; Sons (every .txt template renders with autoescaping off)."""
    person.organization.name = "O'Neil & Sons <Ltd>"
    person.organization.save(update_fields=["name"])
    send_code()
    [sent] = fake_twilio.requests
    assert sent.value("Body").startswith("O'Neil & Sons <Ltd> helpdesk: your verification code is ")


def test_the_proxy_environment_is_read_once_and_still_obeyed(fake_twilio, monkeypatch):
    """HTTPS_PROXY/HTTP_PROXY and NO_PROXY are read when the client is made (not per text),
    and still decide the route: a proxy that answers nothing makes the send fail, NO_PROXY
    for the API's host sends it directly."""
    from validation.channels import sms

    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing listens
    sms._client.cache_clear()
    with pytest.raises(SendError):
        sms_send(to="+12025550101", body="hello", status_callback=CALLBACK_URL)
    assert sms._client().http_client.proxy_url == "http://127.0.0.1:9"

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    sms._client.cache_clear()
    assert sms_send(to="+12025550101", body="hello", status_callback=CALLBACK_URL).startswith("SM")
    monkeypatch.setenv("NO_PROXY", "")  # read once: changing it now changes nothing for this client
    assert sms_send(to="+12025550101", body="hello again", status_callback=CALLBACK_URL).startswith("SM")


@pytest.mark.parametrize("name", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_the_ca_bundle_is_the_one_the_environment_names(monkeypatch, tmp_path, name):
    """As Twilio's requests-based client did: REQUESTS_CA_BUNDLE (or CURL_CA_BUNDLE) names
    the CAs that api.twilio.com's certificate is checked against; otherwise certifi's."""
    import certifi

    from validation.channels import sms

    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    assert sms._PooledHttpClient("https://api.twilio.com", timeout=10)._pool.connection_pool_kw["ca_certs"] == (
        certifi.where()
    )
    bundle = tmp_path / "corporate-ca.pem"
    bundle.write_text("")
    monkeypatch.setenv(name, str(bundle))
    client = sms._PooledHttpClient("https://api.twilio.com", timeout=10)
    assert client._pool.connection_pool_kw["ca_certs"] == str(bundle)
    assert client._pool.connection_pool_kw["cert_reqs"] == "CERT_REQUIRED"


@pytest.mark.parametrize("keep_alive", [True, False])
def test_the_client_keeps_its_connection_where_the_api_does(settings, monkeypatch, keep_alive):
    """api.twilio.com keeps connections open: the worker's client sends the next text on the
    same one (the benchmark's fake does too); a fake closing each connection gets a new one."""
    with texts_to_a_fake_twilio(settings, monkeypatch, keep_alive=keep_alive) as api:
        for n in range(3):
            sms_send(to="+12025550123", body=f"Text {n}", status_callback="https://portal.example/cb")
    peers = {request.peer for request in api.messages}
    assert len(api.messages) == 3
    assert len(peers) == (1 if keep_alive else 3)


def test_a_web_process_never_loads_twilios_http_stack():
    """Only the worker sends texts: the web processes check Twilio's signatures and never
    import its REST client and HTTP stack (requests, urllib3: about 6 MB each, which the
    export's memory budget counts)."""
    import subprocess
    import sys

    code = (
        "import django, sys; django.setup(); from django.urls import resolve; resolve('/');"
        "import validation.views.webhooks;"
        "print(sorted(m for m in ('twilio.rest', 'requests') if m in sys.modules))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
