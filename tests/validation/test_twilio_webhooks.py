"""Twilio's status callbacks: signed with twilio's RequestValidator, checked against
PUBLIC_BASE_URL, and applied to the challenge only when the signature and fields hold."""

import logging

import pytest
from django.core.cache import cache
from django.db import transaction
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from audit.models import SecurityEvent
from tests.fakes.twilio_api import FakeTwilioApi
from validation import services
from validation.channels.sms import PERMANENT_ERRORS
from validation.models import Action, Challenge, Method, VerificationRequest
from validation.views.webhooks import MESSAGE_STATUSES

UNKNOWN_SID = "SM" + "0123456789abcdef" * 2


@pytest.fixture
def sent(fake_twilio, technician, person, django_capture_on_commit_callbacks):
    """An SMS-code challenge the fake Twilio API accepted: status SENT, with a message sid."""
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-3001"
    )
    with django_capture_on_commit_callbacks(execute=True):
        challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.SENT and challenge.provider_message_id.startswith("SM")
    return challenge


def callback(challenge, status, **extra):
    """The fields Twilio posts to a StatusCallback URL."""
    return {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "MessageSid": challenge.provider_message_id,
        "MessageStatus": status,
        "SmsSid": challenge.provider_message_id,
        "SmsStatus": status,
        "To": challenge.request.person.phone,
        **extra,
    }


def state(challenge):
    """Everything a callback could change, as one comparable value."""
    fresh = Challenge.objects.get(pk=challenge.pk)
    version = VerificationRequest.objects.values_list("version", flat=True).get(pk=challenge.request_id)
    changes = SecurityEvent.objects.exclude(event_type="verification.webhook_rejected").count()
    return (fresh.status, fresh.delivered_at, fresh.failure_reason, fresh.provider_message_id, version, changes)


def events(event_type):
    return list(SecurityEvent.objects.filter(event_type=event_type))


def test_delivered_callback_marks_the_challenge_delivered(sent, post_status):
    version = sent.request.version
    response = post_status(callback(sent, "delivered"))

    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.status == Challenge.Status.DELIVERED and sent.delivered_at is not None
    assert VerificationRequest.objects.get(pk=sent.request_id).version > version
    [event] = events("verification.challenge_delivered")
    assert event.details["challenge"] == sent.pk


@pytest.mark.parametrize("status", ["undelivered", "failed"])
def test_undelivered_callback_records_the_carrier_reason(sent, post_status, status):
    version = sent.request.version
    response = post_status(callback(sent, status, ErrorCode="30003"))

    assert response.status_code == 200
    sent.refresh_from_db()
    assert sent.status == Challenge.Status.UNDELIVERED
    assert sent.failure_reason == PERMANENT_ERRORS[30003]
    assert VerificationRequest.objects.get(pk=sent.request_id).version > version
    [event] = events("verification.challenge_undelivered")
    assert event.details["error"] == "30003"


def test_a_repeated_callback_changes_nothing(sent, post_status):
    assert post_status(callback(sent, "delivered")).status_code == 200
    before = state(sent)

    assert post_status(callback(sent, "delivered")).status_code == 200
    assert state(sent) == before
    assert len(events("verification.challenge_delivered")) == 1


@pytest.mark.parametrize("status", ["queued", "sending", "sent"])
def test_progress_callbacks_change_nothing(sent, post_status, status):
    before = state(sent)
    assert post_status(callback(sent, status)).status_code == 200
    assert state(sent) == before


def test_an_answered_challenge_keeps_its_answer(sent, post_status, technician, fake_twilio):
    from tests.validation.helpers import code_in

    code = code_in(fake_twilio.messages[-1].value("Body"))
    assert services.sms_code_check(actor=technician, challenge=sent, code=code)
    assert post_status(callback(sent, "undelivered", ErrorCode="30003")).status_code == 200
    sent.refresh_from_db()
    assert sent.status == Challenge.Status.APPROVED


def test_a_receipt_that_arrives_before_the_message_id_is_saved_is_applied_then(
    fake_twilio, technician, person, post_status, django_capture_on_commit_callbacks
):
    """Twilio may call back before the worker's second transaction commits; it never
    sends that callback again, so the receipt is kept and applied when the id is saved."""
    early_sid = "SM" + "fedcba9876543210" * 2
    fake_twilio.use_sid_next(early_sid)
    verification = services.verification_request_create(
        actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-3002"
    )
    response = post_status({"MessageSid": early_sid, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32})
    assert response.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
    challenge.refresh_from_db()
    assert challenge.provider_message_id == early_sid
    assert challenge.status == Challenge.Status.DELIVERED


def test_unknown_message_gets_200_and_changes_nothing(sent, post_status):
    before = state(sent)
    response = post_status(callback(sent, "delivered", MessageSid=UNKNOWN_SID, SmsSid=UNKNOWN_SID))
    assert response.status_code == 200
    assert state(sent) == before


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param({"signature": None}, id="missing"),
        pytest.param({"signature": ""}, id="empty"),
        pytest.param({"signature": "bm90IGEgc2lnbmF0dXJl"}, id="garbage"),
        pytest.param({"token": "another-auth-token"}, id="other-token"),
        pytest.param({"signed_url": "http://testserver/webhooks/twilio/status/"}, id="host-header-url"),
        pytest.param({"signed_url": "http://127.0.0.1:8000/webhooks/twilio/status/?x=1"}, id="other-url"),
    ],
)
def test_bad_or_missing_signature_is_refused_and_recorded(sent, post_status, signature, caplog):
    caplog.set_level(logging.DEBUG)
    before = state(sent)
    response = post_status(callback(sent, "delivered"), **signature)

    assert response.status_code == 403
    assert response.content == b"Invalid or missing Twilio signature."
    assert state(sent) == before
    [event] = events("verification.webhook_rejected")
    assert event.details == {
        "webhook": "twilio_status",
        "reason": "missing signature" if not signature.get("signature", "x") else "invalid signature",
    }
    assert event.organization_id is None and event.source_ip == "127.0.0.1"
    assert sent.provider_message_id not in caplog.text


def test_a_signature_over_other_fields_is_refused(sent, post_status, client, settings, status_callback_url):
    from urllib.parse import urlencode

    from tests.fakes.twilio_api import twilio_signature

    signed = callback(sent, "sent")
    tampered = callback(sent, "undelivered", ErrorCode="30007")
    before = state(sent)
    response = client.post(
        "/webhooks/twilio/status/",
        data=urlencode(tampered),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": twilio_signature(status_callback_url, signed, settings.TWILIO_AUTH_TOKEN)},
    )
    assert response.status_code == 403
    assert state(sent) == before


def test_the_signature_covers_the_public_url_not_the_host_header(sent, post_status, settings):
    settings.PUBLIC_BASE_URL = "https://portal.example.com"
    public = "https://portal.example.com/webhooks/twilio/status/"

    assert (
        post_status(callback(sent, "delivered"), signed_url="http://testserver/webhooks/twilio/status/").status_code
        == 403
    )
    assert post_status(callback(sent, "delivered"), signed_url=public).status_code == 200
    sent.refresh_from_db()
    assert sent.status == Challenge.Status.DELIVERED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"MessageSid": None}, "MessageSid: missing."),
        ({"MessageSid": ""}, "MessageSid: missing."),
        ({"MessageStatus": None}, "MessageStatus: missing."),
        ({"MessageSid": "MM" + "a" * 32}, "MessageSid: expected SM followed by 32 lowercase hexadecimal digits."),
        ({"MessageSid": "SM" + "a" * 33}, "MessageSid: expected SM followed by 32 lowercase hexadecimal digits."),
        ({"MessageSid": "SM" + "A" * 32}, "MessageSid: expected SM followed by 32 lowercase hexadecimal digits."),
        ({"MessageSid": "SM" + "a" * 5000}, "MessageSid: expected SM followed by 32 lowercase hexadecimal digits."),
        ({"MessageStatus": "exploded"}, "MessageStatus: not a Twilio message status."),
        ({"MessageStatus": "delivered" * 500}, "MessageStatus: not a Twilio message status."),
        ({"ErrorCode": "30003; DROP TABLE"}, "ErrorCode: expected a Twilio error code (1 to 10 digits)."),
        ({"ErrorCode": "1" * 11}, "ErrorCode: expected a Twilio error code (1 to 10 digits)."),
        ({"ErrorCode": "٣٠٠٠٣"}, "ErrorCode: expected a Twilio error code (1 to 10 digits)."),
    ],
)
def test_signed_callback_with_bad_fields_is_a_400_with_a_clear_message(sent, post_status, change, message):
    form = callback(sent, "undelivered")
    for name, value in change.items():
        if value is None:
            form.pop(name)
        else:
            form[name] = value
    before = state(sent)
    response = post_status(form)

    assert response.status_code == 400
    assert response.content.decode() == message
    assert response["Content-Type"].startswith("text/plain")
    assert state(sent) == before


def test_a_field_given_twice_is_a_400(sent, post_status):
    pairs = [*callback(sent, "delivered").items(), ("MessageSid", UNKNOWN_SID)]
    before = state(sent)
    response = post_status(pairs)
    assert response.status_code == 400
    assert response.content == b"MessageSid: given more than once."
    assert state(sent) == before


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_only_post_is_allowed(client, db, method):
    response = getattr(client, method)("/webhooks/twilio/status/")
    assert response.status_code == 405


def test_the_webhook_does_not_exist_in_outbox_mode(sent, post_status, settings):
    settings.SMS_DEV_OUTBOX = True
    before = state(sent)
    assert post_status(callback(sent, "delivered")).status_code == 404
    assert state(sent) == before
    assert not events("verification.webhook_rejected")


def test_fake_twilio_plays_the_callbacks_itself(live_server, transactional_db, settings, technician, person):
    """The fake's status_callbacks option (for benchmarks): sent then delivered, signed,
    posted to the StatusCallback URL of a live server."""
    from validation.channels import sms

    settings.PUBLIC_BASE_URL = live_server.url
    seen = []
    with FakeTwilioApi(
        account_sid=settings.TWILIO_ACCOUNT_SID,
        auth_token=settings.TWILIO_AUTH_TOKEN,
        status_callbacks=True,
        on_request=seen.append,
    ) as api:
        settings.TWILIO_API_BASE_URL, settings.SMS_DEV_OUTBOX = api.base_url, False
        sms._client.cache_clear()
        try:
            verification = services.verification_request_create(
                actor=technician, person=person, action=Action.OTHER, ticket_reference="INC-3002"
            )
            challenge = services.challenge_start(actor=technician, verification=verification, method=Method.SMS_CODE)
            callbacks = api.wait_for_callbacks(2)
        finally:
            sms._client.cache_clear()

    assert [(c.form["MessageStatus"], c.status, c.error) for c in callbacks] == [
        ("sent", 200, ""),
        ("delivered", 200, ""),
    ]
    challenge.refresh_from_db()
    assert challenge.status == Challenge.Status.DELIVERED
    assert seen == api.requests and seen[0].response["sid"] == challenge.provider_message_id


# --- Property: nothing a caller posts gives a 5xx or changes a challenge it may not -------

SIGNATURES = st.sampled_from(["valid", None, "", "garbage", "other-token", "other-url"]) | st.text(max_size=40)
ANY_STATUS = st.sampled_from(sorted(MESSAGE_STATUSES)) | st.text(max_size=30)
ANY_CODE = st.sampled_from(["", "30003", "21610", "0"]) | st.text(max_size=12)
ANY_PAIR = st.tuples(
    st.sampled_from(["MessageSid", "MessageStatus", "ErrorCode", "AccountSid", "SmsStatus", "To"])
    | st.text(max_size=20),
    st.text(max_size=60),
)


def mostly(draw, likely, other):
    """Usually ``likely`` (three times in four), so valid callbacks are common enough to test."""
    return draw(likely) if draw(st.integers(0, 3)) else draw(other)


@st.composite
def forms(draw, sid):
    """Half shaped like Twilio's callback with some fields a little off, half arbitrary pairs."""
    if not draw(st.booleans()):
        return draw(st.lists(ANY_PAIR, max_size=8))
    pairs = [
        (
            "MessageSid",
            mostly(
                draw,
                st.just(sid),
                st.sampled_from([sid.upper(), "MM" + sid[2:], sid + "0", UNKNOWN_SID, ""]) | st.text(max_size=40),
            ),
        ),
        ("MessageStatus", mostly(draw, st.sampled_from(["delivered", "undelivered", "failed"]), ANY_STATUS)),
        ("AccountSid", "AC" + "0" * 32),
    ]
    if draw(st.booleans()):
        pairs.append(("ErrorCode", mostly(draw, st.sampled_from(["30003", "30007", "0"]), ANY_CODE)))
    pairs += draw(st.lists(ANY_PAIR, max_size=2))
    if not draw(st.integers(0, 3)):
        del pairs[draw(st.integers(0, len(pairs) - 1))]
    return draw(st.permutations(pairs))


def is_valid_update_for(pairs, sid):
    values = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value)
    error_code = values.get("ErrorCode", [""])
    return (
        values.get("MessageSid") == [sid]
        and values.get("MessageStatus", [None])[0] in ("delivered", "undelivered", "failed")
        and len(values["MessageStatus"]) == 1
        and len(error_code) == 1
        and (error_code[0] == "" or (error_code[0].isascii() and error_code[0].isdigit() and len(error_code[0]) <= 10))
    )


@hypothesis_settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_post_gives_a_clear_4xx_or_a_valid_change_never_a_5xx(sent, post_status, data):
    sid = sent.provider_message_id
    pairs = data.draw(forms(sid), label="form")
    signature = "valid" if data.draw(st.booleans()) else data.draw(SIGNATURES, label="signature")
    kwargs = {
        "valid": {},
        "other-token": {"token": "another-auth-token"},
        "other-url": {"signed_url": "http://testserver/webhooks/twilio/status/"},
    }.get(signature, {"signature": signature})

    cache.clear()  # each example starts below the cap on recorded rejections
    with transaction.atomic():
        before = state(sent)
        rejected_before = len(events("verification.webhook_rejected"))
        response = post_status(pairs, **kwargs)
        after = state(sent)
        rejected = len(events("verification.webhook_rejected")) - rejected_before
        transaction.set_rollback(True)

    assert response.status_code in (200, 400, 403), response.status_code
    event(f"HTTP {response.status_code}, {'changed' if after != before else 'unchanged'} {response.content[:40]!r}")
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("text/plain") and response.content.strip()
    assert rejected == (1 if response.status_code == 403 else 0)
    if signature != "valid":
        assert response.status_code == 403
    if signature == "valid" and response.status_code == 200 and is_valid_update_for(pairs, sid):
        delivered = dict(pairs)["MessageStatus"] == "delivered"
        assert after[0] == (Challenge.Status.DELIVERED if delivered else Challenge.Status.UNDELIVERED)
        assert after[4] == before[4] + 1  # the live view's version
    else:
        assert after == before


def test_a_flood_of_bad_signatures_records_a_bounded_number_of_events(sent, post_status):
    from validation.views.webhooks import REJECTIONS_RECORDED_PER_MINUTE

    for _ in range(REJECTIONS_RECORDED_PER_MINUTE + 15):
        assert post_status(callback(sent, "delivered"), signature="forged").status_code == 403
    assert len(events("verification.webhook_rejected")) == REJECTIONS_RECORDED_PER_MINUTE


def test_an_early_receipt_for_an_approval_link_is_applied_too(
    fake_twilio, technician, org, post_status, django_capture_on_commit_callbacks
):
    """The manager's link is a challenge's text like any other: a receipt that beats the
    worker's commit is kept and applied once the message id is saved."""
    from tests.validation.approval_flows import person_with_manager, verification_for

    early_sid = "SM" + "0123456789abcdef" * 2
    fake_twilio.use_sid_next(early_sid)
    verification = verification_for(technician, person_with_manager(org))
    response = post_status({"MessageSid": early_sid, "MessageStatus": "delivered", "AccountSid": "AC" + "0" * 32})
    assert response.status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        challenge = services.approval_start(actor=technician, verification=verification, method=Method.MANAGER_APPROVAL)
    challenge.refresh_from_db()
    assert challenge.provider_message_id == early_sid
    assert challenge.status == Challenge.Status.DELIVERED
